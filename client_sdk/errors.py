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
BodyTooLarge = _make("BodyTooLarge", Code.BODY_TOO_LARGE)
BatchTooLarge = _make("BatchTooLarge", Code.BATCH_TOO_LARGE)
UnsupportedMediaType = _make("UnsupportedMediaType", Code.UNSUPPORTED_MEDIA_TYPE)
ShuttingDown = _make("ShuttingDown", Code.SHUTTING_DOWN)

BY_CODE: dict[int, type[RPCError]] = {
    cls.code: cls
    for cls in [
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        InvalidSignature,
        WrongChainId,
        NonceTooLow,
        AlreadyKnown,
        NonceTooHigh,
        MalformedTransaction,
        UnknownTxType,
        PayloadTooLarge,
        PrivilegedTransaction,
        MempoolFull,
        InvalidPayload,
        NonceAlreadyPending,
        NotFound,
        BodyTooLarge,
        BatchTooLarge,
        UnsupportedMediaType,
        ShuttingDown,
    ]
}


def from_error_object(err: dict[str, Any]) -> RPCError:
    code = int(err.get("code", 0))
    return BY_CODE.get(code, RPCError)(code, str(err.get("message", "")), err.get("data"))
