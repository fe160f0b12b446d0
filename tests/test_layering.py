"""Imports point one way (docs/architecture.md, "Where things live"): checked on the source.

A backward import (the node importing SDK code, the STF importing the node or web3, the SDK
importing the daemon) is easy to add and hard to remove later; this test names the first one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"stf", "mps_common", "rpc", "node", "client_sdk", "contracts", "examples"}

# what each package may import, of the project's packages and of the heavy libraries
ALLOWED: dict[str, set[str]] = {
    "stf": {"stf"},
    "mps_common": {"mps_common", "stf"},
    "rpc": {"rpc", "stf", "mps_common"},
    "contracts": {"contracts", "mps_common"},
    "node": {"node", "stf", "rpc", "mps_common", "contracts"},
    "client_sdk": {"client_sdk", "stf", "mps_common", "contracts"},
    "examples": {"examples", "client_sdk", "stf", "mps_common"},
}
# the STF is a pure function of state and block: no storage, network or L1 library
STF_FORBIDDEN = {"plyvel", "aiohttp", "web3", "eth_account", "structlog", "prometheus_client"}


def imported(path: Path) -> set[str]:
    """Top-level names of every absolute import in ``path`` (relative ones stay inside)."""
    out: set[str] = set()
    for stmt in ast.walk(ast.parse(path.read_text())):
        if isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
            out.add(stmt.module.split(".")[0])
        elif isinstance(stmt, ast.Import):
            out.update(a.name.split(".")[0] for a in stmt.names)
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_is_below_it(package: str) -> None:
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = (imported(path) & FIRST_PARTY) - ALLOWED[package]
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_the_stf_imports_no_storage_network_or_l1_library() -> None:
    for path in sorted((ROOT / "stf").rglob("*.py")):
        wrong = imported(path) & STF_FORBIDDEN
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_the_checker_sees_a_backward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from client_sdk.keys import Keypair\nimport node.app\nfrom . import x\n")
    assert imported(bad) == {"client_sdk", "node"}
