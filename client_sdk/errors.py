"""Typed errors mirroring the node's stable codes, so callers can ``except NonceTooLow``."""

from __future__ import annotations

from typing import Any

from stf.errors import Code


class RPCError(Exception):
    """An error object returned by the node."""

    code: int = 0

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.data = data


class TransportError(RPCError):
    """The node could not be reached or answered something that is not JSON-RPC."""


def _make(name: str, code: int) -> type[RPCError]:
    return type(name, (RPCError,), {"code": code, "__doc__": f"The node answered code {code}."})


ParseError = _make("ParseError", -32700)
InvalidRequest = _make("InvalidRequest", -32600)
MethodNotFound = _make("MethodNotFound", -32601)
InvalidParams = _make("InvalidParams", -32602)
InternalError = _make("InternalError", -32603)
InvalidSignature = _make("InvalidSignature", Code.INVALID_SIGNATURE)
WrongChainId = _make("WrongChainId", Code.WRONG_CHAIN_ID)
NonceTooLow = _make("NonceTooLow", Code.NONCE_TOO_LOW)
AlreadyKnown = _make("AlreadyKnown", Code.ALREADY_KNOWN)
NonceTooHigh = _make("NonceTooHigh", Code.NONCE_TOO_HIGH)
MalformedTransaction = _make("MalformedTransaction", Code.MALFORMED_TX)
UnknownTxType = _make("UnknownTxType", Code.UNKNOWN_TX_TYPE)
PayloadTooLarge = _make("PayloadTooLarge", Code.PAYLOAD_TOO_LARGE)
PrivilegedTransaction = _make("PrivilegedTransaction", Code.PRIVILEGED_TX)
MempoolFull = _make("MempoolFull", Code.MEMPOOL_FULL)
InvalidPayload = _make("InvalidPayload", Code.INVALID_PAYLOAD)
NonceAlreadyPending = _make("NonceAlreadyPending", Code.NONCE_ALREADY_PENDING)
NotFound = _make("NotFound", Code.NOT_FOUND)
ExecutionFailed = _make("ExecutionFailed", Code.EXECUTION_FAILED)
NotStaked = _make("NotStaked", Code.NOT_STAKED)
TaskNotFound = _make("TaskNotFound", Code.TASK_NOT_FOUND)
TaskClosed = _make("TaskClosed", Code.TASK_CLOSED)
NotJoined = _make("NotJoined", Code.NOT_JOINED)
AlreadyJoined = _make("AlreadyJoined", Code.ALREADY_JOINED)
TaskFull = _make("TaskFull", Code.TASK_FULL)
WrongEpoch = _make("WrongEpoch", Code.WRONG_EPOCH)
DuplicateUpdate = _make("DuplicateUpdate", Code.DUPLICATE_UPDATE)
InvalidUpdate = _make("InvalidUpdate", Code.INVALID_UPDATE)
BlobNotFound = _make("BlobNotFound", Code.BLOB_NOT_FOUND)
NotAuthorized = _make("NotAuthorized", Code.NOT_AUTHORIZED)
BodyTooLarge = _make("BodyTooLarge", Code.BODY_TOO_LARGE)
BatchTooLarge = _make("BatchTooLarge", Code.BATCH_TOO_LARGE)
UnsupportedMediaType = _make("UnsupportedMediaType", Code.UNSUPPORTED_MEDIA_TYPE)
ShuttingDown = _make("ShuttingDown", Code.SHUTTING_DOWN)

# every class made by _make above, by its code
BY_CODE: dict[int, type[RPCError]] = {
    cls.code: cls for cls in RPCError.__subclasses__() if cls is not TransportError
}


def from_error_object(err: dict[str, Any]) -> RPCError:
    code = int(err.get("code", 0))
    return BY_CODE.get(code, RPCError)(code, str(err.get("message", "")), err.get("data"))


def from_receipt(receipt: dict[str, Any]) -> RPCError:
    """The typed error of a failed receipt (status 0): ``NotStaked``, ``DuplicateUpdate``...

    ``data`` holds the whole receipt (``txHash``, ``blockHeight``...).
    """
    code = int(receipt.get("code") or Code.EXECUTION_FAILED)
    name = receipt.get("codeName") or "EXECUTION_FAILED"
    message = f"transaction failed: {name}: {receipt.get('message') or ''}".rstrip(": ")
    return BY_CODE.get(code, ExecutionFailed)(code, message, receipt)


class SDKError(Exception):
    """Raised by the SDK itself, not by the node: a missing setting, or a state not reached."""


class L1NotConfigured(SDKError):
    """The operation needs the L1 (an ``L1Config``) and the client has none."""


class NotOnL1Yet(SDKError):
    """What is asked is not on the L1 yet: no batch committed, the task not in it, not settled."""
