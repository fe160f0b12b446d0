// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AdminControlled} from "./AdminControlled.sol";
import {ReentrancyGuard} from "./ReentrancyGuard.sol";

/// @title MPSRollup
/// @notice The MPS chain's state commitments on L1. The sequencer commits batches of rollup blocks in
///         order; each batch may be challenged by a registered verifier for CHALLENGE_BLOCKS L1 blocks, and
///         becomes final once its window is over and no earlier or same batch has an open challenge.
///         SlashingManager and RewardManager only accept proofs against finalized state roots.
/// @dev Trust model (see docs/contracts.md):
///      - there is no on-chain fraud proof: a challenge is decided by the admin (a multisig or committee in
///        production) re-executing the batch off-chain with `mps-node replay`;
///      - the batch's transactions are not posted to L1; `dataHash` commits to them and the sequencer's
///        RPC serves them (data availability is trusted to the sequencer).
///      A batch record is fixed-size (three storage slots), so committing costs the same whatever the
///      number of rollup blocks in the batch. Batches finalize in order, which makes `isFinalized` O(1):
///      the open challenges are kept in a list sorted by batch index, whose head is the earliest one.
contract MPSRollup is AdminControlled, ReentrancyGuard {
    /// @dev stateRoot | dataHash | lastBlock, committedAt | challenger: a commit writes the first three.
    struct Batch {
        bytes32 stateRoot;
        bytes32 dataHash;
        uint64 lastBlock;
        uint64 committedAt;
        address challenger;
    }

    /// @dev A node of the sorted doubly linked list of open challenges; links hold batchIndex + 1 (0: none).
    struct Link {
        uint128 prev;
        uint128 next;
    }

    /// @notice L1 blocks during which a batch may be challenged, counted from its commit.
    uint256 public immutable CHALLENGE_BLOCKS;
    /// @notice Exact bond a challenge locks, in wei.
    uint256 public immutable CHALLENGE_BOND;
    /// @notice The rollup's state root before any batch (its genesis block's root).
    bytes32 public immutable genesisStateRoot;

    /// @notice The only address allowed to commit batches.
    address public sequencer;
    /// @notice Index the next committed batch must have (also the number of live batches).
    uint256 public nextBatchIndex;
    /// @notice Addresses allowed to challenge.
    mapping(address verifier => bool) public isVerifier;
    /// @notice Bonds credited back (to a challenger) or forfeited (to the admin), withdrawn with `withdrawBond`.
    mapping(address account => uint256) public bondBalance;

    mapping(uint256 batchIndex => Batch) private _batches;
    mapping(uint256 node => Link) private _links;
    uint256 private _openHead; // earliest open challenge (batchIndex + 1), 0 if none
    uint256 private _openTail; // latest open challenge (batchIndex + 1), 0 if none

    error NotSequencer(address caller);
    error WrongBatchIndex(uint256 given, uint256 expected);
    error WrongPrevStateRoot(bytes32 given, bytes32 expected);
    error NonIncreasingLastBlock(uint64 given, uint64 previous);
    /// @notice No live batch has this index (never committed, or discarded by a fraud resolution).
    error UnknownBatch(uint256 batchIndex);
    /// @notice The batch is live but not final yet (window running, or an open challenge at or before it).
    error NotFinalized(uint256 batchIndex);
    error NotVerifier(address caller);
    error WrongBond(uint256 sent, uint256 required);
    error ChallengeWindowClosed(uint256 batchIndex, uint256 windowEnd);
    error AlreadyChallenged(uint256 batchIndex, address challenger);
    error NoOpenChallenge(uint256 batchIndex);
    /// @notice `releaseVoidedBond` on a batch that is live or carries no challenge.
    error NotVoided(uint256 batchIndex);
    error NothingToWithdraw();
    error TransferFailed(address to, uint256 amount);

    event BatchCommitted(
        uint256 indexed batchIndex, bytes32 prevStateRoot, bytes32 newStateRoot, bytes32 dataHash, uint64 lastBlock
    );
    event BatchChallenged(uint256 indexed batchIndex, address indexed challenger);
    event ChallengeResolved(uint256 indexed batchIndex, bool fraud);
    /// @notice Batches `fromBatchIndex` .. `fromBatchIndex + count - 1` were discarded by a fraud resolution.
    event BatchesDiscarded(uint256 indexed fromBatchIndex, uint256 count);
    /// @notice A challenge on a batch that a fraud resolution discarded was dropped; its bond is credited back.
    event ChallengeVoided(uint256 indexed batchIndex, address indexed challenger);
    event BondWithdrawn(address indexed account, uint256 amount);
    event VerifierSet(address indexed verifier, bool allowed);
    event SequencerSet(address indexed sequencer);

    modifier onlySequencer() {
        if (msg.sender != sequencer) revert NotSequencer(msg.sender);
        _;
    }

    constructor(
        address sequencer_,
        uint256 challengeBlocks,
        uint256 challengeBond,
        bytes32 genesisStateRoot_,
        address admin_
    ) AdminControlled(admin_) {
        if (sequencer_ == address(0)) revert ZeroAddress();
        sequencer = sequencer_;
        CHALLENGE_BLOCKS = challengeBlocks;
        CHALLENGE_BOND = challengeBond;
        genesisStateRoot = genesisStateRoot_;
        emit SequencerSet(sequencer_);
    }

    // ------------------------------------------------------------------ sequencer

    /// @notice Commit the batch that takes the rollup from `prevStateRoot` to `newStateRoot`; its rollup
    ///         blocks end at height `lastBlock`, and `dataHash` commits to their contents.
    function commitBatch(
        uint256 batchIndex,
        bytes32 prevStateRoot,
        bytes32 newStateRoot,
        bytes32 dataHash,
        uint64 lastBlock
    ) external onlySequencer {
        uint256 next = nextBatchIndex;
        if (batchIndex != next) revert WrongBatchIndex(batchIndex, next);
        bytes32 expectedRoot = next == 0 ? genesisStateRoot : _batches[next - 1].stateRoot;
        if (prevStateRoot != expectedRoot) revert WrongPrevStateRoot(prevStateRoot, expectedRoot);
        uint64 previous = next == 0 ? 0 : _batches[next - 1].lastBlock;
        if (lastBlock <= previous) revert NonIncreasingLastBlock(lastBlock, previous);

        Batch storage b = _batches[batchIndex];
        if (b.challenger != address(0)) _voidChallenge(batchIndex, b); // a discarded record is reused
        b.stateRoot = newStateRoot;
        b.dataHash = dataHash;
        b.lastBlock = lastBlock;
        b.committedAt = uint64(block.number);
        nextBatchIndex = next + 1;
        emit BatchCommitted(batchIndex, prevStateRoot, newStateRoot, dataHash, lastBlock);
    }

    // ------------------------------------------------------------------ verifiers

    /// @notice Dispute batch `batchIndex`, locking CHALLENGE_BOND until the admin resolves it. While the
    ///         challenge is open, neither this batch nor any later one can finalize.
    function challenge(uint256 batchIndex) external payable {
        if (!isVerifier[msg.sender]) revert NotVerifier(msg.sender);
        if (msg.value != CHALLENGE_BOND) revert WrongBond(msg.value, CHALLENGE_BOND);
        if (batchIndex >= nextBatchIndex) revert UnknownBatch(batchIndex);
        Batch storage b = _batches[batchIndex];
        uint256 windowEnd = uint256(b.committedAt) + CHALLENGE_BLOCKS;
        if (block.number >= windowEnd) revert ChallengeWindowClosed(batchIndex, windowEnd);
        if (b.challenger != address(0)) revert AlreadyChallenged(batchIndex, b.challenger);

        b.challenger = msg.sender;
        _insertOpen(batchIndex + 1);
        emit BatchChallenged(batchIndex, msg.sender);
    }

    /// @notice Pay out the caller's credited bonds.
    function withdrawBond() external nonReentrant {
        uint256 amount = bondBalance[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        bondBalance[msg.sender] = 0;
        emit BondWithdrawn(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    /// @notice Credit back the bond of a challenge whose batch a fraud resolution discarded (anyone may
    ///         call; `commitBatch` does the same when it reuses the index).
    function releaseVoidedBond(uint256 batchIndex) external {
        Batch storage b = _batches[batchIndex];
        if (batchIndex < nextBatchIndex || b.challenger == address(0)) revert NotVoided(batchIndex);
        _voidChallenge(batchIndex, b);
    }

    // ------------------------------------------------------------------ admin (the trusted resolver)

    /// @notice Decide the open challenge on `batchIndex`. Fraud: this batch and every later one are
    ///         discarded (the sequencer recommits from the state root of batch `batchIndex - 1`) and the bond
    ///         is credited back to the challenger. No fraud: the challenge is cleared, the batch keeps its
    ///         commit block (so it may be final at once), and the bond is credited to the admin.
    function resolveChallenge(uint256 batchIndex, bool fraud) external onlyAdmin {
        uint256 next = nextBatchIndex;
        if (batchIndex >= next) revert UnknownBatch(batchIndex);
        Batch storage b = _batches[batchIndex];
        address challenger = b.challenger;
        if (challenger == address(0)) revert NoOpenChallenge(batchIndex);

        b.challenger = address(0);
        uint256 node = batchIndex + 1;
        if (fraud) {
            _truncateOpen(node);
            nextBatchIndex = batchIndex;
            bondBalance[challenger] += CHALLENGE_BOND;
            emit BatchesDiscarded(batchIndex, next - batchIndex);
        } else {
            _removeOpen(node);
            bondBalance[admin] += CHALLENGE_BOND;
        }
        emit ChallengeResolved(batchIndex, fraud);
    }

    /// @notice Allow or disallow `verifier` to challenge.
    function setVerifier(address verifier, bool allowed) external onlyAdmin {
        isVerifier[verifier] = allowed;
        emit VerifierSet(verifier, allowed);
    }

    /// @notice Replace the sequencer.
    function setSequencer(address sequencer_) external onlyAdmin {
        if (sequencer_ == address(0)) revert ZeroAddress();
        sequencer = sequencer_;
        emit SequencerSet(sequencer_);
    }

    // ------------------------------------------------------------------ views

    /// @notice The state root after the last live batch (genesisStateRoot before any).
    function lastStateRoot() public view returns (bytes32) {
        uint256 next = nextBatchIndex;
        return next == 0 ? genesisStateRoot : _batches[next - 1].stateRoot;
    }

    /// @notice The last rollup block height covered by a live batch (0 before any).
    function lastCommittedBlock() external view returns (uint64) {
        uint256 next = nextBatchIndex;
        return next == 0 ? 0 : _batches[next - 1].lastBlock;
    }

    /// @notice A live batch's record; reverts UnknownBatch for an index not committed or discarded.
    function batch(uint256 batchIndex)
        external
        view
        returns (bytes32 stateRoot, bytes32 dataHash, uint64 lastBlock, uint64 committedAt, address challenger)
    {
        if (batchIndex >= nextBatchIndex) revert UnknownBatch(batchIndex);
        Batch storage b = _batches[batchIndex];
        return (b.stateRoot, b.dataHash, b.lastBlock, b.committedAt, b.challenger);
    }

    /// @notice True when batch `batchIndex` is live, its window is over, and no challenge is open on it or
    ///         on an earlier batch. Commit blocks never decrease with the index, so a final batch implies
    ///         that every earlier one is final too.
    function isFinalized(uint256 batchIndex) public view returns (bool) {
        if (batchIndex >= nextBatchIndex) return false;
        uint256 head = _openHead;
        if (head != 0 && batchIndex + 1 >= head) return false;
        return block.number >= uint256(_batches[batchIndex].committedAt) + CHALLENGE_BLOCKS;
    }

    /// @notice The state root of a final batch; reverts UnknownBatch or NotFinalized otherwise.
    function finalizedStateRoot(uint256 batchIndex) external view returns (bytes32) {
        if (batchIndex >= nextBatchIndex) revert UnknownBatch(batchIndex);
        if (!isFinalized(batchIndex)) revert NotFinalized(batchIndex);
        return _batches[batchIndex].stateRoot;
    }

    /// @notice The earliest batch with an open challenge, and whether there is one.
    function firstOpenChallenge() external view returns (bool open, uint256 batchIndex) {
        uint256 head = _openHead;
        return head == 0 ? (false, 0) : (true, head - 1);
    }

    // ------------------------------------------------------------------ open-challenge list

    /// @dev Insert `node` keeping the list sorted. Walks back from the tail: a challenge usually targets a
    ///      recent batch, so this is one step in practice, and at most the number of open challenges.
    function _insertOpen(uint256 node) private {
        uint256 prev = _openTail;
        while (prev != 0 && prev > node) prev = _links[prev].prev;
        uint256 next = prev == 0 ? _openHead : _links[prev].next;
        _links[node] = Link(uint128(prev), uint128(next));
        if (prev == 0) _openHead = node;
        else _links[prev].next = uint128(node);
        if (next == 0) _openTail = node;
        else _links[next].prev = uint128(node);
    }

    /// @dev Unlink `node` (O(1)).
    function _removeOpen(uint256 node) private {
        Link memory l = _links[node];
        if (l.prev == 0) _openHead = l.next;
        else _links[l.prev].next = l.next;
        if (l.next == 0) _openTail = l.prev;
        else _links[l.next].prev = l.prev;
        delete _links[node];
    }

    /// @dev Drop `node` and everything after it (the challenges on discarded batches), in O(1); their
    ///      bonds are credited back one by one through `_voidChallenge`.
    function _truncateOpen(uint256 node) private {
        uint256 prev = _links[node].prev;
        if (prev == 0) {
            _openHead = 0;
            _openTail = 0;
        } else {
            _links[prev].next = 0;
            _openTail = prev;
        }
        delete _links[node];
    }

    function _voidChallenge(uint256 batchIndex, Batch storage b) private {
        address challenger = b.challenger;
        b.challenger = address(0);
        bondBalance[challenger] += CHALLENGE_BOND;
        emit ChallengeVoided(batchIndex, challenger);
    }
}
