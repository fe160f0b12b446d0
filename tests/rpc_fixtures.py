"""Helpers for the RPC, WebSocket and SDK tests: a node served by aiohttp's test server.

``start_node`` builds a datadir with a fresh sequencer key, creates the app with
``node.app.create_app`` and serves it with :class:`aiohttp.test_utils.TestServer`, so
the app's ``cleanup_ctx`` (LevelDB, sequencer) runs exactly as in production.
Blocks are sealed on demand with :meth:`NodeHarness.seal` unless ``produce_blocks``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
from aiohttp.test_utils import TestClient, TestServer

from client_sdk.keys import Keypair
from client_sdk.tx import put_record
from node.app import Node, create_app
from node.config import NodeConfig
from node.sequencer import SealedBlock
from rpc.server import NODE_KEY
from stf.tx import Transaction

JSON = "application/json"
MSGPACK = "application/msgpack"
CHAIN_ID = 4242


def hx(b: bytes) -> str:
    """bytes as the node's JSON form."""
    return "0x" + b.hex()


def unhex(s: str) -> bytes:
    assert isinstance(s, str) and s.startswith("0x"), s
    return bytes.fromhex(s[2:])


def make_config(datadir: Path, **overrides: Any) -> NodeConfig:
    """A config for a fresh datadir holding a new sequencer key."""
    datadir.mkdir(parents=True, exist_ok=True)
    key_path = datadir / "node.key"
    if not key_path.exists():
        Keypair.generate().save(key_path)
    values: dict[str, Any] = {"datadir": datadir, "block_time": 0.05}
    values.update(overrides)
    return NodeConfig(**values)


def record_tx(
    kp: Keypair,
    nonce: int,
    name: str = "note",
    value: bytes = b"v",
    chain_id: int = CHAIN_ID,
) -> Transaction:
    return put_record(kp, chain_id, nonce, name, value)


@dataclass
class NodeHarness:
    client: TestClient[Any, Any]
    node: Node
    cfg: NodeConfig
    _ids: list[int] = field(default_factory=lambda: [0])

    @property
    def url(self) -> str:
        return str(self.client.make_url("/"))

    @property
    def ws_url(self) -> str:
        return str(self.client.make_url("/ws"))

    def next_id(self) -> int:
        self._ids[0] += 1
        return self._ids[0]

    async def post(
        self,
        payload: Any,
        media: str = JSON,
        raw: bytes | None = None,
        content_type: str | None = None,
    ) -> tuple[int, Any]:
        """POST a payload (or raw bytes); return (HTTP status, decoded body or None)."""
        if raw is None:
            raw = (
                msgpack.packb(payload, use_bin_type=True)
                if media == MSGPACK
                else json.dumps(payload).encode()
            )
        headers = {"Content-Type": content_type or media}
        resp = await self.client.post("/", data=raw, headers=headers)
        body = await resp.read()
        if not body:
            return resp.status, None
        if resp.content_type == MSGPACK:
            return resp.status, msgpack.unpackb(body, raw=False)
        return resp.status, json.loads(body)

    async def call(self, method: str, *params: Any, media: str = JSON) -> dict[str, Any]:
        """One request; the whole response object (checked to echo the id)."""
        rid = self.next_id()
        req = {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}
        status, resp = await self.post(req, media)
        assert status == 200, (status, resp)
        assert resp["jsonrpc"] == "2.0"
        assert resp["id"] == rid
        assert ("result" in resp) != ("error" in resp), resp
        return resp

    async def result(self, method: str, *params: Any, media: str = JSON) -> Any:
        resp = await self.call(method, *params, media=media)
        assert "error" not in resp, resp
        return resp["result"]

    async def error(self, method: str, *params: Any, media: str = JSON) -> dict[str, Any]:
        resp = await self.call(method, *params, media=media)
        assert "error" in resp, resp
        err: dict[str, Any] = resp["error"]
        assert isinstance(err["code"], int) and isinstance(err["message"], str)
        return err

    async def send(self, tx: Transaction | bytes) -> dict[str, Any]:
        """mps_sendTransaction over JSON; the whole response."""
        raw = tx if isinstance(tx, bytes) else tx.encode()
        return await self.call("mps_sendTransaction", hx(raw))

    async def send_ok(self, tx: Transaction) -> bytes:
        resp = await self.send(tx)
        assert "result" in resp, resp
        h = unhex(resp["result"])
        assert h == tx.hash
        return h

    async def seal(self) -> SealedBlock:
        sealed = await self.node.sequencer.produce_block()
        assert sealed is not None, "nothing to seal"
        return sealed

    @property
    def mempool(self) -> Any:
        return self.node.sequencer.mempool


@asynccontextmanager
async def start_node(
    datadir: Path, produce_blocks: bool = False, **cfg_overrides: Any
) -> AsyncIterator[NodeHarness]:
    cfg = make_config(datadir, **cfg_overrides)
    app = create_app(cfg, produce_blocks=produce_blocks)
    async with TestClient(TestServer(app)) as client:
        yield NodeHarness(client, app[NODE_KEY], cfg)
