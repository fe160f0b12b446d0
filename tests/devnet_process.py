"""``mps-node dev`` as a subprocess for the tests that need the whole dev network (anvil, the
contracts, twelve staked dev clients): started on a free port, found by its "rpc listening"
log line, stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def dev_env() -> dict[str, str]:
    """The environment without any MPS_* setting of the caller's (they would change the node)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class DevNode:
    proc: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT/
    log: Path


def _wait_for_rpc(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        for line in text.splitlines():
            if "rpc listening" in line:
                m = re.search(r"http://[^\s\"',]+", line)
                if m:
                    return m.group(0)
        if proc.poll() is not None:
            pytest.fail(f"mps-node dev exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"mps-node dev did not log 'rpc listening' in {timeout:.0f} s")


@contextmanager
def dev_node(datadir: Path, log: Path, timeout: float = 60.0) -> Iterator[DevNode]:
    """A running dev network in ``datadir``; its exit status is ``proc.returncode`` after."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "dev", "--datadir", str(datadir),
             "--rpc-port", "0", "--log-format", "json"],
            cwd=ROOT, env=dev_env(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield DevNode(proc, _wait_for_rpc(proc, log, timeout), log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
