// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AdminControlled} from "./AdminControlled.sol";
import {MPSRollup} from "./MPSRollup.sol";
import {ReentrancyGuard} from "./ReentrancyGuard.sol";
import {SparseMerkle} from "./SparseMerkle.sol";
import {StakingRegistry} from "./StakingRegistry.sol";

/// @title RewardManager
/// @notice Escrows a requester's payment for a federated-learning task and pays it out from the rollup's
///         finalized state: a funder pays BASE_FEE (to the RewardTreasury) plus a deposit for a task id;
///         when the task stops, `settle` first bills the task's data (DATA_FEE_PER_MIB per MiB of the bytes
///         it put in the rollup's blocks, all to the RewardTreasury), then charges FEE_PER_EPOCH per
///         trained epoch (at most what is left), sends the protocol share to the RewardTreasury, refunds
///         the rest, and lets every clean client
///         `claim` its share of the pool, pro rata to its accepted updates (with no clean update the pool
///         goes to the RewardTreasury too, never back to the requester).
/// @dev A funding is keyed by (taskId, funder = msg.sender), so anyone may fund any task id and several
///      funders may fund the same one: each funding is its funder's own, and each pays BASE_FEE (the
///      price of a slot, and of griefing). The rollup task names its funder: the STF binds exactly one
///      funding to the task, and the task's settlement leaf names that funder, so only the bound funding
///      is ever charged and only its funder is refunded. A funding the rollup never bound goes back to its
///      funder (`reclaim`, less the BASE_FEE it paid) once the rollup's finalized state proves it can no
///      longer be bound. Front-running a requester's task id is therefore harmless: the attacker's funding
///      does not block the requester's (a different key), the rollup never binds it, and the attacker
///      gets back only its own deposit, having paid BASE_FEE for nothing.
///
///      Leaves proven (written by the STF, fixed binary values, big-endian):
///        "settle/" || taskId                 -> status(uint8) || epochsTrained(uint32) ||
///                                                totalCleanUpdates(uint64) || funder(address) ||
///                                                dataBytes(uint64)                                 41 bytes
///        "reward/" || taskId || clientKey    -> accepted(uint32) || flagged(uint8)                  5 bytes
///        "funding/" || taskId || funder      -> deposit(uint256) || bindBy(uint64) || bound(uint8)  41 bytes
///      `settle` records the root it proved against and every claim proves against that same root, so all
///      shares of a task come from one consistent snapshot and sum to at most the pool (rounding down;
///      the dust stays in this contract). A task settles once, whichever funding it settles.
contract RewardManager is AdminControlled, ReentrancyGuard {
    /// @dev One (taskId, funder) funding, in one slot. Whether it was settled is
    ///      `_settlements[taskId].funder == funder`. Deposits are capped at 2^128 - 1 wei (far above all
    ///      the ether there is), so that a deposit and every amount taken from it fit 128 bits.
    struct Funding {
        uint128 deposit;
        bool reclaimed;
    }

    /// @dev A task's settlement, from its bound funding, in three slots: funder | refunded |
    ///      totalCleanUpdates, pool | refund (each at most the deposit), root. funder is zero until the
    ///      task settles.
    struct Settlement {
        address funder;
        bool refunded;
        uint64 totalCleanUpdates;
        uint128 pool;
        uint128 refund;
        bytes32 root;
    }

    uint8 internal constant STATUS_COMPLETE = 1;
    uint8 internal constant STATUS_FINISHED = 2;

    /// @notice Flat fee per funding, paid to the RewardTreasury when funding; never returned.
    uint256 public immutable BASE_FEE;
    /// @notice Fee per trained epoch, taken from the deposit at settlement.
    uint256 public immutable FEE_PER_EPOCH;
    /// @notice Wei per MiB of a task's data, billed from the deposit at settlement, all to the
    ///         RewardTreasury: the price of the bytes every copy of the chain keeps. Never to the pool,
    ///         or a requester whose clients are its own sybils would be paid back. It must equal the
    ///         rollup's `data_fee_per_mib` (its genesis spec), which keeps every task's bytes within
    ///         what its deposit pays for.
    uint256 public immutable DATA_FEE_PER_MIB;
    /// @notice Part of the fee (in basis points) that goes to the RewardTreasury; the rest is the pool.
    uint16 public immutable PROTOCOL_SHARE_BPS;

    StakingRegistry public immutable registry;
    MPSRollup public immutable rollup;
    /// @notice Receives base fees and protocol shares.
    address payable public immutable rewardTreasury;

    mapping(bytes32 taskId => mapping(address funder => Funding)) private _fundings;
    mapping(bytes32 taskId => Settlement) private _settlements;
    mapping(bytes32 taskId => mapping(bytes32 clientKey => bool)) public claimed;

    error InvalidShare(uint16 bps);
    error ZeroBaseFee();
    error ZeroDeposit();
    error DepositTooLarge(uint256 deposit);
    error FundingExists(bytes32 taskId, address funder);
    error InsufficientPayment(uint256 sent, uint256 required);
    error UnknownFunding(bytes32 taskId, address funder);
    /// @notice The task was settled already (from this funding or another one).
    error AlreadySettled(bytes32 taskId);
    /// @notice This funding is the one the task settled: it is spent, not reclaimable.
    error FundingSettled(bytes32 taskId, address funder);
    error AlreadyReclaimed(bytes32 taskId, address funder);
    /// @notice The batch proven against does not reach the funding's last binding height yet.
    error FundingNotLapsed(uint64 bindBy, uint64 lastBlock);
    error NotSettled(bytes32 taskId);
    error InvalidStatus(uint8 status);
    error InvalidProof();
    error AlreadyClaimed(bytes32 taskId, bytes32 clientKey);
    error NothingToClaim(bytes32 taskId, bytes32 clientKey);
    /// @notice The client key was never staked, so there is no address to pay.
    error NoPayee(bytes32 clientKey);
    error NotFunder(address caller);
    error AlreadyRefunded(bytes32 taskId);
    error NothingToRefund(bytes32 taskId);
    error TransferFailed(address to, uint256 amount);

    /// @dev `requester` is the funder (the name is kept: the node's L1 follower decodes this event).
    event TaskFunded(bytes32 indexed taskId, address indexed requester, uint256 deposit);
    event TaskSettled(
        bytes32 indexed taskId,
        uint8 status,
        uint32 epochsTrained,
        uint256 fee,
        uint256 pool,
        uint256 refund,
        uint256 dataFee
    );
    event RewardClaimed(bytes32 indexed taskId, bytes32 indexed clientKey, address payee, uint256 amount);
    event Refunded(bytes32 indexed taskId, address indexed requester, uint256 amount);
    event FundingReclaimed(bytes32 indexed taskId, address indexed funder, uint256 amount);

    constructor(
        address registry_,
        address rollup_,
        address payable rewardTreasury_,
        uint256 baseFee,
        uint256 feePerEpoch,
        uint256 dataFeePerMib,
        uint16 protocolShareBps,
        address admin_
    ) AdminControlled(admin_) {
        if (protocolShareBps > 10_000) revert InvalidShare(protocolShareBps);
        if (baseFee == 0) revert ZeroBaseFee(); // a task slot must cost its requester something
        if (rewardTreasury_ == address(0)) revert ZeroAddress();
        registry = StakingRegistry(registry_);
        rollup = MPSRollup(rollup_);
        rewardTreasury = rewardTreasury_;
        BASE_FEE = baseFee;
        FEE_PER_EPOCH = feePerEpoch;
        DATA_FEE_PER_MIB = dataFeePerMib;
        PROTOCOL_SHARE_BPS = protocolShareBps;
    }

    /// @notice Fund task `taskId` with `deposit` wei as `msg.sender`; send at least BASE_FEE + deposit
    ///         (any excess is returned at once). One funding per (task, funder), for good: a funding that
    ///         was settled or reclaimed is not renewed, so the rollup's record of it stays the only one.
    function fundTask(bytes32 taskId, uint256 deposit) external payable nonReentrant {
        if (deposit == 0) revert ZeroDeposit();
        if (deposit > type(uint128).max) revert DepositTooLarge(deposit);
        Funding storage f = _fundings[taskId][msg.sender];
        if (f.deposit != 0) revert FundingExists(taskId, msg.sender);
        uint256 required = BASE_FEE + deposit;
        if (msg.value < required) revert InsufficientPayment(msg.value, required);

        f.deposit = uint128(deposit);
        emit TaskFunded(taskId, msg.sender, deposit);

        _pay(rewardTreasury, BASE_FEE);
        uint256 excess = msg.value - required;
        if (excess > 0) _pay(msg.sender, excess);
    }

    /// @notice Settle a stopped task from its `"settle/"` leaf under finalized batch `batchIndex`; the leaf
    ///         names `funder`, whose funding pays (anyone may call).
    function settle(
        uint256 batchIndex,
        bytes32 taskId,
        address funder,
        uint8 status,
        uint32 epochsTrained,
        uint64 totalCleanUpdates,
        uint64 dataBytes,
        bytes32[] calldata siblings
    ) external nonReentrant {
        Funding storage f = _fundings[taskId][funder];
        uint256 deposit = f.deposit;
        if (deposit == 0) revert UnknownFunding(taskId, funder);
        Settlement storage s = _settlements[taskId];
        if (s.funder != address(0)) revert AlreadySettled(taskId);
        // the STF never binds a funding it let lapse, so this cannot happen with an honest rollup
        if (f.reclaimed) revert AlreadyReclaimed(taskId, funder);
        if (status != STATUS_COMPLETE && status != STATUS_FINISHED) revert InvalidStatus(status);
        bytes memory value = abi.encodePacked(status, epochsTrained, totalCleanUpdates, funder, dataBytes);
        s.root = _proven(batchIndex, abi.encodePacked("settle/", taskId), value, siblings);
        s.funder = funder;
        s.totalCleanUpdates = totalCleanUpdates;
        _settle(s, taskId, deposit, status, epochsTrained, dataBytes);
    }

    /// @dev The finalized state root of batch `batchIndex`, if `key` holds `value` under it.
    function _proven(uint256 batchIndex, bytes memory key, bytes memory value, bytes32[] calldata siblings)
        private
        view
        returns (bytes32 root)
    {
        root = rollup.finalizedStateRoot(batchIndex);
        if (!SparseMerkle.verify(root, key, value, siblings)) revert InvalidProof();
    }

    /// @dev Split the deposit of a proven settlement and pay the protocol its part.
    function _settle(
        Settlement storage s,
        bytes32 taskId,
        uint256 deposit,
        uint8 status,
        uint32 epochsTrained,
        uint64 dataBytes
    ) private {
        (uint256 dataFee, uint256 fee, uint256 protocol, uint256 pool, uint256 refund) =
            _split(deposit, epochsTrained, s.totalCleanUpdates, dataBytes);
        s.pool = uint128(pool); // pool + refund <= deposit < 2^128
        s.refund = uint128(refund);
        emit TaskSettled(taskId, status, epochsTrained, fee, pool, refund, dataFee);

        if (protocol > 0) _pay(rewardTreasury, protocol);
    }

    /// @notice Take back the whole deposit of `msg.sender`'s funding of `taskId`, which the rollup never
    ///         bound (BASE_FEE is not returned). Proves the `"funding/"` leaf with bound == 0 under the
    ///         state root of finalized batch `batchIndex`, whose rollup blocks reach `bindBy`.
    /// @dev Why a lapsed unbound funding can never be charged: the STF binds a funding to a task only at a
    ///      rollup height <= bindBy (the leaf's own deadline), so a leaf with bound == 0 in a finalized
    ///      state at height lastBlock >= bindBy can never be bound afterwards, and no settlement can ever
    ///      name this funder for this task. Conversely a bound funding can never be reclaimed: its leaf
    ///      says bound = 1 for good. The deposit proven is the one stored here, so the leaf must record
    ///      exactly what this funding holds.
    function reclaim(uint256 batchIndex, bytes32 taskId, uint256 bindBy, bytes32[] calldata siblings)
        external
        nonReentrant
    {
        Funding storage f = _fundings[taskId][msg.sender];
        uint256 deposit = f.deposit;
        if (deposit == 0) revert UnknownFunding(taskId, msg.sender);
        if (_settlements[taskId].funder == msg.sender) revert FundingSettled(taskId, msg.sender);
        if (f.reclaimed) revert AlreadyReclaimed(taskId, msg.sender);
        if (bindBy > type(uint64).max) revert InvalidProof(); // no leaf holds a wider bindBy
        bytes32 root = rollup.finalizedStateRoot(batchIndex);
        // slither-disable-next-line unused-return (only the batch's height is needed; its root is final above)
        (,, uint64 lastBlock,,) = rollup.batch(batchIndex);
        if (lastBlock < bindBy) revert FundingNotLapsed(uint64(bindBy), lastBlock);
        bytes memory key = abi.encodePacked("funding/", taskId, msg.sender);
        bytes memory value = abi.encodePacked(deposit, uint64(bindBy), uint8(0));
        if (!SparseMerkle.verify(root, key, value, siblings)) revert InvalidProof();

        f.reclaimed = true;
        emit FundingReclaimed(taskId, msg.sender, deposit);
        _pay(msg.sender, deposit);
    }

    /// @notice Pay `clientKey`'s share of a settled task's pool to its staker (anyone may call). The
    ///         `"reward/"` leaf must show `accepted` updates and no flag, under the task's settlement root.
    function claim(bytes32 taskId, bytes32 clientKey, uint32 accepted, bytes32[] calldata siblings)
        external
        nonReentrant
    {
        Settlement storage s = _settlements[taskId];
        if (s.funder == address(0)) revert NotSettled(taskId);
        if (claimed[taskId][clientKey]) revert AlreadyClaimed(taskId, clientKey);
        bytes memory key = abi.encodePacked("reward/", taskId, clientKey);
        bytes memory value = abi.encodePacked(accepted, uint8(0));
        if (!SparseMerkle.verify(s.root, key, value, siblings)) revert InvalidProof();
        uint256 total = s.totalCleanUpdates;
        uint256 amount = total == 0 ? 0 : uint256(s.pool) * accepted / total; // widened: the product may pass 128 bits
        if (amount == 0) revert NothingToClaim(taskId, clientKey);
        address payee = registry.stakerOf(clientKey);
        if (payee == address(0)) revert NoPayee(clientKey);

        claimed[taskId][clientKey] = true;
        emit RewardClaimed(taskId, clientKey, payee, amount);
        _pay(payee, amount);
    }

    /// @notice Pay the settled funder what settlement left of its deposit.
    function withdrawRefund(bytes32 taskId) external nonReentrant {
        Settlement storage s = _settlements[taskId];
        if (s.funder == address(0)) revert NotSettled(taskId);
        if (msg.sender != s.funder) revert NotFunder(msg.sender);
        if (s.refunded) revert AlreadyRefunded(taskId);
        uint256 amount = s.refund;
        if (amount == 0) revert NothingToRefund(taskId);

        s.refunded = true;
        emit Refunded(taskId, msg.sender, amount);
        _pay(msg.sender, amount);
    }

    /// @notice A task's settled funding and its settlement (all zeros until the task settles).
    function task(bytes32 taskId)
        external
        view
        returns (address funder, uint256 deposit, bool settled, uint256 pool, uint64 totalCleanUpdates, bytes32 root)
    {
        Settlement storage s = _settlements[taskId];
        funder = s.funder;
        if (funder == address(0)) return (funder, 0, false, 0, 0, bytes32(0));
        return (funder, _fundings[taskId][funder].deposit, true, s.pool, s.totalCleanUpdates, s.root);
    }

    /// @notice One funding: its deposit (zero if none), whether the task settled from it, whether its
    ///         funder reclaimed it.
    function funding(bytes32 taskId, address funder)
        external
        view
        returns (uint256 deposit, bool settled, bool reclaimed)
    {
        Funding storage f = _fundings[taskId][funder];
        address settledFunder = _settlements[taskId].funder;
        return (f.deposit, settledFunder != address(0) && settledFunder == funder, f.reclaimed);
    }

    /// @notice What the settled funder may withdraw (or withdrew) after settlement, and whether it did.
    function refundOf(bytes32 taskId) external view returns (uint256 amount, bool refunded) {
        Settlement storage s = _settlements[taskId];
        return (s.refund, s.refunded);
    }

    /// @dev The settlement's split of `deposit`: the data fee = ceil(dataBytes * DATA_FEE_PER_MIB / 2^20)
    ///      (at most the deposit: the rollup keeps a task's bytes within what its deposit pays for, so
    ///      the cap only guards a rollup whose fee differs), then fee = min(epochs * FEE_PER_EPOCH, what
    ///      is left), the protocol's share (the data fee and a share of the fee), the pool (the rest of
    ///      the fee) and the refund (the rest of the deposit).
    function _split(uint256 deposit, uint32 epochsTrained, uint64 totalCleanUpdates, uint64 dataBytes)
        private
        view
        returns (uint256 dataFee, uint256 fee, uint256 protocol, uint256 pool, uint256 refund)
    {
        dataFee = (uint256(dataBytes) * DATA_FEE_PER_MIB + (1 << 20) - 1) >> 20;
        if (dataFee > deposit) dataFee = deposit;
        fee = uint256(epochsTrained) * FEE_PER_EPOCH;
        if (fee > deposit - dataFee) fee = deposit - dataFee;
        uint256 share = fee * PROTOCOL_SHARE_BPS / 10_000;
        protocol = dataFee + share;
        pool = fee - share;
        refund = deposit - dataFee - fee;
        if (totalCleanUpdates == 0) {
            // nobody to pay: the pool goes to the protocol, never back to the requester, who
            // would otherwise gain by getting every client flagged (its rules, its sybils)
            protocol += pool;
            pool = 0;
        }
    }

    function _pay(address to, uint256 amount) private {
        (bool ok,) = payable(to).call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
