"""Stable error codes of the protocol, shared by the node's RPC and the SDK.

A code never changes meaning once published; docs/rpc.md lists them all.
JSON-RPC's own codes (-32700..-32600) are used by rpc/ for envelope faults.
"""

from __future__ import annotations

from enum import IntEnum

# JSON-RPC 2.0's own codes for envelope faults (the specification's numbers), which rpc/ answers
# and the SDK maps to its error classes; kept beside the protocol's codes so both read one list.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
ENVELOPE_CODES = (PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR)


class Code(IntEnum):
    # transaction admission (mempool) and validity
    INVALID_SIGNATURE = 1001
    WRONG_CHAIN_ID = 1002
    NONCE_TOO_LOW = 1003
    ALREADY_KNOWN = 1004
    NONCE_TOO_HIGH = 1005
    MALFORMED_TX = 1006
    UNKNOWN_TX_TYPE = 1007
    PAYLOAD_TOO_LARGE = 1008
    PRIVILEGED_TX = 1009
    MEMPOOL_FULL = 1010
    INVALID_PAYLOAD = 1011
    NONCE_ALREADY_PENDING = 1012
    BLOB_NOT_ALLOWED = 1013  # stf.fl.uploads: who may upload a blob for which task
    BLOB_QUOTA_EXCEEDED = 1014
    LARGE_TX_FAILED = 1015  # a large payload that would fail: nobody paid for its bytes
    UNBACKED_SENDER = 1016  # stf.accounts: nothing on the L1 backs the key (priced chains)
    # execution (appear in receipts)
    EXECUTION_FAILED = 1100  # no longer emitted: each fault below has its own code (docs/rpc.md)
    NOT_STAKED = 1101
    TASK_NOT_FOUND = 1102
    TASK_CLOSED = 1103
    NOT_JOINED = 1104
    ALREADY_JOINED = 1105
    TASK_FULL = 1106
    WRONG_EPOCH = 1107
    DUPLICATE_UPDATE = 1108
    INVALID_UPDATE = 1109
    BLOB_NOT_FOUND = 1110
    NOT_AUTHORIZED = 1111
    KEY_ALREADY_BOUND = 1112
    WRONG_STAKE_STATUS = 1113
    TASK_ALREADY_FUNDED = 1114
    TOO_MANY_OPEN_TASKS = 1115
    ALREADY_EVALUATED = 1116
    BLOB_ALREADY_STORED = 1117
    SLASHABLE_IN_TASK = 1118
    BARRED_FROM_TASK = 1119
    WRONG_PHASE = 1120
    NOT_COMMITTED = 1121
    COMMITMENT_MISMATCH = 1122
    STAKE_BINDING_INVALID = 1123
    TASK_NOT_FUNDED = 1124
    FORCED_TX_INVALID = 1125
    DATA_BUDGET_EXHAUSTED = 1126  # stf.fl.data_budget: the deposit pays for no more bytes
    RECORD_QUOTA_EXCEEDED = 1127  # stf.accounts: a sender's records on a priced chain
    # queries
    NOT_FOUND = 1200
    # transport and node
    BODY_TOO_LARGE = 1300
    BATCH_TOO_LARGE = 1301
    UNSUPPORTED_MEDIA_TYPE = 1302
    TOO_MANY_SUBSCRIPTIONS = 1303
    RESPONSE_TOO_LARGE = 1304
    BODY_TIMEOUT = 1305
    STREAM_MALFORMED = 1306  # POST /txs: a frame's length prefix or bytes are wrong
    STREAM_STOPPED = 1307  # POST /txs: not admitted, an earlier frame was refused
    SHUTTING_DOWN = 1400


class MPSError(Exception):
    """An error with a stable code and a message that names the fault."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}, {self.message!r})"


class TxInvalid(MPSError):
    """The transaction may never be included in a block."""


class TxFailed(MPSError):
    """The transaction is valid but its execution failed; it is included with status 0.

    Its effects are rolled back, unless ``keep_writes``: a forced transaction that failed in
    execution rolled its own effects back already and keeps its nonce (stf.forced)."""

    def __init__(self, code: Code, message: str, keep_writes: bool = False) -> None:
        super().__init__(code, message)
        self.keep_writes = keep_writes


class BlockInvalid(Exception):
    """A block breaks a consensus rule; replay stops here."""
