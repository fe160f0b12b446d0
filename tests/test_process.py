"""The real ``mps-node`` daemon as a subprocess: crashes, clean stops, refused starts.

Each test runs the installed console script (or ``python -m node.cli``) on a
free loopback port with a data directory under ``tmp_path``. Subprocesses are
always killed in ``finally`` blocks, so a failing assertion never leaks a node.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plyvel
import pytest

from client_sdk.errors import NonceTooHigh, RPCError, StreamStopped, TransportError
from client_sdk.keys import Keypair
from client_sdk.tx import put_record
from mps_common.transport import RPCClient

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CHAIN_ID = 4242  # what `mps-node init` writes by default
START_TIMEOUT = 20.0


def _node_cmd() -> list[str]:
    script = Path(sys.executable).with_name("mps-node")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "node.cli"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mps_node(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_node_cmd(), *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def init_datadir(datadir: Path) -> Path:
    res = mps_node("init", "--datadir", str(datadir))
    assert res.returncode == 0, res.stderr
    cfg = datadir / "config.toml"
    assert cfg.exists()
    return cfg


class NodeProcess:
    """One ``mps-node run`` subprocess, its log in a file."""

    def __init__(self, config: Path, log_path: Path, port: int | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NodeProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *_node_cmd(),
                    "run",
                    "--config",
                    str(self.config),
                    "--rpc-port",
                    str(self.port),
                    "--block-time",
                    "0.1",
                    "--log-format",
                    "json",
                ],
                cwd=ROOT,
                env=_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.url + "health", timeout=1.0) as resp:
                data: dict[str, Any] = json.loads(resp.read())
                return data
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"node exited with {self.proc.returncode} before it was healthy:\n"
                    + self.log_text()
                )
            h = self.health()
            if h is not None and h.get("status") == "ok":
                return h
            time.sleep(0.05)
        raise AssertionError(f"node not healthy within {timeout}s:\n{self.log_text()}")

    def wait_exit(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL (if still running) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict):
                out.append(ev)
        return out

    def client(self, timeout: float = 5.0) -> RPCClient:
        return RPCClient(self.url, "msgpack", timeout)


def wait_receipts(
    client: RPCClient, hashes: list[bytes], timeout: float
) -> dict[bytes, dict[str, Any]]:
    """Poll until every hash has a receipt; return them."""
    got: dict[bytes, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while True:
        for h in hashes:
            if h not in got:
                rc = client.call("mps_getTransactionReceipt", h)
                if rc is not None:
                    got[h] = rc
        if len(got) == len(hashes):
            return got
        if time.monotonic() > deadline:
            missing = [h.hex() for h in hashes if h not in got]
            raise AssertionError(f"{len(missing)} transactions not sealed: {missing[:5]}")
        time.sleep(0.05)


def head_of(client: RPCClient) -> tuple[int, bytes, bytes]:
    b = client.call("mps_getBlockByNumber", "latest", False)
    return int(b["height"]), b["hash"], b["stateRoot"]


# -- a) SIGKILL while transactions stream in ---------------------------------


class Streamer(threading.Thread):
    """Sends signed put_record transactions round-robin from several senders."""

    def __init__(self, url: str, keys: list[Keypair], batch: int = 1) -> None:
        super().__init__(daemon=True, name="tx-streamer")
        self.client = RPCClient(url, "msgpack", timeout=5.0)
        self.keys = keys
        self.batch = batch  # > 1: that many at a time in one POST /txs stream
        self.nonces = [0] * len(keys)
        self.acked: list[tuple[bytes, int, int]] = []  # (hash, sender index, nonce)
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.errors: list[BaseException] = []
        self.transport_failed = False

    def snapshot(self) -> list[tuple[bytes, int, int]]:
        with self.lock:
            return list(self.acked)

    def run(self) -> None:
        if self.batch > 1:
            return self.run_streams()
        i = 0
        while not self.stop_flag.is_set():
            s = i % len(self.keys)
            nonce = self.nonces[s]
            tx = put_record(self.keys[s], CHAIN_ID, nonce, f"rec-{nonce}", os.urandom(48))
            try:
                h = self.client.call("mps_sendTransaction", tx.encode())
            except NonceTooHigh:
                time.sleep(0.02)  # too far ahead of the chain: let a block catch up
                i += 1
                continue
            except TransportError:
                self.transport_failed = True  # the node is gone: stop streaming
                return
            except RPCError as exc:
                self.errors.append(exc)
                return
            if h != tx.hash:
                self.errors.append(AssertionError(f"node returned hash {h!r} for {tx.hash!r}"))
                return
            with self.lock:
                self.acked.append((h, s, nonce))
            self.nonces[s] += 1
            i += 1

    def run_streams(self) -> None:
        """Streams of ``batch`` transactions, the senders round-robin; an answer's hash is an
        acknowledgement, its first refusal ends what the stream admitted."""
        i = 0
        while not self.stop_flag.is_set():
            picks = [(i + k) % len(self.keys) for k in range(self.batch)]
            nonces = dict(enumerate(self.nonces))
            txs = []
            for s in picks:
                txs.append(put_record(self.keys[s], CHAIN_ID, nonces[s], f"rec-{nonces[s]}", b"x"))
                nonces[s] += 1
            try:
                answers = self.client.send_stream([tx.encode() for tx in txs])
            except TransportError:
                self.transport_failed = True
                return
            for tx, s, answer in zip(txs, picks, answers, strict=False):
                if isinstance(answer, NonceTooHigh | StreamStopped):
                    time.sleep(0.02)
                    break
                if isinstance(answer, Exception):
                    self.errors.append(answer)
                    return
                if answer != tx.hash:
                    self.errors.append(AssertionError(f"hash {answer!r} for {tx.hash!r}"))
                    return
                with self.lock:
                    self.acked.append((answer, s, tx.nonce))
                self.nonces[s] += 1
            i += self.batch


Head = tuple[int, bytes, bytes]  # (height, hash, state root)
Placed = tuple[int, int, bytes, int]  # a receipt's (height, index, block hash, status)


@dataclass(frozen=True)
class Crash:
    """What the first node had said before it was killed: the restarted one must honour it."""

    sealed_before: dict[bytes, Placed]
    last_head: Head
    acked: list[tuple[bytes, int, int]]  # (hash, sender index, nonce)

    @property
    def unsealed(self) -> list[bytes]:
        return [h for h, _, _ in self.acked if h not in self.sealed_before]


def watch_stream(client: RPCClient, streamer: Streamer) -> tuple[dict[bytes, Placed], Head]:
    """Records receipts and the head while the stream runs, until enough is sealed to kill."""
    sealed_before: dict[bytes, Placed] = {}
    started = time.monotonic()
    while True:
        for h, _, _ in streamer.snapshot():
            if h in sealed_before:
                continue
            rc = client.call("mps_getTransactionReceipt", h)
            if rc is not None:
                sealed_before[h] = (
                    rc["blockHeight"],
                    rc["index"],
                    rc["blockHash"],
                    rc["status"],
                )
        last_head = head_of(client)
        elapsed = time.monotonic() - started
        if elapsed > 1.5 and sealed_before and last_head[0] >= 3:
            return sealed_before, last_head
        assert elapsed < 15, "the node sealed nothing while transactions streamed in"
        assert streamer.is_alive(), f"streamer stopped early: {streamer.errors}"
        time.sleep(0.05)


def kill_mid_stream(node: NodeProcess, streamer: Streamer) -> None:
    node.kill()  # SIGKILL, while the streamer is still sending
    streamer.stop_flag.set()
    streamer.join(timeout=10)
    assert not streamer.errors, streamer.errors
    assert node.proc is not None and node.proc.returncode == -signal.SIGKILL


def stream_then_kill(tmp_path: Path, cfg: Path, keys: list[Keypair], batch: int = 1) -> Crash:
    node = NodeProcess(cfg, tmp_path / "node-1.log").start()
    streamer: Streamer | None = None
    last_head: Head | None = None
    try:
        node.wait_healthy()
        client = node.client()
        streamer = Streamer(node.url, keys, batch)
        streamer.start()
        sealed_before, last_head = watch_stream(client, streamer)
        acked_at_kill = len(streamer.snapshot())
        kill_mid_stream(node, streamer)
    finally:
        if streamer is not None:
            streamer.stop_flag.set()
        node.kill()

    acked = streamer.snapshot()
    assert len(acked) >= acked_at_kill > 0
    assert last_head is not None
    assert all(status == 1 for _, _, _, status in sealed_before.values())
    return Crash(sealed_before, last_head, acked)


def check_head_survived(client: RPCClient, health: dict[str, Any], last_head: Head) -> None:
    """1. The head survived: same block, same state root at the last height seen."""
    assert health["head"] >= last_head[0]
    blk = client.call("mps_getBlockByNumber", last_head[0], False)
    assert blk["hash"] == last_head[1]
    assert blk["stateRoot"] == last_head[2]


def check_sealed_kept(client: RPCClient, sealed_before: dict[bytes, Placed]) -> None:
    """2. Every transaction seen sealed is still there, at the same place."""
    for h, (height, index, block_hash, _) in sealed_before.items():
        rc = client.call("mps_getTransactionReceipt", h)
        assert rc is not None, f"sealed tx {h.hex()} lost"
        assert (rc["blockHeight"], rc["index"], rc["blockHash"]) == (
            height,
            index,
            block_hash,
        )
        assert rc["status"] == 1
        tx = client.call("mps_getTransaction", h)
        assert (tx["blockHeight"], tx["index"]) == (height, index)


def check_acked_not_lost(node2: NodeProcess, client: RPCClient, crash: Crash) -> None:
    """3. Every acknowledged transaction is sealed or pending right after the restart
    (mps_getTransaction reads the DB first, then the mempool, with no await between)."""
    unsealed = crash.unsealed
    for h in unsealed:
        tx = client.call("mps_getTransaction", h)  # NotFound would mean it was lost
        assert tx["hash"] == h
    ready = [e for e in node2.events() if e.get("event") == "sequencer ready"]
    assert len(ready) == 1 and ready[0]["head"] >= crash.last_head[0]

    # and the journal brings the pending ones back into blocks within seconds
    receipts = wait_receipts(client, unsealed, timeout=8.0)
    assert all(rc["status"] == 1 for rc in receipts.values())


def check_nonces(
    client: RPCClient, keys: list[Keypair], acked: list[tuple[bytes, int, int]]
) -> None:
    """4. Each sender's nonce covers at least every acknowledged transaction."""
    for s, key in enumerate(keys):
        acked_nonces = sorted(n for _, si, n in acked if si == s)
        assert acked_nonces == list(range(len(acked_nonces)))  # no gaps were acknowledged
        assert client.call("mps_getNonce", key.public_key, False) >= len(acked_nonces)


def check_still_producing(client: RPCClient, keys: list[Keypair], last_head: Head) -> None:
    """5. The node keeps producing blocks: more transactions at the next nonces seal."""
    fresh = []
    for key in keys:
        nonce = client.call("mps_getNonce", key.public_key, True)
        tx = put_record(key, CHAIN_ID, nonce, "after-restart", b"ok")
        assert client.call("mps_sendTransaction", tx.encode()) == tx.hash
        fresh.append(tx.hash)
    after = wait_receipts(client, fresh, timeout=8.0)
    assert all(rc["status"] == 1 for rc in after.values())
    assert min(rc["blockHeight"] for rc in after.values()) > last_head[0]


def restart_and_check(tmp_path: Path, cfg: Path, keys: list[Keypair], crash: Crash) -> None:
    node2 = NodeProcess(cfg, tmp_path / "node-2.log").start()
    try:
        health = node2.wait_healthy()
        client = node2.client()
        check_head_survived(client, health, crash.last_head)
        check_sealed_kept(client, crash.sealed_before)
        check_acked_not_lost(node2, client, crash)
        check_nonces(client, keys, crash.acked)
        check_still_producing(client, keys, crash.last_head)
        assert node2.terminate() == 0, node2.log_text()
    finally:
        node2.kill()


def check_replay(tmp_path: Path, cfg: Path) -> None:
    """6. The whole chain, crash included, re-executes to the same roots."""
    res = mps_node("replay", "--config", str(cfg), "--into", str(tmp_path / "replayed"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "every state root matches" in res.stdout


@pytest.mark.parametrize("batch", [1, 6], ids=["one-by-one", "POST-txs"])
def test_sigkill_during_stream_loses_no_acknowledged_tx(tmp_path: Path, batch: int) -> None:
    cfg = init_datadir(tmp_path / "node")
    keys = [Keypair.generate() for _ in range(4)]
    crash = stream_then_kill(tmp_path, cfg, keys, batch)
    restart_and_check(tmp_path, cfg, keys, crash)
    check_replay(tmp_path, cfg)


# -- b) SIGTERM exits cleanly ------------------------------------------------


def test_sigterm_stops_cleanly_and_restarts_on_same_head(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    cfg = init_datadir(datadir)
    key = Keypair.generate()
    node = NodeProcess(cfg, tmp_path / "node-1.log").start()
    try:
        node.wait_healthy()
        client = node.client()
        sealed = []
        for nonce in range(3):
            tx = put_record(key, CHAIN_ID, nonce, f"r{nonce}", b"v")
            sealed.append(client.call("mps_sendTransaction", tx.encode()))
        wait_receipts(client, sealed, timeout=8.0)
        # these may or may not be sealed before the signal; either way they must survive it
        late = []
        for nonce in range(3, 6):
            tx = put_record(key, CHAIN_ID, nonce, f"r{nonce}", b"v")
            late.append(client.call("mps_sendTransaction", tx.encode()))
        seen_height, seen_hash, seen_root = head_of(client)
        rc = node.terminate()
        log_text = node.log_text()
        assert rc == 0, log_text
        assert "stopped cleanly" in log_text
        stopped = [e for e in node.events() if e.get("event") == "sequencer stopped"]
        assert len(stopped) == 1
        stop_head = int(stopped[0]["head"])
        assert stop_head >= seen_height
    finally:
        node.kill()

    node2 = NodeProcess(cfg, tmp_path / "node-2.log").start()
    try:
        health = node2.wait_healthy()
        assert health["head"] == stop_head
        ready = [e for e in node2.events() if e.get("event") == "sequencer ready"]
        assert ready and ready[-1]["head"] == stop_head
        client = node2.client()
        blk = client.call("mps_getBlockByNumber", seen_height, False)
        assert (blk["hash"], blk["stateRoot"]) == (seen_hash, seen_root)
        receipts = wait_receipts(client, sealed + late, timeout=8.0)
        assert all(r["status"] == 1 for r in receipts.values())
        assert client.call("mps_getNonce", key.public_key, False) == 6
        assert node2.terminate() == 0
        assert "stopped cleanly" in node2.log_text()
    finally:
        node2.kill()


# -- c) a mismatched or corrupt database refuses to start --------------------


@pytest.fixture(scope="module")
def pristine_datadir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose DB holds genesis (written by one short run)."""
    base = tmp_path_factory.mktemp("pristine")
    datadir = base / "node"
    cfg = init_datadir(datadir)
    node = NodeProcess(cfg, base / "init.log").start()
    try:
        node.wait_healthy()
        assert node.terminate() == 0
    finally:
        node.kill()
    return datadir


def _copy_datadir(src: Path, dst: Path) -> Path:
    """Copy a data directory and point its config at the copy."""
    shutil.copytree(src, dst)
    cfg = dst / "config.toml"
    text = cfg.read_text()
    assert f'datadir = "{src.resolve()}"' in text
    cfg.write_text(text.replace(f'datadir = "{src.resolve()}"', f'datadir = "{dst.resolve()}"'))
    os.chmod(dst / "node.key", 0o600)
    return cfg


def _refused(cfg: Path, log_path: Path) -> tuple[int, str]:
    node = NodeProcess(cfg, log_path).start()
    try:
        rc = node.wait_exit(timeout=START_TIMEOUT)
        return rc, node.log_text()
    finally:
        node.kill()


def test_mismatched_chain_id_refuses_to_start(pristine_datadir: Path, tmp_path: Path) -> None:
    cfg = _copy_datadir(pristine_datadir, tmp_path / "node")
    text = cfg.read_text()
    assert f"chain_id = {CHAIN_ID}\n" in text
    other = tmp_path / "other-chain.toml"
    other.write_text(text.replace(f"chain_id = {CHAIN_ID}\n", f"chain_id = {CHAIN_ID + 1}\n"))
    rc, log_text = _refused(other, tmp_path / "node.log")
    assert rc != 0, log_text
    assert "genesis" in log_text.lower()
    assert "cannot start" in log_text
    assert "rpc listening" not in log_text
    # the database was not touched: the right config still starts
    node = NodeProcess(cfg, tmp_path / "ok.log").start()
    try:
        assert node.wait_healthy()["head"] == 0
        assert node.terminate() == 0
    finally:
        node.kill()


@pytest.mark.parametrize(
    ("key", "value", "expect"),
    [
        (b"meta:schema", b"99", "schema version 99"),
        (b"meta:head", b"\x11" * 32, "corrupt"),
    ],
    ids=["future-schema", "dangling-head"],
)
def test_corrupt_database_refuses_to_start(
    pristine_datadir: Path, tmp_path: Path, key: bytes, value: bytes, expect: str
) -> None:
    cfg = _copy_datadir(pristine_datadir, tmp_path / "node")
    db = plyvel.DB(str(tmp_path / "node" / "chain.db"))
    try:
        db.put(key, value, sync=True)
    finally:
        db.close()
    rc, log_text = _refused(cfg, tmp_path / "node.log")
    assert rc != 0, log_text
    assert expect in log_text
    assert "rpc listening" not in log_text


def test_second_node_on_same_datadir_refuses_to_start(
    pristine_datadir: Path, tmp_path: Path
) -> None:
    cfg = _copy_datadir(pristine_datadir, tmp_path / "node")
    first = NodeProcess(cfg, tmp_path / "first.log").start()
    try:
        first.wait_healthy()
        rc, log_text = _refused(cfg, tmp_path / "second.log")
        assert rc != 0, log_text
        assert "cannot open LevelDB" in log_text
        assert "rpc listening" not in log_text
        assert first.health() is not None  # the running node is unaffected
        assert first.terminate() == 0
    finally:
        first.kill()


def test_replay_on_a_locked_database_fails_with_a_clean_message(
    pristine_datadir: Path, tmp_path: Path
) -> None:
    cfg = _copy_datadir(pristine_datadir, tmp_path / "node")
    node = NodeProcess(cfg, tmp_path / "node.log").start()
    try:
        node.wait_healthy()
        res = mps_node("replay", "--config", str(cfg), "--into", str(tmp_path / "replayed"))
        assert res.returncode != 0
        assert "cannot open LevelDB" in res.stderr  # it says why
        assert "Traceback" not in res.stderr  # ... as an error message, like `run` does
    finally:
        node.kill()
