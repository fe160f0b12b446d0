// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AdminControlled} from "./AdminControlled.sol";
import {MPSRollup} from "./MPSRollup.sol";
import {ReentrancyGuard} from "./ReentrancyGuard.sol";
import {SparseMerkle} from "./SparseMerkle.sol";
import {StakingRegistry} from "./StakingRegistry.sol";

/// @title RewardManager
/// @notice Escrows a requester's payment for a federated-learning task and pays it out from the rollup's
///         finalized state: the requester pays BASE_FEE (to the RewardTreasury) plus a deposit; when the
///         task stops, `settle` charges FEE_PER_EPOCH per trained epoch (at most the deposit), sends the
///         protocol share to the RewardTreasury, refunds the rest, and lets every clean client `claim`
///         its share of the pool, pro rata to its accepted updates (with no clean update the pool
///         goes to the RewardTreasury too, never back to the requester).
/// @dev Leaves proven (written by the STF, fixed binary values):
///        "settle/" || taskId            -> status(uint8) || epochsTrained(uint32 BE) || totalCleanUpdates(uint64 BE)
///        "reward/" || taskId || clientKey -> accepted(uint32 BE) || flagged(uint8)
///      `settle` records the root it proved against and every claim proves against that same root, so all
///      shares of a task come from one consistent snapshot and sum to at most the pool (rounding down;
///      the dust stays in this contract). A task id is first-come: the STF should derive task ids from
///      the requester so that nobody can fund someone else's task in their place.
contract RewardManager is AdminControlled, ReentrancyGuard {
    /// @dev requester | settled | refunded | totalCleanUpdates share one slot.
    struct Task {
        address requester;
        bool settled;
        bool refunded;
        uint64 totalCleanUpdates;
        uint256 deposit;
        uint256 pool;
        uint256 refund;
        bytes32 root;
    }

    uint8 internal constant STATUS_COMPLETE = 1;
    uint8 internal constant STATUS_FINISHED = 2;

    /// @notice Flat fee per task, paid to the RewardTreasury at creation.
    uint256 public immutable BASE_FEE;
    /// @notice Fee per trained epoch, taken from the deposit at settlement.
    uint256 public immutable FEE_PER_EPOCH;
    /// @notice Part of the fee (in basis points) that goes to the RewardTreasury; the rest is the pool.
    uint16 public immutable PROTOCOL_SHARE_BPS;

    StakingRegistry public immutable registry;
    MPSRollup public immutable rollup;
    /// @notice Receives base fees and protocol shares.
    address payable public immutable rewardTreasury;

    mapping(bytes32 taskId => Task) private _tasks;
    mapping(bytes32 taskId => mapping(bytes32 clientKey => bool)) public claimed;

    error InvalidShare(uint16 bps);
    error ZeroDeposit();
    error TaskExists(bytes32 taskId);
    error InsufficientPayment(uint256 sent, uint256 required);
    error UnknownTask(bytes32 taskId);
    error AlreadySettled(bytes32 taskId);
    error NotSettled(bytes32 taskId);
    error InvalidStatus(uint8 status);
    error InvalidProof();
    error AlreadyClaimed(bytes32 taskId, bytes32 clientKey);
    error NothingToClaim(bytes32 taskId, bytes32 clientKey);
    /// @notice The client key was never staked, so there is no address to pay.
    error NoPayee(bytes32 clientKey);
    error NotRequester(address caller);
    error AlreadyRefunded(bytes32 taskId);
    error NothingToRefund(bytes32 taskId);
    error TransferFailed(address to, uint256 amount);

    event TaskFunded(bytes32 indexed taskId, address indexed requester, uint256 deposit);
    event TaskSettled(
        bytes32 indexed taskId, uint8 status, uint32 epochsTrained, uint256 fee, uint256 pool, uint256 refund
    );
    event RewardClaimed(bytes32 indexed taskId, bytes32 indexed clientKey, address payee, uint256 amount);
    event Refunded(bytes32 indexed taskId, address indexed requester, uint256 amount);

    constructor(
        address registry_,
        address rollup_,
        address payable rewardTreasury_,
        uint256 baseFee,
        uint256 feePerEpoch,
        uint16 protocolShareBps,
        address admin_
    ) AdminControlled(admin_) {
        if (protocolShareBps > 10_000) revert InvalidShare(protocolShareBps);
        if (rewardTreasury_ == address(0)) revert ZeroAddress();
        registry = StakingRegistry(registry_);
        rollup = MPSRollup(rollup_);
        rewardTreasury = rewardTreasury_;
        BASE_FEE = baseFee;
        FEE_PER_EPOCH = feePerEpoch;
        PROTOCOL_SHARE_BPS = protocolShareBps;
    }

    /// @notice Fund task `taskId` with `deposit` wei; send at least BASE_FEE + deposit (any excess is
    ///         returned at once).
    function createTask(bytes32 taskId, uint256 deposit) external payable nonReentrant {
        if (deposit == 0) revert ZeroDeposit();
        if (_tasks[taskId].requester != address(0)) revert TaskExists(taskId);
        uint256 required = BASE_FEE + deposit;
        if (msg.value < required) revert InsufficientPayment(msg.value, required);

        Task storage t = _tasks[taskId];
        t.requester = msg.sender;
        t.deposit = deposit;
        emit TaskFunded(taskId, msg.sender, deposit);

        if (BASE_FEE > 0) _pay(rewardTreasury, BASE_FEE);
        uint256 excess = msg.value - required;
        if (excess > 0) _pay(msg.sender, excess);
    }

    /// @notice Settle a stopped task from its `"settle/"` leaf under finalized batch `batchIndex`.
    function settle(
        uint256 batchIndex,
        bytes32 taskId,
        uint8 status,
        uint32 epochsTrained,
        uint64 totalCleanUpdates,
        bytes32[] calldata siblings
    ) external nonReentrant {
        Task storage t = _tasks[taskId];
        if (t.requester == address(0)) revert UnknownTask(taskId);
        if (t.settled) revert AlreadySettled(taskId);
        if (status != STATUS_COMPLETE && status != STATUS_FINISHED) revert InvalidStatus(status);
        bytes32 root = rollup.finalizedStateRoot(batchIndex);
        bytes memory key = abi.encodePacked("settle/", taskId);
        bytes memory value = abi.encodePacked(status, epochsTrained, totalCleanUpdates);
        if (!SparseMerkle.verify(root, key, value, siblings)) revert InvalidProof();

        uint256 deposit = t.deposit;
        uint256 fee = uint256(epochsTrained) * FEE_PER_EPOCH;
        if (fee > deposit) fee = deposit;
        uint256 protocol = fee * PROTOCOL_SHARE_BPS / 10_000;
        uint256 pool = fee - protocol;
        uint256 refund = deposit - fee;
        if (totalCleanUpdates == 0) {
            // nobody to pay: the pool goes to the protocol, never back to the requester, who
            // would otherwise gain by getting every client flagged (its rules, its sybils)
            protocol += pool;
            pool = 0;
        }

        t.settled = true;
        t.totalCleanUpdates = totalCleanUpdates;
        t.pool = pool;
        t.refund = refund;
        t.root = root;
        emit TaskSettled(taskId, status, epochsTrained, fee, pool, refund);

        if (protocol > 0) _pay(rewardTreasury, protocol);
    }

    /// @notice Pay `clientKey`'s share of a settled task's pool to its staker (anyone may call). The
    ///         `"reward/"` leaf must show `accepted` updates and no flag, under the task's settlement root.
    function claim(bytes32 taskId, bytes32 clientKey, uint32 accepted, bytes32[] calldata siblings)
        external
        nonReentrant
    {
        Task storage t = _tasks[taskId];
        if (!t.settled) revert NotSettled(taskId);
        if (claimed[taskId][clientKey]) revert AlreadyClaimed(taskId, clientKey);
        bytes memory key = abi.encodePacked("reward/", taskId, clientKey);
        bytes memory value = abi.encodePacked(accepted, uint8(0));
        if (!SparseMerkle.verify(t.root, key, value, siblings)) revert InvalidProof();
        uint256 total = t.totalCleanUpdates;
        uint256 amount = total == 0 ? 0 : t.pool * accepted / total;
        if (amount == 0) revert NothingToClaim(taskId, clientKey);
        address payee = registry.stakerOf(clientKey);
        if (payee == address(0)) revert NoPayee(clientKey);

        claimed[taskId][clientKey] = true;
        emit RewardClaimed(taskId, clientKey, payee, amount);
        _pay(payee, amount);
    }

    /// @notice Pay the requester what settlement left of its deposit.
    function withdrawRefund(bytes32 taskId) external nonReentrant {
        Task storage t = _tasks[taskId];
        if (t.requester == address(0)) revert UnknownTask(taskId);
        if (msg.sender != t.requester) revert NotRequester(msg.sender);
        if (!t.settled) revert NotSettled(taskId);
        if (t.refunded) revert AlreadyRefunded(taskId);
        uint256 amount = t.refund;
        if (amount == 0) revert NothingToRefund(taskId);

        t.refunded = true;
        emit Refunded(taskId, msg.sender, amount);
        _pay(msg.sender, amount);
    }

    /// @notice A task's funding and settlement (zeros for an unknown task).
    function task(bytes32 taskId)
        external
        view
        returns (address requester, uint256 deposit, bool settled, uint256 pool, uint64 totalCleanUpdates, bytes32 root)
    {
        Task storage t = _tasks[taskId];
        return (t.requester, t.deposit, t.settled, t.pool, t.totalCleanUpdates, t.root);
    }

    /// @notice What the requester may withdraw (or withdrew) after settlement, and whether it did.
    function refundOf(bytes32 taskId) external view returns (uint256 amount, bool refunded) {
        Task storage t = _tasks[taskId];
        return (t.refund, t.refunded);
    }

    function _pay(address to, uint256 amount) private {
        (bool ok,) = payable(to).call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
