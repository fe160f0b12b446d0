// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {MPSRollup} from "./MPSRollup.sol";
import {SparseMerkle} from "./SparseMerkle.sol";
import {StakingRegistry} from "./StakingRegistry.sol";

/// @title SlashingManager
/// @notice Slashes a client's stake on proof that the rollup's state, at a finalized batch, holds slash
///         evidence for it. Anyone may submit the proof; nobody decides by hand.
/// @dev The STF writes `"slash/" || clientKey || taskId -> epoch(uint32 BE) || reason(uint32 BE)` exactly
///      when its verdict on the client in that task becomes slashable; the entry is final and never
///      changes, so a proof against any finalized root is valid evidence. Only finalized roots are
///      accepted: a root still in its challenge window could be discarded as fraudulent. Each
///      (client, task) offence is slashed at most once; a key slashed for one offence is burned, so a
///      second offence of the same key reverts in the registry.
contract SlashingManager {
    /// @notice The registry whose stakes this contract may slash.
    StakingRegistry public immutable registry;
    /// @notice The rollup whose finalized state roots are the evidence.
    MPSRollup public immutable rollup;

    /// @notice Offences already slashed, by `offenceId(clientKey, taskId)`.
    mapping(bytes32 offence => bool) public slashed;

    error AlreadySlashed(bytes32 offence);
    error InvalidProof();

    event SlashExecuted(
        bytes32 indexed clientKey, bytes32 indexed taskId, uint32 epoch, uint32 reason, uint256 amount, uint256 batchIndex
    );

    constructor(address registry_, address rollup_) {
        registry = StakingRegistry(registry_);
        rollup = MPSRollup(rollup_);
    }

    /// @notice Slash `clientKey` for its offence in `taskId`, proven by the `"slash/"` leaf under the state
    ///         root of finalized batch `batchIndex`. Reverts (with MPSRollup's UnknownBatch / NotFinalized)
    ///         for a batch that is not final.
    function slash(
        uint256 batchIndex,
        bytes32 clientKey,
        bytes32 taskId,
        uint32 epoch,
        uint32 reason,
        bytes32[] calldata siblings
    ) external {
        _checkEvidence(batchIndex, clientKey, taskId, epoch, reason, siblings);

        bytes32 offence = offenceId(clientKey, taskId);
        if (slashed[offence]) revert AlreadySlashed(offence);
        slashed[offence] = true;
        uint256 amount = registry.slash(clientKey, offence);
        emit SlashExecuted(clientKey, taskId, epoch, reason, amount, batchIndex);
    }

    /// @dev Reverts unless the `"slash/"` leaf is in the finalized state root of `batchIndex`.
    function _checkEvidence(
        uint256 batchIndex,
        bytes32 clientKey,
        bytes32 taskId,
        uint32 epoch,
        uint32 reason,
        bytes32[] calldata siblings
    ) private view {
        bytes32 root = rollup.finalizedStateRoot(batchIndex);
        bytes memory key = abi.encodePacked("slash/", clientKey, taskId);
        bytes memory value = abi.encodePacked(epoch, reason);
        if (!SparseMerkle.verify(root, key, value, siblings)) revert InvalidProof();
    }

    /// @notice The identifier of the offence of `clientKey` in `taskId`.
    function offenceId(bytes32 clientKey, bytes32 taskId) public pure returns (bytes32) {
        return keccak256(abi.encode(clientKey, taskId));
    }
}
