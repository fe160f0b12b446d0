// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AdminControlled} from "./AdminControlled.sol";
import {MPSRollup} from "./MPSRollup.sol";
import {ReentrancyGuard} from "./ReentrancyGuard.sol";
import {SparseMerkle} from "./SparseMerkle.sol";

/// @title StakingRegistry
/// @notice Clients lock a fixed stake against their rollup key (the 32-byte ed25519 public key that signs
///         their MPS-chain transactions). The sequencer reads `Staked` / `UnbondingStarted` / `Withdrawn` /
///         `Slashed` to know who may train; the SlashingManager takes the stake of a key the rollup proved
///         dishonest; the RewardManager pays rewards to `stakerOf(key)`.
/// @dev Binding rules, chosen so that one stake is one identity on both chains:
///      - an address binds one key, for good (`keyOf` never changes once set);
///      - a key binds one address, for good (`stakerOf` stays set after withdrawal and after a slash,
///        because it is where rewards earned before that are paid);
///      - a slashed key is burned: it can never be staked again, by anyone;
///      - a withdrawn key may be staked again by the same address.
///      A stake leaves only on the rollup's word, proven like a rollup withdrawal: `withdrawStake` needs
///      the leaf `"release/" || clientKey -> unbondBlock(uint64 BE)` under a finalized state root. The
///      STF writes it only once every epoch the client committed to has closed and no task holds slash
///      evidence against it, and never writes slash evidence for it afterwards (an unbonding key may
///      reveal what it committed, but commit nothing new). So no time-based unbonding can be raced:
///      a stake is either released or slashable, never both, whatever the delays on the way to L1.
///      The release names the L1 block of the `unregister` it answers, so a release from an earlier
///      stake of the same key (withdrawn, then staked again) cannot pay out the new one.
contract StakingRegistry is AdminControlled, ReentrancyGuard {
    /// @notice Lifecycle of a key. Values are part of the interface (`statusOf` returns them as uint8).
    enum Status {
        None, // 0: never staked
        Staked, // 1
        Unbonding, // 2
        Slashed, // 3: burned for good
        Withdrawn // 4: may be staked again by its staker
    }

    /// @dev One storage slot for the staker, status and unbonding block, one for the amount.
    struct StakeInfo {
        address staker;
        Status status;
        uint64 unbondBlock;
        uint256 amount;
    }

    /// @notice The exact stake, in wei.
    uint256 public immutable STAKE_AMOUNT;
    /// @notice The only caller of `slash` (the SlashingManager).
    address public slasher;
    /// @notice Where slashed stakes go (the SlashTreasury).
    address public slashTreasury;
    /// @notice The rollup whose finalized roots release stakes (set once, at deployment).
    MPSRollup public rollup;

    mapping(bytes32 clientKey => StakeInfo) private _stakes;
    /// @notice The key an address has bound (zero if none).
    mapping(address staker => bytes32 clientKey) public keyOf;

    error WrongStakeAmount(uint256 sent, uint256 required);
    error ZeroKey();
    /// @notice A binding is a 64-byte ed25519 signature.
    error BadBindingLength(uint256 length);
    /// @notice The caller already bound a different key.
    error StakerHasOtherKey(bytes32 boundKey);
    /// @notice The key is bound to another address.
    error KeyTaken(bytes32 clientKey, address staker);
    /// @notice The key is staked or unbonding already.
    error AlreadyStaked(bytes32 clientKey);
    /// @notice The key was slashed: it is burned for good.
    error KeyBurned(bytes32 clientKey);
    /// @notice The caller's key is not in the status the call needs.
    error WrongStatus(bytes32 clientKey, uint8 status);
    /// @notice The proof does not show the rollup's release of this unbonding (`unbondBlock`) under the
    ///         finalized root: the client may still be in an open epoch, or the release is not final yet.
    error NotReleased(bytes32 clientKey, uint256 unbondBlock);
    error RollupNotSet();
    /// @notice The rollup is wired once: whoever could change it could release any stake.
    error RollupAlreadySet(address rollup);
    error NotSlasher(address caller);
    error SlashTreasuryNotSet();
    error TransferFailed(address to, uint256 amount);

    /// @param binding the key's ed25519 signature naming `staker` (see `stake`), passed on for the rollup
    event Staked(address indexed staker, bytes32 indexed clientKey, uint256 amount, bytes binding);
    event UnbondingStarted(address indexed staker, bytes32 indexed clientKey, uint256 unbondBlock);
    event Withdrawn(address indexed staker, bytes32 indexed clientKey, uint256 amount);
    event Slashed(address indexed staker, bytes32 indexed clientKey, uint256 amount, bytes32 offence);
    event SlasherSet(address indexed slasher);
    event SlashTreasurySet(address indexed slashTreasury);
    event RollupSet(address indexed rollup);

    modifier onlySlasher() {
        if (msg.sender != slasher) revert NotSlasher(msg.sender);
        _;
    }

    constructor(uint256 stakeAmount, address admin_) AdminControlled(admin_) {
        STAKE_AMOUNT = stakeAmount;
    }

    // ------------------------------------------------------------------ staker

    /// @notice Lock exactly STAKE_AMOUNT against `clientKey`. `binding` is the key's ed25519 signature of
    ///         `"mps/stake-binding/v1" || rollupChainId (uint64 BE) || msg.sender`: this contract cannot
    ///         check it cheaply, so it goes out in `Staked` and the rollup counts the stake only if it
    ///         holds. Someone who stakes another's key (front-running its stake) binds it here for good
    ///         but never gets it counted, so it earns nothing with it.
    function stake(bytes32 clientKey, bytes calldata binding) external payable {
        if (msg.value != STAKE_AMOUNT) revert WrongStakeAmount(msg.value, STAKE_AMOUNT);
        if (clientKey == bytes32(0)) revert ZeroKey();
        if (binding.length != 64) revert BadBindingLength(binding.length);
        bytes32 bound = keyOf[msg.sender];
        if (bound != bytes32(0) && bound != clientKey) revert StakerHasOtherKey(bound);
        StakeInfo storage s = _stakes[clientKey];
        if (s.staker != address(0) && s.staker != msg.sender) revert KeyTaken(clientKey, s.staker);
        if (s.status == Status.Slashed) revert KeyBurned(clientKey);
        if (s.status == Status.Staked || s.status == Status.Unbonding) revert AlreadyStaked(clientKey);

        keyOf[msg.sender] = clientKey;
        s.staker = msg.sender;
        s.status = Status.Staked;
        s.unbondBlock = 0;
        s.amount = msg.value;
        emit Staked(msg.sender, clientKey, msg.value, binding);
    }

    /// @notice Start unbonding the caller's stake. The rollup stops taking new commitments from the key;
    ///         the stake stays slashable until the rollup releases it (see `withdrawStake`).
    function unregister() external {
        bytes32 clientKey = keyOf[msg.sender];
        StakeInfo storage s = _stakes[clientKey];
        if (s.status != Status.Staked) revert WrongStatus(clientKey, uint8(s.status));
        s.status = Status.Unbonding;
        s.unbondBlock = uint64(block.number);
        emit UnbondingStarted(msg.sender, clientKey, block.number);
    }

    /// @notice Pay the caller's stake back, on proof that the rollup released it: the `"release/"` leaf
    ///         for the caller's key and this unbonding under the state root of finalized batch
    ///         `batchIndex` (MPSRollup's UnknownBatch / NotFinalized revert for any other batch).
    function withdrawStake(uint256 batchIndex, bytes32[] calldata siblings) external nonReentrant {
        bytes32 clientKey = keyOf[msg.sender];
        StakeInfo storage s = _stakes[clientKey];
        if (s.status != Status.Unbonding) revert WrongStatus(clientKey, uint8(s.status));
        if (address(rollup) == address(0)) revert RollupNotSet();
        bytes32 root = rollup.finalizedStateRoot(batchIndex);
        bytes memory key = abi.encodePacked("release/", clientKey);
        if (!SparseMerkle.verify(root, key, abi.encodePacked(s.unbondBlock), siblings)) {
            revert NotReleased(clientKey, s.unbondBlock);
        }

        uint256 amount = s.amount;
        s.amount = 0;
        s.status = Status.Withdrawn;
        emit Withdrawn(msg.sender, clientKey, amount);

        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    // ------------------------------------------------------------------ slashing

    /// @notice Burn `clientKey` and move its stake to the SlashTreasury. Only the SlashingManager calls
    ///         this, after checking a rollup proof; `offence` identifies the evidence for the record.
    /// @return amount the stake moved.
    function slash(bytes32 clientKey, bytes32 offence) external onlySlasher nonReentrant returns (uint256 amount) {
        StakeInfo storage s = _stakes[clientKey];
        if (s.status != Status.Staked && s.status != Status.Unbonding) {
            revert WrongStatus(clientKey, uint8(s.status));
        }
        address treasury = slashTreasury;
        if (treasury == address(0)) revert SlashTreasuryNotSet();

        amount = s.amount;
        s.amount = 0;
        s.status = Status.Slashed;
        emit Slashed(s.staker, clientKey, amount, offence);

        (bool ok,) = payable(treasury).call{value: amount}("");
        if (!ok) revert TransferFailed(treasury, amount);
    }

    // ------------------------------------------------------------------ admin

    /// @notice Set the contract allowed to slash (the SlashingManager).
    function setSlasher(address slasher_) external onlyAdmin {
        if (slasher_ == address(0)) revert ZeroAddress();
        slasher = slasher_;
        emit SlasherSet(slasher_);
    }

    /// @notice Set where slashed stakes go (the SlashTreasury).
    function setSlashTreasury(address slashTreasury_) external onlyAdmin {
        if (slashTreasury_ == address(0)) revert ZeroAddress();
        slashTreasury = slashTreasury_;
        emit SlashTreasurySet(slashTreasury_);
    }

    /// @notice Wire the rollup whose finalized roots release stakes; once only.
    function setRollup(address rollup_) external onlyAdmin {
        if (rollup_ == address(0)) revert ZeroAddress();
        if (address(rollup) != address(0)) revert RollupAlreadySet(address(rollup));
        rollup = MPSRollup(rollup_);
        emit RollupSet(rollup_);
    }

    // ------------------------------------------------------------------ views

    /// @notice The address that staked `clientKey` (stays set after withdrawal and slashing).
    function stakerOf(bytes32 clientKey) external view returns (address) {
        return _stakes[clientKey].staker;
    }

    /// @notice 0 none, 1 staked, 2 unbonding, 3 slashed, 4 withdrawn.
    function statusOf(bytes32 clientKey) external view returns (uint8) {
        return uint8(_stakes[clientKey].status);
    }

    /// @notice Wei held for `clientKey` (zero once withdrawn or slashed).
    function stakeOf(bytes32 clientKey) external view returns (uint256) {
        return _stakes[clientKey].amount;
    }

    /// @notice The L1 block of the key's latest `unregister` (zero before one); the rollup's release
    ///         leaf must name it.
    function unbondBlockOf(bytes32 clientKey) external view returns (uint256) {
        return _stakes[clientKey].unbondBlock;
    }
}
