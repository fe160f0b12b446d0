"""``python -m examples.demo``: the flags, and the run from the first check to demo.json.

The package's docstring (``examples.demo``) describes the demo as a whole; this module only
puts its parts in order.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from client_sdk.client import MPSClient
from client_sdk.errors import RPCError

from .attacks import ROLES
from .data import load_data
from .federation import Federation, Options
from .members import Member, gather_clients
from .report import log, print_clients, print_summary, write_outputs
from .settlement import finish

#: ``--help``'s description: the first line of the package's docstring
DESCRIPTION = (
    "The demo federation: thirteen staked clients, seven cheating, on a running dev network."
)


def find_rpc(devnet: Path) -> str:
    """The RPC URL from ``<devnet>/node.log`` (the last ``rpc listening`` line), else 8645."""
    logfile = devnet / "node.log"
    url = ""
    if logfile.exists():
        for line in logfile.read_text(errors="replace").splitlines():
            if "rpc listening" in line:
                m = re.search(r"http://[^\s\"',]+", line)
                if m:
                    url = m.group(0)
    return url or "http://127.0.0.1:8645/"


def run(opts: Options) -> dict[str, Any]:
    """The whole demo against the node at ``opts.rpc``; its results (as in ``demo.json``).
    Exits with a message when no node answers there or ``mps-node dev`` has no L1 running."""
    t_start = time.monotonic()
    import torch

    torch.set_num_threads(1)  # a 2,410-parameter MLP: threads cost more than they give
    log(f"# MPS chain demo federation: node {opts.rpc}, dev L1 from {opts.devnet}/l1/")
    probe = MPSClient(opts.rpc)
    try:
        chain_id = probe.chain_id
    except RPCError as exc:
        raise SystemExit(
            f"no MPS node answers at {opts.rpc} ({exc}); start one with `bash scripts/dev.sh"
            f" --no-demo` or `mps-node dev --datadir {opts.devnet}`"
        ) from None
    if not (opts.devnet / "l1" / "endpoint").exists():
        raise SystemExit(f"{opts.devnet}/l1/endpoint is missing: is `mps-node dev` running?")
    log(f"  chain {chain_id}, head {probe.rpc.call('mps_blockNumber')}")

    log("\n## clients (staked on the L1)")
    pool = gather_clients(opts.devnet, opts.rpc, len(ROLES))
    data = load_data(len(pool), opts.seed)
    members = [Member(name, ROLES[k], mps, k) for k, (name, mps) in enumerate(pool)]
    print_clients(members, data)

    fed = Federation(opts, members, data)
    try:
        log("\n## task")
        fed.create_task()
        log("\n## epochs (score: Krum score; flags: this epoch's; verdicts from the chain)")
        for e in range(opts.epochs):
            if not fed.run_epoch(e):
                break
        t_fl = time.monotonic() - t_start
        results = finish(fed)
    finally:
        fed.ex.shutdown(wait=False, cancel_futures=True)

    print_summary(fed)
    write_outputs(fed, results, opts.out, t_start, t_fl)
    return results


def main(argv: list[str] | None = None) -> int:
    """Parse the flags (``--quick``: 6 epochs instead of 10) and run the demo."""
    ap = argparse.ArgumentParser(prog="python -m examples.demo", description=DESCRIPTION)
    ap.add_argument("--devnet", type=Path, default=Path("./devnet"), help="mps-node dev's datadir")
    ap.add_argument("--rpc", default=None, help="node RPC URL (default: from <devnet>/node.log)")
    ap.add_argument("--epochs", type=int, default=None, help="FL epochs (10; --quick: 6)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (<devnet>/demo)")
    ap.add_argument("--seed", type=int, default=0, help="data split and model seed")
    ap.add_argument("--quick", action="store_true", help="6 epochs (for tests)")
    args = ap.parse_args(argv)
    devnet: Path = args.devnet
    run(
        Options(
            devnet=devnet,
            rpc=args.rpc or find_rpc(devnet),
            epochs=args.epochs or (6 if args.quick else 10),
            out=args.out or devnet / "demo",
            seed=args.seed,
        )
    )
    return 0
