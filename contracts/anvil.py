"""Run a local anvil (the L1 of tests, benchmarks and the dev network) from contracts/node_modules.

>>> with Anvil() as chain:                       # doctest: +SKIP
...     w3 = chain.w3()
...     deployer = chain.accounts[0]             # funded LocalAccount from anvil's default mnemonic
...     chain.mine(10)

By default anvil listens on a port it picks itself (``--port 0``), read back from its "Listening
on" line, so parallel instances never race for a port (``port=`` asks for a fixed one). Its log
goes to a temporary file (or ``log_path``), never to a pipe that could fill up and stall it. On
Linux the child gets ``PR_SET_PDEATHSIG`` so that it dies with its parent: this fires when the
*thread* that started it exits, so start it from a long-lived thread (or pass
``die_with_parent=False``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

ROOT = Path(__file__).resolve().parent
NODE_MODULES = ROOT / "node_modules"
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
_LISTENING = re.compile(rb"Listening on ([0-9.]+):(\d+)")
_PR_SET_PDEATHSIG = 1


class AnvilError(RuntimeError):
    """anvil is not installed, did not start, or a JSON-RPC call to it failed."""


def find_binary() -> Path:
    """The native anvil binary of the npm package (the node wrapper in .bin/ as a fallback)."""
    for candidate in sorted(NODE_MODULES.glob("@foundry-rs/anvil-*/bin/anvil*")):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    wrapper = NODE_MODULES / ".bin" / "anvil"
    if wrapper.exists():
        return wrapper
    raise AnvilError(f"anvil is not installed under {NODE_MODULES}: run `bash scripts/setup.sh`")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def derive_accounts(n: int, mnemonic: str = DEFAULT_MNEMONIC) -> list[LocalAccount]:
    """The first ``n`` accounts of ``mnemonic`` on m/44'/60'/0'/0/i (anvil's funded accounts)."""
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}") for i in range(n)]


class Anvil:
    """A running anvil process; use as a context manager, or call :meth:`start` and :meth:`stop`.

    ``block_time``: seconds between blocks, ``None`` to mine one block per transaction (automine).
    ``state_path``: load the chain from this file at start, dump it there every second and on
    exit (``--state PATH --state-interval 1``), so the chain survives a restart.
    """

    def __init__(
        self,
        *,
        block_time: float | None = None,
        state_path: Path | None = None,
        chain_id: int = 31337,
        port: int = 0,
        accounts: int = 10,
        balance_eth: int = 10_000,
        log_path: Path | None = None,
        die_with_parent: bool = True,
        startup_timeout: float = 30.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.block_time = block_time
        self.state_path = state_path
        self.chain_id = chain_id
        self.requested_port = port  # 0: a free one; a fixed port lets a restart keep its URL
        self.n_accounts = accounts
        self.balance_eth = balance_eth
        self.log_path = log_path
        self.die_with_parent = die_with_parent
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._accounts: list[LocalAccount] | None = None
        self._rpc_id = 0

    # -- lifecycle -------------------------------------------------------------
    def command(self) -> list[str]:
        args = [
            str(find_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.requested_port),
            "--chain-id", str(self.chain_id),
            "--accounts", str(self.n_accounts),
            "--balance", str(self.balance_eth),
            "--mnemonic", DEFAULT_MNEMONIC,
        ]  # fmt: skip
        if self.block_time is not None:
            args += ["--block-time", f"{self.block_time:g}"]
        if self.state_path is not None:
            args += ["--state", str(self.state_path), "--state-interval", "1"]
        return args + list(self.extra_args)

    def start(self) -> Anvil:
        if self._proc is not None:
            raise AnvilError("anvil is already running")
        self._log = open(self.log_path, "w+b") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        preexec: Callable[[], None] | None = (
            _die_with_parent if self.die_with_parent and sys.platform == "linux" else None
        )
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_log(self) -> bytes:
        assert self._log is not None
        self._log.seek(0)
        return self._log.read()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self._read_log()[-2000:].decode(errors="replace")
                raise AnvilError(f"anvil exited with {self._proc.returncode}:\n{tail}")
            if self.port is None:
                match = _LISTENING.search(self._read_log())
                if match:
                    self.port = int(match.group(2))
            if self.port is not None:
                try:
                    if int(self.rpc("eth_chainId"), 16) == self.chain_id:
                        return
                except (AnvilError, OSError):
                    pass
            time.sleep(0.05)
        raise AnvilError(f"anvil did not answer within {self.startup_timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (anvil dumps ``state_path`` on the way out), then SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.port = None

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- access ----------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The anvil process's id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def url(self) -> str:
        if self.port is None:
            raise AnvilError("anvil is not running")
        return f"http://127.0.0.1:{self.port}"

    def w3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 30}))

    @property
    def accounts(self) -> list[LocalAccount]:
        """The funded accounts, as signers (derived once: HD derivation takes a few ms each)."""
        if self._accounts is None:
            self._accounts = derive_accounts(self.n_accounts)
        return self._accounts

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """One JSON-RPC call, without web3 (used for readiness and the anvil_* methods)."""
        self._rpc_id += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": self._rpc_id, "method": method, "params": params or []}
        )
        request = urllib.request.Request(
            self.url, data=body.encode(), headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                reply = json.loads(response.read())
        except urllib.error.URLError as exc:
            raise AnvilError(f"{method}: {exc}") from exc
        if "error" in reply:
            raise AnvilError(f"{method}: {reply['error']}")
        return reply["result"]

    def mine(self, n: int = 1) -> None:
        """Mine ``n`` empty blocks at once (anvil_mine)."""
        self.rpc("anvil_mine", [hex(n)])

    def snapshot(self) -> str:
        """evm_snapshot: an id to pass to :meth:`revert` (anvil forgets it after one revert)."""
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        if not self.rpc("evm_revert", [snapshot_id]):
            raise AnvilError(f"evm_revert({snapshot_id}) failed")
