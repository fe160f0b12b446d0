"""``mps-node``: init a data directory, run the sequencer, run a dev network, replay a chain."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from mps_common.hexutil import hex_fields
from mps_common.keyfile import KeyFileError, Keypair
from mps_common.version import VERSION
from stf.genesis import GenesisStake, genesis_block

from .blas import blas_threads
from .config import (
    DEFAULT_DATA_FEE_PER_MIB,
    DEFAULT_FUNDING_WINDOW_BLOCKS,
    ConfigError,
    NodeConfig,
    load_config,
    render_toml,
    setting_flags,
)
from .logs import configure_logging
from .storage import StorageError

log = structlog.get_logger("mps.cli")

DEV_CLIENTS = 12
DEV_STAKE = 10**18


def _add_common(p: argparse.ArgumentParser) -> None:
    """A flag for every setting of run and dev (``block_time`` is ``--block-time``), its help
    naming the default and the ``MPS_*`` variable; a flag beats the variable and the file."""
    g = p.add_argument_group("settings (flag > MPS_* variable > config file > default)")
    for flag in setting_flags():
        kw: dict[str, Any] = {"default": None, "help": flag.help}
        if flag.kind == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["metavar"] = flag.kind.upper()
        g.add_argument(f"--{flag.name.replace('_', '-')}", dest=flag.name, **kw)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = [f.name for f in setting_flags()]
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
    from .conn_guard import GUARD_KEY, serve_guarded

    app = create_app_lazy(cfg)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    # aiohttp's handler behind the connection guard: caps and request deadlines (issue 13)
    server = await serve_guarded(runner, cfg.rpc_host, cfg.rpc_port, app[GUARD_KEY])
    port = server.sockets[0].getsockname()[1] if server.sockets else cfg.rpc_port
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
    server.close()
    await runner.shutdown()  # open connections (WebSockets) are told to close
    await runner.cleanup()
    await server.wait_closed()
    log.info("stopped cleanly")


def create_app_lazy(cfg: NodeConfig) -> web.Application:
    from .app import create_app

    return create_app(cfg)


def _run(cfg: NodeConfig) -> int:
    configure_logging(cfg.log_format, cfg.log_level)
    try:
        asyncio.run(serve(cfg))
    except (StorageError, KeyFileError, RuntimeError) as exc:
        log.error("cannot start", error=str(exc))
        return 2
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, overrides=_overrides(args))
    return _run(cfg)


def cmd_dev(args: argparse.Namespace) -> int:
    """A whole local network: the sequencer, its L1 (anvil, contracts, staked dev clients)."""
    overrides = _overrides(args)
    datadir = Path(overrides.get("datadir") or "./devnet").resolve()
    overrides["datadir"] = datadir
    cfg_path = datadir / "config.toml"
    keys_dir = datadir / "dev-clients"
    if not cfg_path.exists():
        datadir.mkdir(parents=True, exist_ok=True)
        stakes = []
        for i in range(DEV_CLIENTS):
            kp = Keypair.generate()
            kp.save(keys_dir / f"client{i}.key")
            if args.no_l1:  # without an L1, genesis stakes them
                stakes.append(GenesisStake(kp.public_key, bytes(20), DEV_STAKE))
        base = NodeConfig(
            datadir=datadir,
            genesis_stakes=tuple(stakes),
            l1_confirmations=1,
            l1_poll_interval=0.5,
            batch_blocks=5,
            batch_seconds=5.0,
            funding_window_blocks=0 if args.no_l1 else DEFAULT_FUNDING_WINDOW_BLOCKS,
            data_fee_per_mib=0 if args.no_l1 else DEFAULT_DATA_FEE_PER_MIB,
        )
        if not base.key_path.exists():
            Keypair.generate().save(base.key_path)
        cfg_path.write_text(render_toml(base))
    overrides.setdefault("log_format", "console" if sys.stderr.isatty() else "json")
    cfg = load_config(cfg_path, overrides=overrides)
    configure_logging(cfg.log_format, cfg.log_level)
    if args.no_l1:
        print(f"dev clients (staked in genesis): {keys_dir}", file=sys.stderr)
        return _run(cfg)
    from .l1.devnet import dev_clients, start_dev_l1

    clients = dev_clients(keys_dir)
    from .sequencer import chain_config

    chain = chain_config(cfg, Keypair.load(cfg.key_path).signing_key)
    genesis_root = genesis_block({}, chain, cfg.genesis())[0].header.state_root
    try:
        dev = start_dev_l1(
            datadir,
            genesis_root,
            clients,
            cfg.chain_id,
            l1_port=args.l1_port,
            l1_rpc=cfg.l1_rpc,
            data_fee_per_mib=cfg.data_fee_per_mib,
        )
    except Exception as exc:
        log.error("cannot start the dev L1", error=str(exc))
        return 2
    try:
        a = dev.addresses
        cfg = replace(
            cfg,
            l1_rpc=dev.url,
            l1_chain_id=dev.chain_id,
            l1_key_file=dev.key_files["sequencer"],
            l1_aggregator_key_file=dev.key_files["aggregator"],
            l1_staking_registry=a["StakingRegistry"],
            l1_rollup=a["MPSRollup"],
            l1_slashing_manager=a["SlashingManager"],
            l1_reward_manager=a["RewardManager"],
            l1_forced_inbox=a["ForcedInbox"],
            l1_start_block=dev.start_block,
        ).validate()
        (datadir / "l1" / "endpoint").write_text(dev.url + "\n")
        (datadir / "l1" / "genesis.json").write_text(genesis_json(cfg))  # for `verify --genesis`
        print(
            f"dev L1 {dev.url} (chain {dev.chain_id}); contracts {datadir}/l1/deployment.json\n"
            f"dev clients: ed25519 keys {keys_dir}/, their staked L1 accounts {datadir}/l1/",
            file=sys.stderr,
        )
        return _run(cfg)
    finally:
        dev.stop()


def cmd_deploy(args: argparse.Namespace) -> int:
    """Deploy the contracts for this node's chain and write their addresses to its config."""
    from contracts.deploy import DeployParams, deploy_all

    from .l1.chain import L1Error, connect, load_account
    from .sequencer import chain_config

    cfg = load_config(args.config)
    # the RewardManager makes the chain fund its tasks on the L1 first: a consensus parameter,
    # so it must be in the genesis the rollup contract starts from
    cfg = replace(
        cfg,
        funding_window_blocks=cfg.funding_window_blocks or DEFAULT_FUNDING_WINDOW_BLOCKS,
        data_fee_per_mib=cfg.data_fee_per_mib or DEFAULT_DATA_FEE_PER_MIB,
    )
    try:
        w3 = connect(args.l1_rpc, args.l1_chain_id)
        deployer = load_account(args.l1_key_file)
    except L1Error as exc:
        print(f"cannot deploy: {exc}", file=sys.stderr)
        return 2
    sequencer = args.sequencer_address or deployer.address
    admin = args.admin_address or deployer.address
    resolvers = tuple(args.resolver or ())
    if not args.dev and len(resolvers) < 3:
        print(
            "cannot deploy: fraud challenges are decided by a committee of independent resolvers "
            "(k of m, k > m/2): give --resolver at least three times (and --resolver-threshold), "
            "or --dev for a development network (the admin alone)",
            file=sys.stderr,
        )
        return 2
    if sequencer.lower() == admin.lower() and not args.dev:
        print(
            "cannot deploy: the admin would be the sequencer. The admin decides fraud challenges "
            "against the sequencer's batches, so they must be different parties: give "
            "--admin-address (a multisig) and/or --sequencer-address (the poster's hot key), "
            "or --dev for a development network",
            file=sys.stderr,
        )
        return 2
    chain = chain_config(cfg, Keypair.load(cfg.key_path).signing_key)
    params = DeployParams(
        stake_amount=args.stake_amount,
        base_fee=args.base_fee,
        fee_per_epoch=args.fee_per_epoch,
        data_fee_per_mib=cfg.data_fee_per_mib,
        protocol_share_bps=args.protocol_share_bps,
        challenge_blocks=args.challenge_blocks,
        challenge_bond=args.challenge_bond,
        da_challenge_blocks=args.da_challenge_blocks,
        da_resolve_blocks=args.da_resolve_blocks,
        da_bond=args.da_bond,
        sequencing_window=args.sequencing_window,
        max_forced_tx_bytes=cfg.max_tx_size,
        genesis_state_root=genesis_block({}, chain, cfg.genesis())[0].header.state_root,
        sequencer=sequencer,
        admin=admin,
        resolvers=resolvers,
        resolver_threshold=args.resolver_threshold or len(resolvers) // 2 + 1,
    )
    start = int(w3.eth.block_number)
    addresses = deploy_all(w3, deployer, params)
    cfg = replace(
        cfg,
        l1_rpc=args.l1_rpc,
        l1_chain_id=int(w3.eth.chain_id),
        l1_key_file=cfg.l1_key_file or args.l1_key_file.resolve(),
        l1_staking_registry=addresses["StakingRegistry"],
        l1_rollup=addresses["MPSRollup"],
        l1_slashing_manager=addresses["SlashingManager"],
        l1_reward_manager=addresses["RewardManager"],
        l1_forced_inbox=addresses["ForcedInbox"],
        l1_start_block=start,
    )
    args.config.write_text(render_toml(cfg))
    for name, addr in addresses.items():
        print(f"{name:16} {addr}")
    print(f"wrote the addresses to {args.config}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Replay every committed batch; challenge and exit 1 at the first divergence."""
    import time

    from mps_common.transport import RPCClient

    from .l1.chain import GWEI, L1Error, bind_contract, connect, load_account
    from .l1.data_source import DataUnobtainable
    from .l1.derivation import DerivationIncomplete
    from .l1.verifier import Verifier
    from .storage import Storage

    configure_logging(args.log_format or "auto", "info")
    try:
        w3 = connect(args.l1_rpc, args.l1_chain_id)
        account = load_account(args.l1_key_file) if args.l1_key_file else None
    except L1Error as exc:
        print(f"cannot verify: {exc}", file=sys.stderr)
        return 2
    try:
        rollup = bind_contract(w3, "MPSRollup", args.rollup)
        registry = rewards = inbox = None
        if args.forced_inbox:
            inbox = bind_contract(w3, "ForcedInbox", args.forced_inbox)
        if args.staking_registry:
            registry = bind_contract(w3, "StakingRegistry", args.staking_registry)
        if args.reward_manager:
            rewards = bind_contract(w3, "RewardManager", args.reward_manager)
    except L1Error as exc:
        print(f"cannot verify: {exc}", file=sys.stderr)
        return 2
    genesis = None
    if args.genesis is not None:
        try:
            genesis = json.loads(args.genesis.read_text())
        except (OSError, ValueError) as exc:
            print(f"cannot verify: cannot read the genesis {args.genesis}: {exc}", file=sys.stderr)
            return 2
    elif not args.sequencer_rpc:
        print("cannot verify: without --sequencer-rpc, give --genesis", file=sys.stderr)
        return 2
    derivation = None
    if registry is not None:
        from .l1.derivation import DerivationChecker

        derivation = DerivationChecker(w3, registry, rewards, args.l1_start_block, inbox)
    else:
        log.warning("no --staking-registry: L1 deposits are not checked against the L1")
        if inbox is not None:
            log.warning(
                "--forced-inbox needs --staking-registry: without it neither forced "
                "transactions nor the sequencing window are checked"
            )
    args.datadir.mkdir(parents=True, exist_ok=True)
    storage = Storage(args.datadir / "verified.db")
    try:
        v = Verifier(
            rollup,
            RPCClient(args.sequencer_rpc) if args.sequencer_rpc else None,
            storage,
            w3,
            account,
            int(args.max_fee_gwei * GWEI),
            lambda done, total: log.info("verified", batches=done, of=total),
            derivation,
            genesis,
        )
        while True:
            with blas_threads(args.blas_threads):
                try:
                    bad = v.verify_new_batches()
                except (DerivationIncomplete, DataUnobtainable) as exc:
                    print(f"cannot verify: {exc}", file=sys.stderr)
                    return 2
            if bad is not None:
                print(f"DIVERGENCE {bad}" + (" (challenged on L1)" if bad.challenged else ""))
                return 1
            if args.once:
                if v.waiting is not None:  # a data challenge is under way on the L1
                    print(f"verified {v.checked} batches; then waiting: {v.waiting}")
                    return 3
                print(f"verified {v.checked} batches: every state root matches")
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        storage.close()


def genesis_json(cfg: NodeConfig) -> str:
    """The chain's genesis as ``mps_getGenesis`` answers it, in JSON (bytes as 0x hex)."""
    from rpc.views import genesis_view

    from .sequencer import chain_config

    chain = chain_config(cfg, Keypair.load(cfg.key_path).signing_key)
    block = genesis_block({}, chain, cfg.genesis())[0]
    view = genesis_view(chain, cfg.genesis(), block.hash)
    return json.dumps(hex_fields(view), indent=1) + "\n"


def cmd_genesis(args: argparse.Namespace) -> int:
    """Print the genesis a verifier needs to derive the chain from the L1 alone."""
    sys.stdout.write(genesis_json(load_config(args.config)))
    return 0


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

        with blas_threads(cfg.blas_threads):
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
    p.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
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
    pd = sub.add_parser("dev", help="run a local dev network: sequencer, L1 and contracts")
    _add_common(pd)
    pd.add_argument("--no-l1", action="store_true", help="no L1: dev clients staked in genesis")
    pd.add_argument("--l1-port", type=int, default=0, help="port of the dev L1 (0: a free one)")
    pd.set_defaults(func=cmd_dev)
    py = sub.add_parser("deploy", help="deploy the L1 contracts; write them to the config")
    py.add_argument("--config", type=Path, required=True)
    py.add_argument("--l1-rpc", required=True, help="Ethereum JSON-RPC endpoint")
    py.add_argument("--l1-chain-id", type=int, required=True)
    py.add_argument("--l1-key-file", type=Path, required=True, help="deployer's private key")
    py.add_argument("--sequencer-address", default=None, help="default: the deployer")
    py.add_argument("--admin-address", default=None, help="default: the deployer")
    py.add_argument(
        "--resolver", action="append", metavar="ADDRESS",
        help="a member of the committee deciding fraud challenges (repeat; at least 3)",
    )  # fmt: skip
    py.add_argument(
        "--resolver-threshold", type=int, default=0, help="votes an outcome needs (default: m/2+1)"
    )
    py.add_argument(
        "--dev", action="store_true",
        help="a development network: the admin may be the sequencer and the sole resolver",
    )  # fmt: skip
    py.add_argument("--stake-amount", type=int, default=10**18)
    py.add_argument("--base-fee", type=int, default=10**16)
    py.add_argument("--fee-per-epoch", type=int, default=10**17)
    py.add_argument("--protocol-share-bps", type=int, default=1000)
    py.add_argument("--challenge-blocks", type=int, default=50_400, help="fraud window (7 days)")
    py.add_argument("--challenge-bond", type=int, default=10**18)
    py.add_argument(
        "--da-challenge-blocks", type=int, default=3_600, help="data-challenge window (12 h)"
    )
    py.add_argument("--da-resolve-blocks", type=int, default=3_600, help="time to publish data")
    py.add_argument("--da-bond", type=int, default=10**17)
    py.add_argument(
        "--sequencing-window", type=int, default=300,
        help="L1 blocks within which a batch must carry every L1 event, forced ones too (1 h)",
    )  # fmt: skip
    py.set_defaults(func=cmd_deploy)
    pv = sub.add_parser("verify", help="replay committed batches; challenge a wrong one")
    pv.add_argument("--l1-rpc", required=True)
    pv.add_argument("--l1-chain-id", type=int, default=0, help="checked if given")
    pv.add_argument("--rollup", required=True, help="MPSRollup address")
    pv.add_argument(
        "--sequencer-rpc", default="",
        help="the sequencer's JSON-RPC URL; without it, from the L1 alone (needs --genesis)",
    )  # fmt: skip
    pv.add_argument(
        "--genesis", type=Path, default=None,
        help="the chain's genesis (`mps-node genesis`); checked against the rollup's root",
    )  # fmt: skip
    pv.add_argument("--staking-registry", default="", help="check deposits against its events")
    pv.add_argument("--reward-manager", default="", help="check task funding against its events")
    pv.add_argument(
        "--forced-inbox", default="",
        help="check forced transactions and the sequencing window against it",
    )  # fmt: skip
    pv.add_argument("--l1-start-block", type=int, default=0, help="the deployment's L1 block")
    pv.add_argument("--datadir", type=Path, default=Path("./verifier"))
    pv.add_argument("--l1-key-file", type=Path, default=None, help="a registered verifier's key")
    pv.add_argument("--max-fee-gwei", type=float, default=500.0)
    pv.add_argument("--once", action="store_true", help="verify what is committed, then exit")
    pv.add_argument("--interval", type=float, default=5.0)
    pv.add_argument("--log-format", default=None)
    pv.add_argument(
        "--blas-threads", type=int, default=NodeConfig.blas_threads, help="BLAS threads (default 1)"
    )
    pv.set_defaults(func=cmd_verify)
    pg = sub.add_parser("genesis", help="print the chain's genesis (JSON), as verifiers need it")
    pg.add_argument("--config", type=Path, required=True)
    pg.set_defaults(func=cmd_genesis)
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
