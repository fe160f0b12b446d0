"""``mps-client``'s key and requester commands: make a key, post and fund a task, report its
accuracy, download its model, take back what the L1 owes the requester.

    mps-client keygen requester.key
    mps-client --devnet devnet --account admin --key requester.key create-task \\
        --model init.npz --script train.py --name digits --epochs 10 --deposit-wei 10**18
    mps-client --rpc ... model 0x<task id> --out global.npz          # the newest base model
    mps-client --devnet devnet --account admin --key requester.key report 0x<task id> 3 0.91
    mps-client --devnet devnet --account admin --key requester.key refund 0x<task id>

A model file is a NumPy ``.npz`` of named float arrays: its names and shapes, in file order,
are the task's layout (the layout ``client_sdk.train.layout_of`` gives a torch module), and
``model`` writes the same form back, so a requester needs no torch for any of this.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal, localcontext
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mps_common.hexutil import from_hex, to_hex
from stf.fl.rules import EpochRules
from stf.fl.task import DTYPES, TaskParams
from stf.ids import BlobId, ClientKey

from .errors import SDKError
from .keys import Keypair

Connect = Callable[..., Any]  # cli.connect: (args, need_key=..., need_l1=...) -> MPSClient
Add = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


class ModelFileError(SDKError):
    """A model file that is not a ``.npz`` of named arrays (or does not fit the task)."""


class BadArgument(SDKError):
    """A value argparse lets through that the command cannot use (an accuracy above 1)."""


def read_model(path: Path) -> tuple[tuple[tuple[str, tuple[int, ...]], ...], npt.NDArray[Any]]:
    """``(layout, flat float64 weights)`` of an ``.npz`` model file, in its arrays' order."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path} is not a .npz model file: {exc}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy: one array, no names
        raise ModelFileError(f"{path} is one array (.npy): give a .npz of named arrays")
    with loaded as npz:
        arrays = [(name, np.asarray(npz[name])) for name in npz.files]
    if not arrays:
        raise ModelFileError(f"{path} holds no arrays")
    for name, a in arrays:
        if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
            raise ModelFileError(f"array {name!r} in {path} is {a.dtype}, not numbers")
    layout = tuple((name, tuple(int(n) for n in a.shape)) for name, a in arrays)
    flat = np.concatenate([a.astype(np.float64).reshape(-1) for _, a in arrays])
    return layout, flat


def write_model(
    path: Path, layout: tuple[tuple[str, tuple[int, ...]], ...], flat: npt.NDArray[Any]
) -> None:
    """Write ``flat`` back as named arrays of ``layout`` (what ``read_model`` reads)."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    at = 0
    for name, shape in layout:
        n = int(np.prod(shape, dtype=np.int64))
        arrays[name] = flat[at : at + n].reshape(shape)
        at += n
    with path.open("wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]


def wei(text: str) -> int:
    """An amount in wei, exactly: an integer, ``10**18`` or ``1e18`` (never through a float:
    ``1e30`` is 10^30, and ``1e-3`` is refused, not rounded to 0)."""
    try:
        with localcontext() as ctx:
            ctx.prec = 100  # exact far past 2^256
            if "**" in text:
                base, exp = text.split("**")
                number = Decimal(int(base)) ** int(exp)
            else:
                number = Decimal(text)
    except (ValueError, ArithmeticError):
        raise argparse.ArgumentTypeError(f"not an amount in wei: {text!r}") from None
    if not number.is_finite() or number != number.to_integral_value() or number < 0:
        raise argparse.ArgumentTypeError(f"an amount in wei is a whole number >= 0: {text!r}")
    return int(number)


def hex32_arg(what: str) -> Callable[[str], bytes]:
    """An argparse type: 32 bytes of hex (``0x`` optional), named ``what`` in its errors."""

    def parse(text: str) -> bytes:
        try:
            raw = from_hex(text, what, prefix_optional=True)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a hex {what}: {text!r}") from None
        if len(raw) != 32:
            raise argparse.ArgumentTypeError(f"a {what} is 32 bytes (64 hex digits)")
        return raw

    return parse


key_arg = hex32_arg("public key")
task_id_arg = hex32_arg("task id")


# -- commands -------------------------------------------------------------------------------
def cmd_keygen(args: argparse.Namespace) -> int:
    kp = Keypair.generate()
    kp.save(args.file, overwrite=args.force)
    print(
        f"wrote a new ed25519 key to {args.file} (owner-only); public key {to_hex(kp.public_key)}"
    )
    return 0


def task_params_of(args: argparse.Namespace) -> tuple[TaskParams, npt.NDArray[Any], bytes]:
    layout, weights = read_model(args.model)
    try:
        script = args.script.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read the script {args.script}: {exc.strerror}") from None
    params = TaskParams(
        name=args.name,
        layout=layout,
        dtype=args.dtype,
        shift=args.shift,
        init_model=BlobId(bytes(32)),  # create_task puts the uploaded blobs' ids
        script=BlobId(bytes(32)),
        epochs=args.epochs,
        target_accuracy_ppm=round(args.target_accuracy * 1_000_000),
        min_clients=args.min_clients,
        max_clients=args.max_clients,
        window_blocks=args.window_blocks,
        evaluator=ClientKey(args.evaluator or bytes(32)),
        rules=replace(EpochRules(), f=args.f),
    )
    return params, weights, script


def cmd_create_task(connect: Connect, args: argparse.Namespace) -> int:
    params, weights, script = task_params_of(args)
    mps = connect(args, need_l1=args.deposit_wei is not None)
    task_id = mps.create_task(params, weights, script, args.deposit_wei)
    paid = "" if args.deposit_wei is None else f", funded with {args.deposit_wei} wei"
    print(f"created task {to_hex(task_id)} (d = {params.d}{paid})")
    return 0


def cmd_model(connect: Connect, args: argparse.Namespace) -> int:
    mps = connect(args, need_key=False)
    params = mps.task_params(args.task)
    weights = mps.base_model(args.task, args.epoch)
    write_model(args.out, params.layout, weights)
    which = "the newest" if args.epoch is None else f"epoch {args.epoch}'s"
    print(f"wrote {which} base model of task {to_hex(args.task)[:18]} to {args.out}")
    return 0


def cmd_report(connect: Connect, args: argparse.Namespace) -> int:
    if not 0.0 <= args.accuracy <= 1.0:
        raise BadArgument(f"accuracy is a fraction in [0, 1], not {args.accuracy}")
    mps = connect(args)
    mps.report_evaluation(args.task, args.epoch, args.accuracy)
    print(f"reported accuracy {args.accuracy:.4f} for epoch {args.epoch}")
    return 0


def cmd_refund(connect: Connect, args: argparse.Namespace) -> int:
    paid = connect(args, need_key=False, need_l1=True).l1.withdraw_refund(args.task)
    print(f"refunded {paid} wei: what the task's fees left of its deposit")
    return 0


def cmd_reclaim(connect: Connect, args: argparse.Namespace) -> int:
    paid = connect(args, need_key=False, need_l1=True).reclaim_funding(args.task)
    print(f"reclaimed {paid} wei: a funding no task took (the BASE_FEE stays paid)")
    return 0


def add_requester_commands(add: Add, connect: Connect) -> None:
    """Register the key and requester commands on ``mps-client``'s parser."""
    p = add("keygen", cmd_keygen, "write a new ed25519 client key file (owner-only)")
    p.add_argument("file", type=Path)
    p.add_argument("--force", action="store_true", help="overwrite an existing file")

    p = add("create-task", partial(cmd_create_task, connect), "create a task (and fund it on L1)")
    p.add_argument("--model", type=Path, required=True, help=".npz of named float arrays")
    p.add_argument("--script", type=Path, required=True, help="the training script clients run")
    p.add_argument("--name", required=True)
    p.add_argument("--epochs", type=int, default=10, help="default 10")
    p.add_argument("--min-clients", type=int, default=5, help="must exceed 2f + 2 (default 5)")
    p.add_argument("--max-clients", type=int, default=12, help="default 12")
    p.add_argument("--window-blocks", type=int, default=30, help="blocks per phase (default 30)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="int8", help="default int8")
    p.add_argument("--shift", type=int, default=12, help="fixed-point bits (default 12)")
    p.add_argument("--target-accuracy", type=float, default=1.0, help="stop early at it")
    p.add_argument("--f", type=int, default=1, help="Byzantine clients Krum assumes (default 1)")
    p.add_argument("--evaluator", type=key_arg, default=None, help="who else may report")
    p.add_argument(
        "--deposit-wei", type=wei, default=None,
        help="the task's reward pool, paid with the L1's BASE_FEE (a chain with an L1 needs it)",
    )  # fmt: skip

    p = add("model", partial(cmd_model, connect), "download a task's base model as .npz")
    p.add_argument("task", type=task_id_arg)
    p.add_argument("--epoch", type=int, default=None, help="default: the current epoch's")
    p.add_argument("--out", type=Path, required=True)

    p = add("report", partial(cmd_report, connect), "report a closed epoch's accuracy (requester)")
    p.add_argument("task", type=task_id_arg)
    p.add_argument("epoch", type=int)
    p.add_argument("accuracy", type=float, help="a fraction in [0, 1]")

    p = add(
        "refund", partial(cmd_refund, connect), "withdraw what a settled task left of its deposit"
    )
    p.add_argument("task", type=task_id_arg)
    p = add(
        "reclaim", partial(cmd_reclaim, connect), "take back a funding no task took, once lapsed"
    )
    p.add_argument("task", type=task_id_arg)
