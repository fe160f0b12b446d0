// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AdminControlled} from "./AdminControlled.sol";
import {ReentrancyGuard} from "./ReentrancyGuard.sol";

/// @title MPSRollup
/// @notice The MPS chain's state commitments on L1. The sequencer commits batches of rollup blocks in
///         order; anyone may challenge a batch, with a bond: its data (a data challenge, for
///         DA_CHALLENGE_BLOCKS L1 blocks) or its state root (a fraud challenge, for CHALLENGE_BLOCKS).
///         A batch becomes final once its window is over and no challenge is open on it or an earlier
///         batch. SlashingManager, RewardManager and StakingRegistry only accept proofs against
///         finalized state roots.
/// @dev Data availability, in the style of OP Stack's Alt-DA DataAvailabilityChallenge: `dataHash` is
///      keccak256 of the concatenated keccak256 hashes of the batch data's chunks (docs/contracts.md,
///      "Batch data"). The data is served off-chain (the sequencer's RPC); a verifier that cannot get it
///      bonds DA_BOND on `challengeData`, and then every chunk must be published here (`publishChunk`,
///      checked against `dataHash`) within DA_RESOLVE_BLOCKS, or anyone may `expireData`: the batch and
///      every later one are void. So withheld data can never finalize, whoever holds the sequencer's key.
///      The windows nest (DA_CHALLENGE_BLOCKS + DA_RESOLVE_BLOCKS < CHALLENGE_BLOCKS), so published data
///      leaves time for a fraud challenge on it. There is no on-chain fraud proof yet: a fraud challenge is
///      decided by the `resolver`, a ResolverCommittee of k-of-m resolvers re-executing the batch
///      off-chain (`mps-node replay`); a lost fraud challenge's bond goes to the sequencer, never to the
///      parties that decide.
///      Batches finalize in order, which makes `isFinalized` O(1): the batches with an open challenge are
///      kept in a list sorted by batch index, whose head is the earliest one.
contract MPSRollup is AdminControlled, ReentrancyGuard {
    /// @dev stateRoot | dataHash | lastBlock, committedAt, commitId | challenger: a commit writes the
    ///      first three. `commitId` numbers commits, so a batch index reused after a discard starts with
    ///      no data challenge of its own.
    struct Batch {
        bytes32 stateRoot;
        bytes32 dataHash;
        uint64 lastBlock;
        uint64 committedAt;
        uint64 commitId;
        address challenger;
        uint64 challengeId; // of the open fraud challenge: the resolvers' votes are keyed by it
    }

    /// @dev A batch commit's data challenge (one slot): who bonded, when, how many chunks are out.
    struct DataChallenge {
        address challenger;
        uint64 startBlock;
        uint16 published;
        DataStatus status;
    }

    enum DataStatus {
        None,
        Active,
        Resolved,
        Expired,
        Voided
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
    /// @notice L1 blocks, from a batch's commit, during which its data may be challenged.
    uint256 public immutable DA_CHALLENGE_BLOCKS;
    /// @notice L1 blocks, from a data challenge, to publish every chunk of the batch's data.
    uint256 public immutable DA_RESOLVE_BLOCKS;
    /// @notice Exact bond a data challenge locks, in wei: back to the challenger if the data never comes,
    ///         to whoever publishes its last chunk otherwise (it paid for the calldata).
    uint256 public immutable DA_BOND;
    /// @notice The most chunks a batch's data may have (a data challenge counts them in 16 bits).
    uint256 public constant MAX_CHUNKS = 65_535;

    /// @notice The only address allowed to commit batches.
    address public sequencer;
    /// @notice Index the next committed batch must have (also the number of live batches).
    uint256 public nextBatchIndex;
    /// @notice Bonds credited back (to a challenger), forfeited (to the sequencer) or earned (by a data
    ///         publisher), withdrawn with `withdrawBond`.
    mapping(address account => uint256) public bondBalance;

    mapping(uint256 batchIndex => Batch) private _batches;
    mapping(uint64 commitId => DataChallenge) private _dataChallenges;
    mapping(uint64 commitId => mapping(uint256 word => uint256 bits)) private _publishedChunks;
    mapping(uint256 node => uint256 count) private _openCount; // open challenges on a listed batch
    mapping(uint256 node => Link) private _links;
    uint64 private _commits; // commits so far: the next commit's id is _commits + 1
    uint64 private _challenges; // fraud challenges so far
    /// @notice Who decides fraud challenges (a ResolverCommittee: k of m resolvers), wired once.
    address public resolver;
    uint256 private _openHead; // earliest open challenge (batchIndex + 1), 0 if none
    uint256 private _openTail; // latest open challenge (batchIndex + 1), 0 if none

    error NotSequencer(address caller);
    error WrongBatchIndex(uint256 given, uint256 expected);
    error WrongPrevStateRoot(bytes32 given, bytes32 expected);
    error NonIncreasingLastBlock(uint64 given, uint64 previous);
    error PastDeadline(uint64 l1Deadline, uint256 blockNumber);
    /// @notice No live batch has this index (never committed, or discarded by a fraud resolution).
    error UnknownBatch(uint256 batchIndex);
    /// @notice The batch is live but not final yet (window running, or an open challenge at or before it).
    error NotFinalized(uint256 batchIndex);
    error WrongBond(uint256 sent, uint256 required);
    /// @notice The data windows do not nest inside the fraud window (DA_CHALLENGE + DA_RESOLVE < CHALLENGE).
    error BadWindows(uint256 daChallengeBlocks, uint256 daResolveBlocks, uint256 challengeBlocks);
    error NoActiveDataChallenge(uint256 batchIndex);
    error ResolveWindowClosed(uint256 batchIndex, uint256 deadline);
    error ResolveWindowOpen(uint256 batchIndex, uint256 deadline);
    /// @notice The chunk hashes given do not hash to the batch's `dataHash`, or are too many.
    error WrongChunkHashes(uint256 batchIndex);
    error ChunkOutOfRange(uint256 index, uint256 chunks);
    error WrongChunk(uint256 batchIndex, uint256 index);
    error ChunkAlreadyPublished(uint256 batchIndex, uint256 index);
    error ChallengeWindowClosed(uint256 batchIndex, uint256 windowEnd);
    error AlreadyChallenged(uint256 batchIndex, address challenger);
    error NoOpenChallenge(uint256 batchIndex);
    error NotResolver(address caller);
    error ResolverAlreadySet(address resolver);
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
    event SequencerSet(address indexed sequencer);
    event ResolverSet(address indexed resolver);
    event DataChallenged(uint256 indexed batchIndex, address indexed challenger);
    /// @notice Chunk `index` of batch `batchIndex`'s data, published (in the log itself, so that a
    ///         verifier reads it from the logs whatever account or contract sent the call).
    event ChunkPublished(uint256 indexed batchIndex, uint256 index, bytes chunk);
    /// @notice Every chunk of the batch's data is on L1; `publisher` earned the bond.
    event DataChallengeResolved(uint256 indexed batchIndex, address indexed publisher);
    /// @notice The data never came: the batch and every later one were discarded.
    event DataChallengeExpired(uint256 indexed batchIndex);

    modifier onlySequencer() {
        if (msg.sender != sequencer) revert NotSequencer(msg.sender);
        _;
    }

    constructor(
        address sequencer_,
        uint256 challengeBlocks,
        uint256 challengeBond,
        uint256 daChallengeBlocks,
        uint256 daResolveBlocks,
        uint256 daBond,
        bytes32 genesisStateRoot_,
        address admin_
    ) AdminControlled(admin_) {
        if (sequencer_ == address(0)) revert ZeroAddress();
        if (daChallengeBlocks == 0 || daResolveBlocks == 0 || daChallengeBlocks + daResolveBlocks >= challengeBlocks) {
            revert BadWindows(daChallengeBlocks, daResolveBlocks, challengeBlocks);
        }
        sequencer = sequencer_;
        CHALLENGE_BLOCKS = challengeBlocks;
        CHALLENGE_BOND = challengeBond;
        DA_CHALLENGE_BLOCKS = daChallengeBlocks;
        DA_RESOLVE_BLOCKS = daResolveBlocks;
        DA_BOND = daBond;
        genesisStateRoot = genesisStateRoot_;
        emit SequencerSet(sequencer_);
    }

    // ------------------------------------------------------------------ sequencer

    /// @notice Commit the batch that takes the rollup from `prevStateRoot` to `newStateRoot`; its rollup
    ///         blocks end at height `lastBlock`, and `dataHash` commits to their contents (the hash of its
    ///         data's chunk hashes). It reverts once the L1 is past `l1Deadline`: a batch must hold every
    ///         L1 event older than the sequencing window by the block it lands in (ForcedInbox), so the
    ///         poster checks that for a deadline, and a commitment mined later reverts instead of being
    ///         fraud.
    function commitBatch(
        uint256 batchIndex,
        bytes32 prevStateRoot,
        bytes32 newStateRoot,
        bytes32 dataHash,
        uint64 lastBlock,
        uint64 l1Deadline
    ) external onlySequencer {
        if (block.number > l1Deadline) revert PastDeadline(l1Deadline, block.number);
        uint256 next = nextBatchIndex;
        if (batchIndex != next) revert WrongBatchIndex(batchIndex, next);
        bytes32 expectedRoot = next == 0 ? genesisStateRoot : _batches[next - 1].stateRoot;
        if (prevStateRoot != expectedRoot) revert WrongPrevStateRoot(prevStateRoot, expectedRoot);
        uint64 previous = next == 0 ? 0 : _batches[next - 1].lastBlock;
        if (lastBlock <= previous) revert NonIncreasingLastBlock(lastBlock, previous);

        Batch storage b = _batches[batchIndex];
        if (b.commitId != 0) _voidChallenges(batchIndex, b); // a discarded record is reused
        b.stateRoot = newStateRoot;
        b.dataHash = dataHash;
        b.lastBlock = lastBlock;
        b.committedAt = uint64(block.number);
        b.commitId = ++_commits;
        nextBatchIndex = next + 1;
        emit BatchCommitted(batchIndex, prevStateRoot, newStateRoot, dataHash, lastBlock);
    }

    // ------------------------------------------------------------------ challengers (anyone)

    /// @notice Dispute batch `batchIndex`'s state root, locking CHALLENGE_BOND until the resolvers decide.
    ///         While the challenge is open, neither this batch nor any later one can finalize.
    function challenge(uint256 batchIndex) external payable {
        if (msg.value != CHALLENGE_BOND) revert WrongBond(msg.value, CHALLENGE_BOND);
        if (batchIndex >= nextBatchIndex) revert UnknownBatch(batchIndex);
        Batch storage b = _batches[batchIndex];
        uint256 windowEnd = uint256(b.committedAt) + CHALLENGE_BLOCKS;
        if (block.number >= windowEnd) revert ChallengeWindowClosed(batchIndex, windowEnd);
        if (b.challenger != address(0)) revert AlreadyChallenged(batchIndex, b.challenger);

        b.challenger = msg.sender;
        b.challengeId = ++_challenges;
        _open(batchIndex + 1);
        emit BatchChallenged(batchIndex, msg.sender);
    }

    /// @notice Demand batch `batchIndex`'s data on L1, locking DA_BOND: every chunk must then be published
    ///         within DA_RESOLVE_BLOCKS, or the batch is void (`expireData`). Until then neither this
    ///         batch nor any later one can finalize.
    function challengeData(uint256 batchIndex) external payable {
        if (msg.value != DA_BOND) revert WrongBond(msg.value, DA_BOND);
        if (batchIndex >= nextBatchIndex) revert UnknownBatch(batchIndex);
        Batch storage b = _batches[batchIndex];
        uint256 windowEnd = uint256(b.committedAt) + DA_CHALLENGE_BLOCKS;
        if (block.number >= windowEnd) revert ChallengeWindowClosed(batchIndex, windowEnd);
        DataChallenge storage c = _dataChallenges[b.commitId];
        if (c.status != DataStatus.None) revert AlreadyChallenged(batchIndex, c.challenger);

        c.challenger = msg.sender;
        c.startBlock = uint64(block.number);
        c.status = DataStatus.Active;
        _open(batchIndex + 1);
        emit DataChallenged(batchIndex, msg.sender);
    }

    /// @notice Publish chunk `index` of batch `batchIndex`'s data while its data challenge is open (anyone:
    ///         the data, not the sender, is what is checked). `chunkHashes` must hash to the batch's
    ///         `dataHash` and `chunk` to `chunkHashes[index]`; the chunk is logged (`ChunkPublished`),
    ///         which is where verifiers read it. The last chunk resolves the challenge and earns DA_BOND.
    function publishChunk(uint256 batchIndex, bytes32[] calldata chunkHashes, uint256 index, bytes calldata chunk)
        external
    {
        if (batchIndex >= nextBatchIndex) revert UnknownBatch(batchIndex);
        Batch storage b = _batches[batchIndex];
        uint64 id = b.commitId;
        DataChallenge storage c = _dataChallenges[id];
        if (c.status != DataStatus.Active) revert NoActiveDataChallenge(batchIndex);
        uint256 deadline = uint256(c.startBlock) + DA_RESOLVE_BLOCKS;
        if (block.number >= deadline) revert ResolveWindowClosed(batchIndex, deadline);
        uint256 chunks = chunkHashes.length;
        if (chunks > MAX_CHUNKS || keccak256(abi.encodePacked(chunkHashes)) != b.dataHash) {
            revert WrongChunkHashes(batchIndex);
        }
        if (index >= chunks) revert ChunkOutOfRange(index, chunks);
        if (keccak256(chunk) != chunkHashes[index]) revert WrongChunk(batchIndex, index);
        uint256 bits = _publishedChunks[id][index >> 8];
        uint256 bit = 1 << (index & 255);
        if (bits & bit != 0) revert ChunkAlreadyPublished(batchIndex, index);

        _publishedChunks[id][index >> 8] = bits | bit;
        uint16 published = c.published + 1; // at most MAX_CHUNKS
        c.published = published;
        emit ChunkPublished(batchIndex, index, chunk);
        if (published == chunks) {
            c.status = DataStatus.Resolved;
            bondBalance[msg.sender] += DA_BOND;
            _close(batchIndex + 1);
            emit DataChallengeResolved(batchIndex, msg.sender);
        }
    }

    /// @notice Void batch `batchIndex` and every later one when its data was challenged and not all
    ///         published in time (anyone may call); the challenger's bond is credited back.
    function expireData(uint256 batchIndex) external {
        uint256 next = nextBatchIndex;
        if (batchIndex >= next) revert UnknownBatch(batchIndex);
        DataChallenge storage c = _dataChallenges[_batches[batchIndex].commitId];
        if (c.status != DataStatus.Active) revert NoActiveDataChallenge(batchIndex);
        uint256 deadline = uint256(c.startBlock) + DA_RESOLVE_BLOCKS;
        if (block.number < deadline) revert ResolveWindowOpen(batchIndex, deadline);

        c.status = DataStatus.Expired;
        bondBalance[c.challenger] += DA_BOND;
        _discardFrom(batchIndex, next);
        emit DataChallengeExpired(batchIndex);
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

    /// @notice Credit back the bonds of the challenges open on a batch that was discarded (by a fraud
    ///         resolution or an expired data challenge on an earlier batch); anyone may call, and
    ///         `commitBatch` does the same when it reuses the index.
    function releaseVoidedBond(uint256 batchIndex) external {
        Batch storage b = _batches[batchIndex];
        // slither-disable-next-line incorrect-equality (an enum status, not a balance)
        bool open = b.challenger != address(0) || _dataChallenges[b.commitId].status == DataStatus.Active;
        if (batchIndex < nextBatchIndex || !open) revert NotVoided(batchIndex);
        _voidChallenges(batchIndex, b);
    }

    // ------------------------------------------------------------------ the resolver (k of m), the admin

    /// @notice Decide the open fraud challenge on `batchIndex`. Fraud: this batch and every later one are
    ///         discarded (the sequencer recommits from the state root of batch `batchIndex - 1`) and the bond
    ///         is credited back to the challenger. No fraud: the challenge is cleared, the batch keeps its
    ///         commit block (so it may be final at once), and the bond is credited to the sequencer (the
    ///         party wrongly accused; never to the resolvers, who decide).
    function resolveChallenge(uint256 batchIndex, bool fraud) external {
        if (msg.sender != resolver) revert NotResolver(msg.sender);
        uint256 next = nextBatchIndex;
        if (batchIndex >= next) revert UnknownBatch(batchIndex);
        Batch storage b = _batches[batchIndex];
        address challenger = b.challenger;
        if (challenger == address(0)) revert NoOpenChallenge(batchIndex);

        b.challenger = address(0);
        if (fraud) {
            bondBalance[challenger] += CHALLENGE_BOND;
            _discardFrom(batchIndex, next);
        } else {
            _close(batchIndex + 1);
            bondBalance[sequencer] += CHALLENGE_BOND;
        }
        emit ChallengeResolved(batchIndex, fraud);
    }

    /// @notice Wire the fraud resolver (a ResolverCommittee), once: whoever could re-point it could
    ///         decide every challenge.
    function setResolver(address resolver_) external onlyAdmin {
        if (resolver != address(0)) revert ResolverAlreadySet(resolver);
        if (resolver_ == address(0)) revert ZeroAddress();
        resolver = resolver_;
        emit ResolverSet(resolver_);
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

    /// @notice The id of batch `batchIndex`'s open fraud challenge; reverts NoOpenChallenge if none.
    function openChallengeId(uint256 batchIndex) external view returns (uint64) {
        if (batchIndex >= nextBatchIndex) revert UnknownBatch(batchIndex);
        Batch storage b = _batches[batchIndex];
        if (b.challenger == address(0)) revert NoOpenChallenge(batchIndex);
        return b.challengeId;
    }

    /// @notice Batch `batchIndex`'s data challenge: challenger, start block, chunks published, status
    ///         (0 none, 1 active, 2 resolved, 3 expired, 4 voided with its batch).
    function dataChallenge(uint256 batchIndex)
        external
        view
        returns (address challenger, uint64 startBlock, uint16 published, DataStatus status)
    {
        if (batchIndex >= nextBatchIndex) revert UnknownBatch(batchIndex);
        DataChallenge storage c = _dataChallenges[_batches[batchIndex].commitId];
        return (c.challenger, c.startBlock, c.published, c.status);
    }

    /// @notice Whether chunk `index` of batch `batchIndex`'s data was published under its data challenge.
    function chunkPublished(uint256 batchIndex, uint256 index) external view returns (bool) {
        if (batchIndex >= nextBatchIndex) revert UnknownBatch(batchIndex);
        return _publishedChunks[_batches[batchIndex].commitId][index >> 8] & (1 << (index & 255)) != 0;
    }

    /// @notice The earliest batch with an open challenge, and whether there is one.
    function firstOpenChallenge() external view returns (bool open, uint256 batchIndex) {
        uint256 head = _openHead;
        return head == 0 ? (false, 0) : (true, head - 1);
    }

    // ------------------------------------------------------------------ open-challenge list

    /// @dev One more open challenge (fraud or data) on the batch of `node`; listed at its first.
    function _open(uint256 node) private {
        if (_openCount[node]++ == 0) _insertOpen(node);
    }

    /// @dev One open challenge fewer on the batch of `node`; unlisted at its last.
    function _close(uint256 node) private {
        if (--_openCount[node] == 0) _removeOpen(node);
    }

    /// @dev Discard batches `batchIndex` .. `next - 1`: the sequencer recommits from the root before them.
    function _discardFrom(uint256 batchIndex, uint256 next) private {
        _truncateOpen(batchIndex + 1);
        nextBatchIndex = batchIndex;
        emit BatchesDiscarded(batchIndex, next - batchIndex);
    }

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

    /// @dev Credit back the bonds of the challenges still open on a discarded batch record.
    function _voidChallenges(uint256 batchIndex, Batch storage b) private {
        _openCount[batchIndex + 1] = 0; // its links went with the truncation
        address challenger = b.challenger;
        if (challenger != address(0)) {
            b.challenger = address(0);
            bondBalance[challenger] += CHALLENGE_BOND;
            emit ChallengeVoided(batchIndex, challenger);
        }
        DataChallenge storage c = _dataChallenges[b.commitId];
        if (c.status == DataStatus.Active) {
            c.status = DataStatus.Voided;
            bondBalance[c.challenger] += DA_BOND;
            emit ChallengeVoided(batchIndex, c.challenger);
        }
    }
}
