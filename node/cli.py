"""``mps-node``: init a data directory, run the sequencer, run a dev network, replay a chain."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from client_sdk.keys import KeyFileError, Keypair
from stf.genesis import GenesisStake

from .config import ConfigError, NodeConfig, load_config, render_toml
from .logs import configure_logging
from .storage import StorageError

log = structlog.get_logger("mps.cli")

DEV_CLIENTS = 12
DEV_STAKE = 10**18

# flags shared by run and dev; each maps to a NodeConfig field of the same name
COMMON_FLAGS: list[tuple[str, type, str]] = [
    ("datadir", Path, "data directory (chain database, node key)"),
    ("chain-id", int, "chain id"),
    ("key-file", Path, "sequencer key file (default: <datadir>/node.key)"),
    ("rpc-host", str, "address the JSON-RPC server binds"),
    ("rpc-port", int, "JSON-RPC port (0 picks a free one)"),
    ("block-time", float, "seconds between blocks"),
    ("max-block-txs", int, "seal a block early once this many transactions wait"),
    ("log-format", str, "auto, json or console"),
    ("log-level", str, "debug, info, warning, error"),
]


def _add_common(p: argparse.ArgumentParser) -> None:
    for flag, typ, help_ in COMMON_FLAGS:
        p.add_argument(f"--{flag}", type=typ, default=None, help=help_)
    p.add_argument(
        "--empty-blocks",
        action="store_true",
        default=None,
        help="seal blocks even when no transaction waits",
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = [f.replace("-", "_") for f, _, _ in COMMON_FLAGS] + ["empty_blocks"]
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def cmd_init(args: argparse.Namespace) -> int:
    datadir: Path = args.datadir
    cfg = NodeConfig(datadir=datadir.resolve(), chain_id=args.chain_id)
    datadir.mkdir(parents=True, exist_ok=True)
    cfg_path = datadir / "config.toml"
    if cfg_path.exists() and not args.force:
        print(f"{cfg_path} already exists (use --force to overwrite the config)", file=sys.stderr)
        return 1
    if not cfg.key_path.exists():
        Keypair.generate().save(cfg.key_path)
    key = Keypair.load(cfg.key_path)
    cfg_path.write_text(render_toml(cfg))
    print(f"wrote {cfg_path}\nsequencer key {cfg.key_path} (public {key.public_key.hex()})")
    return 0


async def serve(cfg: NodeConfig) -> None:
    """Run until SIGTERM/SIGINT; a second signal exits at once."""
    app = create_app_lazy(cfg)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, cfg.rpc_host, cfg.rpc_port)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else cfg.rpc_port
    log.info(
        "rpc listening", url=f"http://{cfg.rpc_host}:{port}/", ws=f"ws://{cfg.rpc_host}:{port}/ws"
    )
    stop = asyncio.Event()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("second signal: exiting now")
            os._exit(128 + signum)
        log.info("shutting down", signal=signal.Signals(signum).name)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await stop.wait()
    await runner.cleanup()
    log.info("stopped cleanly")


def create_app_lazy(cfg: NodeConfig) -> web.Application:
    from .app import create_app

    return create_app(cfg)


def _run(cfg: NodeConfig) -> int:
    configure_logging(cfg.log_format, cfg.log_level)
    try:
        asyncio.run(serve(cfg))
    except (StorageError, KeyFileError) as exc:
        log.error("cannot start", error=str(exc))
        return 2
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, overrides=_overrides(args))
    return _run(cfg)


def cmd_dev(args: argparse.Namespace) -> int:
    """A whole local network in one process; creates the data directory on first use."""
    overrides = _overrides(args)
    datadir = Path(overrides.get("datadir") or "./devnet").resolve()
    overrides["datadir"] = datadir
    cfg_path = datadir / "config.toml"
    if not cfg_path.exists():
        datadir.mkdir(parents=True, exist_ok=True)
        stakes = []
        for i in range(DEV_CLIENTS):  # staked in genesis until the L1 follower brings real stakes
            kp = Keypair.generate()
            kp.save(datadir / "dev-clients" / f"client{i}.key")
            stakes.append(GenesisStake(kp.public_key, bytes(20), DEV_STAKE))
        base = NodeConfig(datadir=datadir, genesis_stakes=tuple(stakes))
        if not base.key_path.exists():
            Keypair.generate().save(base.key_path)
        cfg_path.write_text(render_toml(base))
    keys_dir = datadir / "dev-clients"
    if keys_dir.exists():
        names = sorted(p.name for p in keys_dir.glob("*.key"))
        print(f"dev clients (staked in genesis): {keys_dir}/{{{','.join(names)}}}", file=sys.stderr)
    overrides.setdefault("log_format", "console" if sys.stderr.isatty() else "json")
    cfg = load_config(cfg_path, overrides=overrides)
    return _run(cfg)


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import ReplayMismatch, replay
    from .sequencer import chain_config
    from .storage import Storage

    cfg = load_config(args.config)
    configure_logging(cfg.log_format, cfg.log_level)
    chain = chain_config(cfg, Keypair.load(cfg.key_path).signing_key)
    try:
        source = Storage(cfg.db_path)
    except StorageError as exc:
        print(f"cannot replay: {exc}", file=sys.stderr)
        return 2
    try:
        target = Storage(args.into)
    except StorageError as exc:
        source.close()
        print(f"cannot replay: {exc}", file=sys.stderr)
        return 2
    try:

        def progress(h: int, top: int) -> None:
            if h % 100 == 0 or h == top:
                log.info("replayed", height=h, of=top)

        last = replay(source, target, chain, cfg.genesis(), progress)
        print(f"replayed to height {last}: every state root matches")
        return 0
    except ReplayMismatch as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        source.close()
        target.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mps-node", description="The MPS chain node")
    sub = p.add_subparsers(dest="command", required=True)
    pi = sub.add_parser("init", help="write a node key and a default config")
    pi.add_argument("--datadir", type=Path, required=True)
    pi.add_argument("--chain-id", type=int, default=NodeConfig.chain_id)
    pi.add_argument("--force", action="store_true", help="overwrite an existing config")
    pi.set_defaults(func=cmd_init)
    pr = sub.add_parser("run", help="run the sequencer daemon")
    pr.add_argument("--config", type=Path, default=None, help="TOML config file")
    _add_common(pr)
    pr.set_defaults(func=cmd_run)
    pd = sub.add_parser("dev", help="run a local dev network in one process")
    _add_common(pd)
    pd.set_defaults(func=cmd_dev)
    pp = sub.add_parser("replay", help="re-execute the chain into a fresh database")
    pp.add_argument("--config", type=Path, required=True)
    pp.add_argument("--into", type=Path, required=True, help="empty directory for the new DB")
    pp.set_defaults(func=cmd_replay)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
