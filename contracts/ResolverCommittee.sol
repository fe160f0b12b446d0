// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {MPSRollup} from "./MPSRollup.sol";

/// @title ResolverCommittee
/// @notice Decides MPSRollup's fraud challenges by a threshold of independent resolvers (k of m), so
///         that no single key discards honest batches or keeps fraudulent ones (issue 12). Each
///         resolver re-executes the challenged batch (`mps-node replay` / `verify`) and votes once per
///         challenge; the first outcome to reach `threshold` votes is applied.
/// @dev Until an on-chain dispute game replaces it, this is the trusted part of the rollup: a majority
///      of the committee (threshold > members / 2) can still decide wrongly. It gains nothing by it: a
///      lost challenge's bond goes to the sequencer and slashed stakes are burned. Votes are keyed by
///      the rollup's challenge id, so votes on one challenge never count for a later one on the same
///      batch index.
contract ResolverCommittee {
    MPSRollup public immutable rollup;
    /// @notice Votes an outcome needs.
    uint256 public immutable threshold;
    /// @notice Number of resolvers.
    uint256 public immutable members;
    mapping(address account => bool) public isResolver;
    /// @notice Whether `resolver` voted on challenge `challengeId`.
    mapping(uint64 challengeId => mapping(address resolver => bool)) public voted;
    /// @notice Votes for (true) and against (false) fraud, per challenge.
    mapping(uint64 challengeId => mapping(bool fraud => uint256 count)) public votes;

    error BadThreshold(uint256 threshold, uint256 members);
    error BadResolver(address resolver);
    error NotResolver(address caller);
    error AlreadyVoted(uint64 challengeId, address resolver);

    event Voted(uint256 indexed batchIndex, uint64 indexed challengeId, address indexed resolver, bool fraud);

    constructor(address rollup_, address[] memory resolvers, uint256 threshold_) {
        uint256 m = resolvers.length;
        if (threshold_ == 0 || threshold_ > m || 2 * threshold_ <= m) revert BadThreshold(threshold_, m);
        for (uint256 i = 0; i < m; i++) {
            address r = resolvers[i];
            if (r == address(0) || isResolver[r]) revert BadResolver(r);
            isResolver[r] = true;
        }
        rollup = MPSRollup(rollup_);
        threshold = threshold_;
        members = m;
    }

    /// @notice Vote on the open fraud challenge of batch `batchIndex`; the `threshold`-th vote for an
    ///         outcome resolves it on the rollup (which reverts if no challenge is open).
    function vote(uint256 batchIndex, bool fraud) external {
        if (!isResolver[msg.sender]) revert NotResolver(msg.sender);
        uint64 id = rollup.openChallengeId(batchIndex);
        if (voted[id][msg.sender]) revert AlreadyVoted(id, msg.sender);
        voted[id][msg.sender] = true;
        uint256 n = ++votes[id][fraud];
        emit Voted(batchIndex, id, msg.sender, fraud);
        if (n == threshold) rollup.resolveChallenge(batchIndex, fraud);
    }
}
