"""What the client side of the JSON-RPC wire raises: one root, the node's error codes as classes.

It lives here, beside the transport that raises it, because both the SDK and the node's own RPC
clients (the verifier, the CLI) talk to a node and neither may import the other. Each class says
when the node answers its code; the code numbers themselves are the node's (:class:`stf.errors.Code`
and JSON-RPC's envelope codes) and never change, so ``except NonceTooLow`` keeps meaning the same.
"""

from __future__ import annotations

from typing import Any

from stf.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    Code,
)


class ClientError(Exception):
    """The root of every exception the SDK raises, so that one ``except ClientError`` catches
    them all (a node's answer, a failed transport, a bad proof, a missing setting...).

    Not :class:`stf.errors.MPSError`: that one is the node's, raised inside the STF.
    """


class InvalidArgument(ClientError, ValueError):
    """A caller passed what the client side cannot use: an unknown media, an update or a model
    of the wrong size, an unknown trust mode. Still a ``ValueError`` for callers that catch it."""


class RPCError(ClientError):
    """The node answered a JSON-RPC error object; ``code``, ``message`` and ``data`` are its own.

    A code with no class of its own below (a newer node) arrives as a plain ``RPCError``.
    """

    code: int = 0

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.data = data


class TransportError(RPCError):
    """The node could not be reached, or answered something that is not JSON-RPC (``code``: the
    HTTP status, or 0). An ``RPCError`` so that a caller's one ``except RPCError`` covers it."""


class ParseError(RPCError):
    """The node could not parse the request body: a client bug, or a proxy that mangled it."""

    code = PARSE_ERROR


class InvalidRequest(RPCError):
    """The body parsed but is no JSON-RPC request (no method, a wrong ``jsonrpc``...)."""

    code = INVALID_REQUEST


class MethodNotFound(RPCError):
    """The node has no such method: a typo, or a node older than this SDK."""

    code = METHOD_NOT_FOUND


class InvalidParams(RPCError):
    """A parameter is missing, extra, or of the wrong form (a short hash, a bad block tag)."""

    code = INVALID_PARAMS


class InternalError(RPCError):
    """The node failed while answering: its bug, not the caller's; retrying may work."""

    code = INTERNAL_ERROR


class InvalidSignature(RPCError):
    """The transaction's signature does not verify for its sender."""

    code = Code.INVALID_SIGNATURE


class WrongChainId(RPCError):
    """The transaction was signed for another chain id."""

    code = Code.WRONG_CHAIN_ID


class NonceTooLow(RPCError):
    """The sender's nonce is already used by a sealed transaction."""

    code = Code.NONCE_TOO_LOW


class AlreadyKnown(RPCError):
    """This very transaction is already in the mempool or sealed."""

    code = Code.ALREADY_KNOWN


class NonceTooHigh(RPCError):
    """The nonce leaves a gap after the sender's pending ones."""

    code = Code.NONCE_TOO_HIGH


class MalformedTransaction(RPCError):
    """The transaction bytes do not decode as a transaction."""

    code = Code.MALFORMED_TX


class UnknownTxType(RPCError):
    """The transaction's type id is not one this chain knows."""

    code = Code.UNKNOWN_TX_TYPE


class PayloadTooLarge(RPCError):
    """The transaction is over the chain's ``max_tx_size`` (or its blob over ``max_blob_size``)."""

    code = Code.PAYLOAD_TOO_LARGE


class PrivilegedTransaction(RPCError):
    """The type is one only the sequencer may send (L1 deposits, slashes)."""

    code = Code.PRIVILEGED_TX


class MempoolFull(RPCError):
    """The node's mempool is full; send again later."""

    code = Code.MEMPOOL_FULL


class InvalidPayload(RPCError):
    """The payload does not decode as its transaction type requires."""

    code = Code.INVALID_PAYLOAD


class NonceAlreadyPending(RPCError):
    """Another transaction with this sender and nonce is already pending."""

    code = Code.NONCE_ALREADY_PENDING


class BlobNotAllowed(RPCError):
    """This sender may not upload this blob: on a chain that funds its tasks a blob is uploaded
    for a task, by its requester or a client that joined it, or before the task against its
    funding (``stf.fl.uploads``)."""

    code = Code.BLOB_NOT_ALLOWED


class BlobQuotaExceeded(RPCError):
    """The sender's blob bytes for this task and epoch (or this funding) are used up."""

    code = Code.BLOB_QUOTA_EXCEEDED


class LargeTxFailed(RPCError):
    """A transaction with a large payload would fail in execution: it is never included (its
    bytes would be stored for nobody's money); the message says why it would fail."""

    code = Code.LARGE_TX_FAILED


class UnbackedSender(RPCError):
    """On a chain that prices its state, nothing on the L1 backs the sending key (no stake, no
    earlier transaction): stake it first, or open its account with the ``create_task`` (or
    pre-task upload) of a task it funded, which must then succeed (``stf.accounts``)."""

    code = Code.UNBACKED_SENDER


class ExecutionFailed(RPCError):
    """The transaction was sealed but failed, for a reason with no code of its own (none is
    emitted since every execution fault got its own code; kept: codes never change meaning)."""

    code = Code.EXECUTION_FAILED


class NotStaked(RPCError):
    """The sender has no live stake (none, unbonding, slashed, or slashable in this task)."""

    code = Code.NOT_STAKED


class TaskNotFound(RPCError):
    """No task has this id."""

    code = Code.TASK_NOT_FOUND


class TaskClosed(RPCError):
    """The task no longer takes joins or updates (finished or complete)."""

    code = Code.TASK_CLOSED


class NotJoined(RPCError):
    """The sender submits to a task it has not joined."""

    code = Code.NOT_JOINED


class AlreadyJoined(RPCError):
    """The sender joins a task it is already in."""

    code = Code.ALREADY_JOINED


class TaskFull(RPCError):
    """The task has ``max_clients`` clients already."""

    code = Code.TASK_FULL


class WrongEpoch(RPCError):
    """The update names an epoch other than the task's current one."""

    code = Code.WRONG_EPOCH


class DuplicateUpdate(RPCError):
    """The sender already sent an update for this epoch."""

    code = Code.DUPLICATE_UPDATE


class InvalidUpdate(RPCError):
    """The update is not the task's size or dtype, or names chunks that do not fit."""

    code = Code.INVALID_UPDATE


class BlobNotFound(RPCError):
    """A blob the transaction names (a chunk, a model, a script) is not stored."""

    code = Code.BLOB_NOT_FOUND


class NotAuthorized(RPCError):
    """The sender may not do this (an evaluation by neither requester nor evaluator)."""

    code = Code.NOT_AUTHORIZED


class KeyAlreadyBound(RPCError):
    """An L1 stake for a client key that is already staked, unbonding or slashed on the rollup."""

    code = Code.KEY_ALREADY_BOUND


class WrongStakeStatus(RPCError):
    """An L1 unbond, withdrawal or slash that the stake's status does not allow."""

    code = Code.WRONG_STAKE_STATUS


class TaskAlreadyFunded(RPCError):
    """A second L1 funding event for a task id the rollup already recorded as funded."""

    code = Code.TASK_ALREADY_FUNDED


class TooManyOpenTasks(RPCError):
    """``create_task`` while the rollup already has its maximum of open tasks."""

    code = Code.TOO_MANY_OPEN_TASKS


class AlreadyEvaluated(RPCError):
    """``report_evaluation`` for an epoch that already has an accuracy."""

    code = Code.ALREADY_EVALUATED


class BlobAlreadyStored(RPCError):
    """``put_blob`` of bytes the chain already holds (harmless: the blob is there)."""

    code = Code.BLOB_ALREADY_STORED


class SlashableInTask(RPCError):
    """``commit_update`` or ``submit_update`` from a client whose verdict in the task is
    slashable: the STF takes no more updates from it there (its stake may still be staked on
    the L1)."""

    code = Code.SLASHABLE_IN_TASK


class BarredFromTask(RPCError):
    """``commit_update`` or ``submit_update`` from a client barred from the task by its strikes
    (its stake is untouched; it earns nothing more in the task)."""

    code = Code.BARRED_FROM_TASK


class WrongPhase(RPCError):
    """``commit_update`` once the epoch's reveal phase has opened, or ``submit_update`` (the
    reveal) while its commit phase still runs."""

    code = Code.WRONG_PHASE


class NotCommitted(RPCError):
    """``submit_update`` (the reveal) from a client that sent no commitment this epoch."""

    code = Code.NOT_COMMITTED


class CommitmentMismatch(RPCError):
    """The revealed update and salt do not hash to the client's commitment
    (:func:`stf.fl.commit.commitment`); the commitment still stands, a correct reveal may
    follow within the reveal phase."""

    code = Code.COMMITMENT_MISMATCH


class StakeBindingInvalid(RPCError):
    """(A deposit's receipt) an L1 stake whose binding is not the client key's signature of
    its staking account for this chain (:func:`stf.stakes.binding_message`): it does not count.
    """

    code = Code.STAKE_BINDING_INVALID


class TaskNotFunded(RPCError):
    """``create_task`` on a chain whose tasks are funded on the L1 first, naming no funding the
    rollup has recorded for this task id and funder, one already bound, or one past its window:
    the slot costs its requester the L1's BASE_FEE before it is taken."""

    code = Code.TASK_NOT_FUNDED


class ForcedTxInvalid(RPCError):
    """A transaction forced in through the L1's ForcedInbox that could not apply at all (it
    does not decode, is for another chain, has a bad signature or a wrong nonce, or is a
    privileged type): the deposit carrying it failed and changed nothing. Seen in the receipt of
    that ``l1_deposit``."""

    code = Code.FORCED_TX_INVALID


class DataBudgetExhausted(RPCError):
    """The task's deposit pays for no more of its bytes: a commitment's reservation failed
    (nothing committed, nothing owed)."""

    code = Code.DATA_BUDGET_EXHAUSTED


class RecordQuotaExceeded(RPCError):
    """The key holds as many records as a sender may on a chain that prices its state (64):
    delete one (an empty value) before writing a new name."""

    code = Code.RECORD_QUOTA_EXCEEDED


class NotFound(RPCError):
    """What the query asks for does not exist (yet): a block, a receipt, a closed epoch."""

    code = Code.NOT_FOUND


class BodyTooLarge(RPCError):
    """The HTTP body is over the node's ``max_body_size``."""

    code = Code.BODY_TOO_LARGE


class TooManySubscriptions(RPCError):
    """A WebSocket connection, or the node, holds as many subscriptions as it allows."""

    code = Code.TOO_MANY_SUBSCRIPTIONS


class ResponseTooLarge(RPCError):
    """A batch's answers passed the response cap: the rest of the batch was not run."""

    code = Code.RESPONSE_TOO_LARGE


class BodyTimeout(RPCError):
    """The request's body did not arrive within the node's ``body_timeout``."""

    code = Code.BODY_TIMEOUT


class StreamMalformed(RPCError):
    """A ``POST /txs`` body whose frame has a bad length prefix or ends early."""

    code = Code.STREAM_MALFORMED


class StreamStopped(RPCError):
    """Not admitted: an earlier transaction of the same ``POST /txs`` stream was refused."""

    code = Code.STREAM_STOPPED


class BatchTooLarge(RPCError):
    """The JSON-RPC batch has more requests than the node takes at once."""

    code = Code.BATCH_TOO_LARGE


class UnsupportedMediaType(RPCError):
    """The method or body type is not served here (subscriptions need the WebSocket)."""

    code = Code.UNSUPPORTED_MEDIA_TYPE


class ShuttingDown(RPCError):
    """The node is stopping and takes no more requests; try again once it is back."""

    code = Code.SHUTTING_DOWN


#: every class above by its code (tests/test_sdk.py checks each code has exactly one)
BY_CODE: dict[int, type[RPCError]] = {
    cls.code: cls for cls in RPCError.__subclasses__() if cls is not TransportError
}


def from_error_object(err: dict[str, Any]) -> RPCError:
    """The typed exception of a JSON-RPC error object (plain :class:`RPCError` if unknown)."""
    code = int(err.get("code", 0))
    return BY_CODE.get(code, RPCError)(code, str(err.get("message", "")), err.get("data"))
