"""``--version`` on both command lines (issue 14): the package version setup.cfg declares."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from client_sdk import cli as client_cli
from node import cli as node_cli

ROOT = Path(__file__).resolve().parent.parent


def declared_version() -> str:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg["metadata"]["version"]


@pytest.mark.parametrize(
    ("main", "prog"), [(node_cli.main, "mps-node"), (client_cli.main, "mps-client")]
)
def test_version_is_the_package_version(main, prog, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"{prog} {declared_version()}\n"
