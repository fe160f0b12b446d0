"""``rpc.discover`` answers an OpenRPC document that matches the code and docs/rpc.md (issue 14).

The document is generated from the dispatcher's registry, so it lists what the node serves; the
docs are written by hand, so this test holds them to it: every method has its row in the methods
table of docs/rpc.md and every row a method, and each parameter is named in its row.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from rpc_fixtures import start_node

from rpc import codec
from rpc.jsonrpc import Dispatcher, Method, Param
from rpc.openrpc import DISCOVER, OPENRPC_VERSION, SCHEMAS, document
from rpc.server import DISPATCHER_KEY

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\| `(?P<name>(?:mps_|rpc\.)\w+)` \| (?P<params>[^|]*) \|")


def doc_rows() -> dict[str, str]:
    """docs/rpc.md's methods table: method name -> its params cell."""
    rows = {}
    for line in (ROOT / "docs" / "rpc.md").read_text().splitlines():
        m = ROW.match(line)
        if m:
            rows[m["name"]] = m["params"]
    return rows


@pytest.mark.asyncio
async def test_rpc_discover_lists_every_method_the_node_serves(tmp_path: Path) -> None:
    async with start_node(tmp_path) as h:
        doc = await h.result(DISCOVER)
        served: dict[str, Method] = h.client.server.app[DISPATCHER_KEY].methods
    assert doc["openrpc"] == OPENRPC_VERSION and doc["info"]["title"]
    names = [m["name"] for m in doc["methods"]]
    assert names == sorted(n for n in served if n != DISCOVER)
    assert "mps_sendTransaction" in names and "mps_getSlashingState" in names
    for m in doc["methods"]:
        method = served[m["name"]]
        assert m["summary"] == method.doc.partition("\n")[0].strip() != ""
        assert [p["name"] for p in m["params"]] == [p.name for p in method.params]
        for p, q in zip(m["params"], method.params, strict=True):
            assert p["required"] == q.required
            assert ("default" in p["schema"]) == (not q.required)
            if not q.required:
                assert p["schema"]["default"] == q.default


@pytest.mark.asyncio
async def test_the_docs_table_names_every_method_and_its_params(tmp_path: Path) -> None:
    async with start_node(tmp_path) as h:
        served = h.client.server.app[DISPATCHER_KEY].methods
    rows = doc_rows()
    assert sorted(rows) == sorted(served), (
        f"in docs/rpc.md only: {sorted(set(rows) - set(served))}; "
        f"served but not in docs/rpc.md: {sorted(set(served) - set(rows))}"
    )
    for name, method in served.items():
        for p in method.params:
            assert f"`{p.name}`" in rows[name], f"docs/rpc.md's {name} row does not name {p.name}"


def test_every_converter_has_a_schema_and_an_unknown_one_is_refused() -> None:
    converters = {f for n, f in vars(codec).items() if n.startswith("to_") and callable(f)}
    assert converters and converters <= set(SCHEMAS), converters - set(SCHEMAS)

    async def handler(x: Any) -> None:
        """A method."""

    d = Dispatcher(10, lambda *_: None)
    d.add("m", handler, Param("x", lambda v: v))
    with pytest.raises(LookupError, match="no JSON Schema"):
        document(d, "0")
