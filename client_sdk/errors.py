"""Every exception the SDK raises, under one root: :class:`ClientError`.

The node's answers arrive as one class per error code (``except NonceTooLow``), defined beside
the transport in :mod:`mps_common.errors` and re-exported here, the SDK's one place to import
errors from. Here too: what the SDK raises on its own (:class:`SDKError` and its subclasses) and
:func:`from_receipt`, a failed receipt as its typed error. Elsewhere, each beside what raises it
and also under this root: ``proofs.ProofError``, ``keys.KeyFileError``, ``l1.L1ConfigError``,
``train.LayoutError``. L1 reverts are ``contracts.reverts.ContractRevert``, under the same root.
"""

from __future__ import annotations

from typing import Any

from mps_common.errors import (
    BY_CODE,
    AlreadyEvaluated,
    AlreadyJoined,
    AlreadyKnown,
    BarredFromTask,
    BatchTooLarge,
    BlobAlreadyStored,
    BlobNotAllowed,
    BlobNotFound,
    BlobQuotaExceeded,
    BodyTimeout,
    BodyTooLarge,
    ClientError,
    CommitmentMismatch,
    DataBudgetExhausted,
    DuplicateUpdate,
    ExecutionFailed,
    ForcedTxInvalid,
    InternalError,
    InvalidArgument,
    InvalidParams,
    InvalidPayload,
    InvalidRequest,
    InvalidSignature,
    InvalidUpdate,
    KeyAlreadyBound,
    LargeTxFailed,
    MalformedTransaction,
    MempoolFull,
    MethodNotFound,
    NonceAlreadyPending,
    NonceTooHigh,
    NonceTooLow,
    NotAuthorized,
    NotCommitted,
    NotFound,
    NotJoined,
    NotStaked,
    ParseError,
    PayloadTooLarge,
    PrivilegedTransaction,
    RecordQuotaExceeded,
    ResponseTooLarge,
    RPCError,
    ShuttingDown,
    SlashableInTask,
    StakeBindingInvalid,
    StreamMalformed,
    StreamStopped,
    TaskAlreadyFunded,
    TaskClosed,
    TaskFull,
    TaskNotFound,
    TaskNotFunded,
    TooManyOpenTasks,
    TooManySubscriptions,
    TransportError,
    UnbackedSender,
    UnknownTxType,
    UnsupportedMediaType,
    WrongChainId,
    WrongEpoch,
    WrongPhase,
    WrongStakeStatus,
    from_error_object,
)
from stf.errors import Code

__all__ = [
    "BY_CODE",
    "AlreadyEvaluated",
    "AlreadyJoined",
    "AlreadyKnown",
    "BarredFromTask",
    "BatchTooLarge",
    "BlobAlreadyStored",
    "BlobNotAllowed",
    "BlobNotFound",
    "BlobQuotaExceeded",
    "BodyTimeout",
    "BodyTooLarge",
    "CertainOffence",
    "ClientError",
    "CommitmentMismatch",
    "DataBudgetExhausted",
    "DuplicateUpdate",
    "ExecutionFailed",
    "ForcedTxInvalid",
    "InternalError",
    "InvalidArgument",
    "InvalidParams",
    "InvalidPayload",
    "InvalidRequest",
    "InvalidSignature",
    "InvalidUpdate",
    "KeyAlreadyBound",
    "L1NotConfigured",
    "LargeTxFailed",
    "MalformedTransaction",
    "MempoolFull",
    "MethodNotFound",
    "NonceAlreadyPending",
    "NonceTooHigh",
    "NonceTooLow",
    "NotAuthorized",
    "NotCommitted",
    "NotFound",
    "NotJoined",
    "NotOnL1Yet",
    "NotStaked",
    "ParseError",
    "PayloadTooLarge",
    "PrivilegedTransaction",
    "RPCError",
    "RecordQuotaExceeded",
    "ResponseTooLarge",
    "SDKError",
    "ShuttingDown",
    "SlashableInTask",
    "StakeBindingInvalid",
    "StreamMalformed",
    "StreamStopped",
    "TaskAlreadyFunded",
    "TaskClosed",
    "TaskFull",
    "TaskNotFound",
    "TaskNotFunded",
    "TooManyOpenTasks",
    "TooManySubscriptions",
    "TransportError",
    "UnbackedSender",
    "UnknownTxType",
    "UnsupportedMediaType",
    "WaitTimeout",
    "WrongChainId",
    "WrongEpoch",
    "WrongPhase",
    "WrongStakeStatus",
    "from_error_object",
    "from_receipt",
]


def from_receipt(receipt: dict[str, Any]) -> RPCError:
    """The typed error of a failed receipt (status 0): ``NotStaked``, ``DuplicateUpdate``...

    The same classes as the node's RPC errors, because a transaction refused at admission and
    one that failed in its block are the same mistake to the caller. ``data`` holds the whole
    receipt (``txHash``, ``blockHeight``...).
    """
    code = int(receipt.get("code") or Code.EXECUTION_FAILED)
    name = receipt.get("codeName") or "EXECUTION_FAILED"
    message = f"transaction failed: {name}: {receipt.get('message') or ''}".rstrip(": ")
    return BY_CODE.get(code, ExecutionFailed)(code, message, receipt)


class SDKError(ClientError):
    """Raised by the SDK itself, not by the node: a missing setting, or a state not reached."""


class L1NotConfigured(SDKError):
    """The operation needs the L1 (an ``L1Config``) and the client has none."""


class NotOnL1Yet(SDKError):
    """What is asked is not on the L1 yet: no batch committed, the task not in it, not settled."""


class CertainOffence(SDKError):
    """The update would certainly be flagged (or slashed): refused before anything was sent.
    The message says why and what it would cost; pass ``force=True`` to send it anyway."""


class WaitTimeout(SDKError, TimeoutError):
    """A wait (a receipt, an epoch's close, a stake seen by the rollup) outlasted its timeout.

    The transaction or event may still come later; still a ``TimeoutError`` for callers.
    """
