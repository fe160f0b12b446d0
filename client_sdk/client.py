"""``MPSClient``: the everyday operations over :class:`RPCClient`."""

from __future__ import annotations

import time
from typing import Any

from stf.tx import Transaction

from .errors import RPCError
from .proofs import checked_value
from .rpc import RPCClient


class MPSClient:
    def __init__(self, rpc_url: str, media: str = "msgpack", timeout: float = 30.0) -> None:
        self.rpc = RPCClient(rpc_url, media, timeout)
        self._chain_id: int | None = None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.rpc.call("mps_chainId"))
        return self._chain_id

    def nonce(self, sender: bytes, pending: bool = True) -> int:
        return int(self.rpc.call("mps_getNonce", sender, pending))

    def send(self, tx: Transaction) -> bytes:
        result = self.rpc.call("mps_sendTransaction", tx.encode())
        return result if isinstance(result, bytes) else bytes.fromhex(result[2:])

    def receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.rpc.call("mps_getTransactionReceipt", tx_hash)
        return result

    def wait_for_receipt(self, tx_hash: bytes, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            rc = self.receipt(tx_hash)
            if rc is not None:
                return rc
            if time.monotonic() > deadline:
                raise TimeoutError(f"transaction {tx_hash.hex()} not sealed within {timeout}s")
            time.sleep(0.05)

    def get_state(
        self, key: bytes, block: int | str = "latest", root: bytes | None = None
    ) -> bytes | None:
        """A state value, proven against the block's root (or a ``root`` you trust)."""
        return checked_value(self.rpc.call("mps_getProof", key, block), root)

    def block(self, tag: int | str = "latest", full: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self.rpc.call("mps_getBlockByNumber", tag, full)
        return result


__all__ = ["MPSClient", "RPCError"]
