"""``rpc.discover``: the node's OpenRPC document, generated from the method registry.

Every method the dispatcher serves is in it with its parameters (name, required, default, a JSON
Schema from the parameter's converter) and its docstring (the first line as ``summary``), so the
document cannot drift from the code; ``tests/test_openrpc.py`` checks it against docs/rpc.md.
Parameters are positional (``paramStructure: by-position``), as the dispatcher takes them.
"""

from __future__ import annotations

from typing import Any

from . import codec
from .jsonrpc import Converter, Dispatcher, Method, Param

OPENRPC_VERSION = "1.2.6"
DISCOVER = "rpc.discover"

_HEX = {"type": "string", "pattern": "^0x([0-9a-fA-F]{2})*$"}
SCHEMAS: dict[Converter, dict[str, Any]] = {
    codec.to_bytes: {**_HEX, "description": "bytes: 0x-prefixed hex in JSON, bin in msgpack"},
    codec.to_hash: {
        "type": "string",
        "pattern": "^0x[0-9a-fA-F]{64}$",
        "description": "32 bytes: 0x-prefixed hex in JSON, bin in msgpack",
    },
    codec.to_uint: {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
    codec.to_block_tag: {
        "oneOf": [
            {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
            {"type": "string", "enum": list(codec.BLOCK_TAGS)},
        ],
        "description": "a block height or a tag",
    },
    codec.to_bool: {"type": "boolean"},
    codec.to_str: {"type": "string"},
}


def _param(p: Param) -> dict[str, Any]:
    schema = SCHEMAS.get(p.convert)
    if schema is None:
        raise LookupError(f"parameter {p.name!r}: no JSON Schema for converter {p.convert!r}")
    out: dict[str, Any] = {"name": p.name, "required": p.required, "schema": dict(schema)}
    if not p.required:
        out["schema"]["default"] = p.default
    return out


def _method(m: Method) -> dict[str, Any]:
    summary, _, rest = m.doc.partition("\n")
    out: dict[str, Any] = {
        "name": m.name,
        "summary": summary.strip(),
        "paramStructure": "by-position",
        "params": [_param(p) for p in m.params],
        "result": {"name": "result", "schema": {}},
    }
    if rest.strip():
        out["description"] = rest.strip()
    return out


def document(d: Dispatcher, version: str) -> dict[str, Any]:
    """The OpenRPC document of every method ``d`` serves (``rpc.discover`` itself left out,
    as the OpenRPC specification has it)."""
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "MPS chain node",
            "version": version,
            "description": "JSON-RPC 2.0 over HTTP (JSON or msgpack bodies) and WebSocket; "
            "errors and limits: docs/rpc.md",
        },
        "methods": [_method(m) for name, m in sorted(d.methods.items()) if name != DISCOVER],
    }


def add_discover(d: Dispatcher, version: str) -> None:
    """Serve ``rpc.discover`` on ``d``: the document, built once on first use."""
    cache: list[dict[str, Any]] = []

    async def discover() -> dict[str, Any]:
        """The node's OpenRPC document (every method, its parameters and what it does)."""
        if not cache:
            cache.append(document(d, version))
        return cache[0]

    d.add(DISCOVER, discover)
