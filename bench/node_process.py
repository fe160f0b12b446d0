"""A node run as its own process on a free loopback port, for the benchmarks that measure it
from the outside (``bench/ingest.py``, ``bench/soak.py``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from client_sdk.keys import Keypair  # noqa: E402
from node.config import NodeConfig, render_toml  # noqa: E402


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NodeProcess:
    """``mps-node run`` on ``workdir/node`` with the default config but for ``settings``."""

    def __init__(self, workdir: Path, **settings: Any) -> None:
        self.datadir = workdir / "node"
        self.datadir.mkdir(parents=True)
        cfg = NodeConfig(datadir=self.datadir, rpc_port=free_port(), **settings)
        self.cfg = cfg
        Keypair.generate().save(cfg.key_path)
        self.config_path = self.datadir / "config.toml"
        self.config_path.write_text(render_toml(cfg))
        self.port = cfg.rpc_port
        self.url = f"http://127.0.0.1:{cfg.rpc_port}/"
        self.log_path = workdir / "node.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_")}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "run", "--config", str(self.config_path)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited early:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "health", timeout=1) as resp:
                    if json.loads(resp.read()).get("status") == "ok":
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"node not healthy within {timeout}s:\n{self.log_path.read_text()}")

    def rss_high_water_mib(self) -> float:
        """The process's peak resident memory (``VmHWM``), MiB."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
