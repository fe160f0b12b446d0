// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title ForcedInbox
/// @notice The way around a censoring sequencer (issue 12): anyone posts a signed MPS transaction here,
///         and the rollup must carry it within SEQUENCING_WINDOW L1 blocks, like OP Stack deposits and
///         Arbitrum's delayed inbox.
/// @dev The contract checks nothing of the transaction but its size: the rollup decides what it means.
///      Its `TxForced` event is an L1 event like a stake; the sequencer brings it in as an `l1_deposit`
///      of kind `forced`, whose execution applies the inner transaction as a block would (a bad
///      signature or a used nonce fail the deposit and change nothing; a failing call uses its nonce,
///      as in a block). The derivation rule the
///      verifier checks (node/l1/derivation.py): a batch committed at L1 block C must, by its last
///      block, hold every L1 event of a block <= C - SEQUENCING_WINDOW, or it is fraud and is challenged.
///      The price of forcing is the L1 gas of the calldata; there is no fee to collect and no owner.
contract ForcedInbox {
    /// @notice Largest transaction accepted, in bytes (the rollup's max_tx_size).
    uint256 public immutable MAX_TX_BYTES;
    /// @notice L1 blocks within which a batch must include an event (of this inbox, or any other
    ///         L1 event the rollup follows).
    uint64 public immutable SEQUENCING_WINDOW;

    error BadParameters(uint256 maxTxBytes, uint64 sequencingWindow);
    error EmptyTx();
    error TxTooLarge(uint256 size, uint256 limit);

    event TxForced(address indexed sender, bytes rawTx);

    constructor(uint256 maxTxBytes, uint64 sequencingWindow) {
        if (maxTxBytes == 0 || sequencingWindow == 0) revert BadParameters(maxTxBytes, sequencingWindow);
        MAX_TX_BYTES = maxTxBytes;
        SEQUENCING_WINDOW = sequencingWindow;
    }

    /// @notice Queue `rawTx` (an MPS transaction's wire bytes) for the rollup.
    function forceTx(bytes calldata rawTx) external {
        if (rawTx.length == 0) revert EmptyTx();
        if (rawTx.length > MAX_TX_BYTES) revert TxTooLarge(rawTx.length, MAX_TX_BYTES);
        emit TxForced(msg.sender, rawTx);
    }
}
