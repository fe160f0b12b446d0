"""The method classes bind the same methods, parameters and defaults as before they were
classes (taken from the closures they replaced); tests/test_layering.py keeps rpc/ off node/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rpc_fixtures import start_node

from rpc.server import DISPATCHER_KEY

# name: ((param, converter, required, default), ...)
SIGNATURES: dict[str, tuple[tuple[str, str, bool, Any], ...]] = {
    "mps_blockNumber": (),
    "mps_chainId": (),
    "mps_getBlob": (("hash", "to_hash", True, None),),
    "mps_getBlockByHash": (("hash", "to_hash", True, None), ("full", "to_bool", False, False)),
    "mps_getBlockByNumber": (
        ("block", "to_block_tag", True, None),
        ("full", "to_bool", False, False),
    ),
    "mps_getEpoch": (
        ("task", "to_hash", True, None),
        ("epoch", "to_uint", True, None),
        ("block", "to_block_tag", False, "latest"),
    ),
    "mps_getGenesis": (),
    "mps_getNonce": (("sender", "to_hash", True, None), ("pending", "to_bool", False, False)),
    "mps_getProof": (("key", "to_bytes", True, None), ("block", "to_block_tag", False, "latest")),
    "mps_getRawBlock": (("block", "to_block_tag", True, None),),
    "mps_getSlashingState": (
        ("task", "to_hash", True, None),
        ("client", "to_hash", True, None),
        ("block", "to_block_tag", False, "latest"),
    ),
    "mps_getStake": (("client_key", "to_hash", True, None),),
    "mps_getTask": (("task", "to_hash", True, None), ("block", "to_block_tag", False, "latest")),
    "mps_getTransaction": (("hash", "to_hash", True, None),),
    "mps_getTransactionReceipt": (("hash", "to_hash", True, None),),
    "mps_listTasks": (("openOnly", "to_bool", False, True), ("limit", "to_uint", False, 100)),
    "mps_sendTransaction": (("raw", "to_bytes", True, None),),
    "mps_subscribe": (("topic", "to_str", True, None),),
    "mps_syncStatus": (),
    "mps_unsubscribe": (("subscription", "to_str", True, None),),
    "rpc.discover": (),
}


async def test_methods_params_and_defaults_are_unchanged(tmp_path: Path) -> None:
    async with start_node(tmp_path / "n") as h:
        methods = h.client.app[DISPATCHER_KEY].methods
        bound = {
            name: tuple((p.name, p.convert.__name__, p.required, p.default) for p in m.params)
            for name, m in methods.items()
        }
        assert bound == SIGNATURES
        assert all(m.doc for m in methods.values()), "every method's docstring feeds the docs"
        assert {n for n, m in methods.items() if m.wants_context} == {
            "mps_subscribe",
            "mps_unsubscribe",
        }
