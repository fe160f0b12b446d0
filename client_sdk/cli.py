"""``mps-client``: a federated-learning client, and a requester (:mod:`client_sdk.cli_requester`),
from the shell.

    mps-client --devnet devnet --account client3 tasks
    mps-client --devnet devnet --account client3 join 0x<task id>
    mps-client --devnet devnet --account client3 submit 0x<task id> delta.npy --wait
    mps-client --devnet devnet --account client3 status 0x<task id>      # proven against the L1
    mps-client --devnet devnet --account client3 claim 0x<task id>

Connection options (before or after the command): ``--rpc URL`` (the node), ``--key FILE``
(the client's ed25519 key), and for the L1 either ``--devnet DIR --account NAME`` (what
``mps-node dev`` wrote: ``DIR/l1/NAME.key``, ``DIR/dev-clients/NAME.key``, the node's port
from ``DIR/config.toml``) or ``--l1-rpc URL --l1-key-file FILE --deployment FILE``.

Errors print one line (``error: NotStaked: ...``, ``error: L1 reverted: KeyTaken(...)``)
and exit 1; a proof that does not verify exits 3; bad usage exits 2.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from mps_common.hexutil import to_hex
from mps_common.version import VERSION

from .answers import as_bytes
from .cli_requester import add_requester_commands, task_id_arg
from .client import MPSClient
from .errors import RPCError, SDKError, TransportError
from .keys import KeyFileError, Keypair
from .l1 import L1Config, L1ConfigError
from .proofs import ProofError
from .rules_text import describe_data_budget, describe_rules
from .slashing import SlashingState

DEFAULT_RPC = "http://127.0.0.1:8645/"


class UsageError(SDKError):
    """A missing or contradictory option."""


# -- progress -------------------------------------------------------------------------------
class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, else a line at the
    end); no dependency."""

    def __init__(self, label: str, stream: IO[str] | None = None, width: int = 24) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.last = ""

    def update(self, done: int, total: int, note: str = "") -> None:
        total = max(total, 1)
        filled = min(self.width, self.width * done // total)
        bar = "#" * filled + "." * (self.width - filled)
        secs = time.monotonic() - self.start
        self.last = f"{self.label} [{bar}] {done}/{total} {note} {secs:.0f}s".rstrip()
        if self.tty:
            self.stream.write("\r" + self.last + "\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        elif self.last:
            self.stream.write(self.last + "\n")
        self.stream.flush()


def epoch_progress(epoch: int) -> tuple[Progress, Callable[[dict[str, Any]], None]]:
    bar = Progress(f"epoch {epoch}")

    def on_task(task: dict[str, Any]) -> None:
        # each phase ends once every client it still awaits is in (or at its window's end)
        if task.get("phase") == "reveal":
            done = len(task["revealed"])
            bar.update(done, done + len(task["awaiting"]), "reveals")
            return
        done = len(task["committed"])
        need = max(int(task["minClients"]), done + len(task["awaiting"]))
        bar.update(done, need, "commitments")

    return bar, on_task


# -- options --------------------------------------------------------------------------------
def _devnet_rpc(datadir: Path) -> str:
    try:
        cfg = tomllib.loads((datadir / "config.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return DEFAULT_RPC
    host = str(cfg.get("rpc_host", "127.0.0.1"))
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://{host}:{int(cfg.get('rpc_port', 8645))}/"


def connect(args: argparse.Namespace, need_key: bool = True, need_l1: bool = False) -> MPSClient:
    """The client the options describe."""
    devnet: Path | None = args.devnet
    rpc = args.rpc or (_devnet_rpc(devnet) if devnet else DEFAULT_RPC)
    key_file: Path | None = args.key
    if key_file is None and devnet is not None and args.account:
        candidate = devnet / "dev-clients" / f"{args.account}.key"
        key_file = candidate if candidate.exists() else None
    if key_file is None and need_key:
        raise UsageError("no client key: give --key FILE (or --devnet DIR --account clientN)")
    key = Keypair.load(key_file) if key_file is not None else None
    l1: L1Config | None = None
    if args.l1_rpc or args.l1_key_file or args.deployment:
        if not (args.l1_rpc and args.l1_key_file and args.deployment):
            raise UsageError("the L1 needs all of --l1-rpc, --l1-key-file and --deployment")
        l1 = L1Config.from_files(args.l1_rpc, args.l1_key_file, args.deployment)
    elif devnet is not None and (args.account or need_l1):
        if not (devnet / "l1" / "deployment.json").exists():  # mps-node dev --no-l1
            if need_l1:
                raise UsageError(
                    f"the dev network in {devnet} runs without an L1 (mps-node dev --no-l1): "
                    "stake, unregister, withdraw, claim, a funded create-task, refund and reclaim "
                    "need one"
                )
        elif not args.account:
            raise UsageError("--devnet needs --account (client0, client1, ..., or admin)")
        else:
            l1 = L1Config.from_devnet(devnet, args.account)
    if need_l1 and l1 is None:
        raise UsageError("this needs the L1: --devnet DIR --account NAME, or --l1-rpc ...")
    return MPSClient(rpc, key, l1, timeout=args.timeout)


# -- commands -------------------------------------------------------------------------------
def cmd_stake(args: argparse.Namespace) -> int:
    mps = connect(args, need_l1=True)
    mps.stake()
    print(f"staked {mps.require_key().public_key.hex()} from L1 account {mps.l1.address}")
    if not args.no_wait:
        mps.wait_for_stake(args.wait_timeout)
        print("the rollup sees the stake: you can join tasks")
    return 0


def cmd_unregister(args: argparse.Namespace) -> int:
    mps = connect(args, need_l1=True)
    mps.unregister()
    key = mps.require_key().public_key
    print(
        f"unbonding since L1 block {mps.l1.unbond_block(key)}: no new commitments; the rollup "
        "releases the stake once every epoch this client committed to has closed, and "
        "`withdraw` pays it back once a batch holding the release is final"
    )
    return 0


def cmd_withdraw(args: argparse.Namespace) -> int:
    mps = connect(args, need_l1=True)
    before = mps.l1.balance()
    release = mps.withdraw()
    print(
        f"withdrawn on the release in finalized batch {release['batch']}; "
        f"L1 balance {before} -> {mps.l1.balance()} wei"
    )
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    mps = connect(args, need_key=False)
    tasks = mps.tasks(open_only=not args.all)
    if not tasks:
        print("no open tasks" if not args.all else "no tasks")
    for t in tasks:
        print(
            f"{to_hex(as_bytes(t['id']))}  {t['name']!r}  {t['status']}  "
            f"epoch {t['epoch']}/{t['epochs']}  clients {len(t['clients'])}/{t['maxClients']} "
            f"(min {t['minClients']})  d={t['parameters']} {t['dtype']} shift {t['shift']}"
        )
    return 0


def cmd_join(args: argparse.Namespace) -> int:
    """The task's rules in words first: what can cost the client a reward, its place, its stake."""
    mps = connect(args)
    print(f"task {to_hex(args.task)[:18]}: the rules you join under")
    for line in describe_rules(mps.task_params(args.task).rules):
        print(f"  {line}")
    data = describe_data_budget(mps.task(args.task).get("dataBudget"))
    if data is not None:
        print(f"  {data}")
    h = mps.join(args.task)
    print(f"joined 0x{args.task.hex()} (tx 0x{h.hex()})")
    return 0


def _load_update(path: Path, mps: MPSClient, task_id: bytes, epoch: int) -> Any:
    """A .npy float delta, or a torch state_dict (.pt: weights; the delta is taken to the base)."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    import torch

    from .train import LayoutError

    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise LayoutError(f"{path} holds no state_dict")
    params = mps.task_params(task_id)
    parts = []
    for name, shape in params.layout:
        if name not in state:
            raise LayoutError(f"{path} has no tensor {name!r} of the task layout")
        t = state[name]
        if tuple(t.shape) != tuple(shape):
            raise LayoutError(f"tensor {name!r} is {tuple(t.shape)}, the layout says {shape}")
        parts.append(t.detach().double().reshape(-1).numpy())
    return np.concatenate(parts) - mps.base_model(task_id, epoch)


def cmd_submit(args: argparse.Namespace) -> int:
    mps = connect(args)
    epoch = args.epoch if args.epoch is not None else int(mps.task(args.task)["epoch"])
    update = _load_update(args.file, mps, args.task, epoch)
    h = mps.submit_update(args.task, epoch, update, force=args.force)
    print(f"update for epoch {epoch} committed and revealed (tx 0x{h.hex()})")
    if args.wait:
        return _wait(mps, args.task, epoch, args.wait_timeout)
    return 0


def cmd_reference(args: argparse.Namespace) -> int:
    mps = connect(args)
    epoch = args.epoch if args.epoch is not None else int(mps.task(args.task)["epoch"])
    update = _load_update(args.file, mps, args.task, epoch)
    h = mps.submit_reference(args.task, epoch, update, timeout=args.wait_timeout)
    print(f"reference for epoch {epoch} committed and revealed (tx 0x{h.hex()})")
    return 0


def _wait(mps: MPSClient, task_id: bytes, epoch: int, timeout: float) -> int:
    bar, on_task = epoch_progress(epoch)
    try:
        summary = mps.wait_for_epoch(task_id, epoch, timeout, progress=on_task)
        done = len(summary["records"])  # the bar ends full, even if the epoch closed at once
        bar.update(done, done, "updates")
    finally:
        bar.close()
    me = mps.key.public_key if mps.key is not None else None
    for r in summary["records"]:
        mark = "  <- you" if me is not None and as_bytes(r["client"]) == me else ""
        flags = ",".join(r["flagNames"]) or "-"
        print(f"  0x{as_bytes(r['client']).hex()[:16]}  rank {r['rank']}  flags {flags}{mark}")
    print(f"epoch {epoch} closed at block {summary['closedAt']}")
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    mps = connect(args, need_key=False)
    return _wait(mps, args.task, args.epoch, args.wait_timeout)


def cmd_status(args: argparse.Namespace) -> int:
    mps = connect(args, need_key=args.client is None)
    trust = args.trust or ("l1" if mps.l1_config is not None else "node")
    client = args.client if args.client is not None else None
    s = mps.slashing_state(args.task, client, trust)
    reason = ",".join(s.reason_names) or "-"
    print(
        f"{to_hex(s.client)} in task {to_hex(s.task_id)[:18]}: {verdict_words(s)}, reason {reason}"
    )
    for r in s.records:
        flags = ",".join(r["flagNames"]) or "-"
        print(f"  epoch {r['epoch']}: rank {r['rank']} score {r['score']} flags {flags}")
    print(
        f"proofs checked against {s.verified_against}: block {s.height}, "
        f"state root 0x{s.state_root.hex()}"
    )
    if mps.l1_config is not None and mps.key is not None and client is None:
        print(f"stake on L1: {mps.l1.status(mps.key.public_key)}")
    return 0


def verdict_words(s: SlashingState) -> str:
    """What the verdict means for the client's stake and its place in the task."""
    if s.slashable:
        return f"SLASHABLE since epoch {s.slash_epoch} (the L1 stake can be slashed)"
    if s.barred:
        return f"BARRED since epoch {s.barred_epoch} after {s.strikes} strikes (stake kept)"
    return f"standing, {s.strikes} strike(s)"


def cmd_claim(args: argparse.Namespace) -> int:
    mps = connect(args, need_l1=True)
    wei = mps.claim_rewards(args.task)
    print(f"claimed {wei} wei ({wei / 1e18:.6f} ETH), paid to the stake's L1 account")
    return 0


# -- parser ---------------------------------------------------------------------------------
def _connection_options(p: argparse.ArgumentParser, suppress: bool) -> None:
    d: Any = argparse.SUPPRESS if suppress else None
    g = p.add_argument_group("connection")
    g.add_argument("--rpc", default=d, help=f"the node's JSON-RPC URL (default {DEFAULT_RPC})")
    g.add_argument("--key", type=Path, default=d, help="the client's ed25519 key file")
    g.add_argument("--devnet", type=Path, default=d, help="an `mps-node dev` data directory")
    g.add_argument("--account", default=d, help="with --devnet: client0, client1, ..., admin")
    g.add_argument("--l1-rpc", default=d, help="the L1's JSON-RPC URL")
    g.add_argument("--l1-key-file", type=Path, default=d, help="hex private key of the L1 account")
    g.add_argument("--deployment", type=Path, default=d, help="deployment.json (addresses)")
    g.add_argument(
        "--timeout", type=float, default=argparse.SUPPRESS if suppress else 30.0,
        help="seconds per RPC call",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mps-client",
        description="Take part in MPS chain tasks (stake, join, submit, claim) or post them "
        "(keygen, create-task, report, model, refund, reclaim).",
    )
    _connection_options(parser, suppress=False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> Any:
        p = sub.add_parser(name, help=help_, description=help_)
        _connection_options(p, suppress=True)
        p.set_defaults(func=func)
        return p

    p = add("stake", cmd_stake, "stake the client key on the L1 (waits until the rollup sees it)")
    p.add_argument("--no-wait", action="store_true", help="do not wait for the rollup")
    p.add_argument("--wait-timeout", type=float, default=60.0)
    add("unregister", cmd_unregister, "start unbonding the stake")
    add("withdraw", cmd_withdraw, "withdraw the stake once the rollup's release is final")
    p = add("tasks", cmd_tasks, "list the open tasks")
    p.add_argument("--all", action="store_true", help="finished and complete tasks too")
    p = add("join", cmd_join, "join a task")
    p.add_argument("task", type=task_id_arg)
    p = add("submit", cmd_submit, "submit an update: a .npy float delta or a .pt state_dict")
    p.add_argument("task", type=task_id_arg)
    p.add_argument("file", type=Path, help=".npy: the delta; .pt: trained weights (state_dict)")
    p.add_argument("--epoch", type=int, default=None, help="default: the task's current epoch")
    p.add_argument("--wait", action="store_true", help="wait for the epoch to close")
    p.add_argument("--wait-timeout", type=float, default=600.0)
    p.add_argument(
        "--force",
        action="store_true",
        help="send even an update the chain will certainly flag or slash (refused by default)",
    )
    p = add(
        "reference",
        cmd_reference,
        "the requester's reference update for an epoch (its own training on held-out data)",
    )
    p.add_argument("task", type=task_id_arg)
    p.add_argument("file", type=Path, help=".npy: the delta; .pt: trained weights (state_dict)")
    p.add_argument("--epoch", type=int, default=None, help="default: the task's current epoch")
    p.add_argument("--wait-timeout", type=float, default=600.0, help="for the reveal phase")
    p = add("wait", cmd_wait, "wait for an epoch to close and show its ranks and flags")
    p.add_argument("task", type=task_id_arg)
    p.add_argument("epoch", type=int)
    p.add_argument("--wait-timeout", type=float, default=600.0)
    p = add("status", cmd_status, "the slashing state, proofs checked (against the L1 if given)")
    p.add_argument("task", type=task_id_arg)
    p.add_argument("--client", type=task_id_arg, default=None, help="another client's key")
    p.add_argument("--trust", choices=("l1", "node"), default=None, help="default: l1 if given")
    p = add("claim", cmd_claim, "claim the rewards of a task settled on the L1")
    p.add_argument("task", type=task_id_arg)
    add_requester_commands(add, connect)
    return parser


def _describe(exc: BaseException) -> tuple[str, int]:
    """One line and an exit status for an error."""
    if isinstance(exc, ProofError):
        return f"the node's answer does not verify: {exc}", 3
    if isinstance(exc, TransportError):
        return f"cannot reach the node: {exc.message}", 1
    if isinstance(exc, RPCError):
        return f"{type(exc).__name__}: {exc.message}", 1
    name = type(exc).__name__
    if name == "ContractRevert":
        return f"L1 {exc}", 1
    if isinstance(exc, UsageError):
        return str(exc), 2
    if isinstance(exc, SDKError | KeyFileError | L1ConfigError | TimeoutError | ValueError):
        return f"{name}: {exc}", 1
    if isinstance(exc, OSError):
        return f"{name}: {exc}", 1
    if "ConnectionError" in name or "Timeout" in name:  # requests, under web3
        return f"cannot reach the L1: {exc}", 1
    raise exc


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
        return status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        line, status = _describe(exc)
        print(f"error: {line}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
