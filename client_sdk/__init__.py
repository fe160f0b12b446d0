"""The MPS chain client SDK: keys, transactions, an RPC client, and local proof checks."""

from .client import MPSClient
from .errors import RPCError, TransportError
from .keys import KeyFileError, Keypair
from .rpc import AsyncRPCClient, RPCClient
from .tx import put_blob, put_record

__all__ = [
    "AsyncRPCClient",
    "KeyFileError",
    "Keypair",
    "MPSClient",
    "RPCClient",
    "RPCError",
    "TransportError",
    "put_blob",
    "put_record",
]
