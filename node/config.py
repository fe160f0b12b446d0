"""Node configuration: defaults < TOML file < ``MPS_*`` environment < command-line flags.

One dataclass names every setting; the file, the environment and the flags
all use those names (``block_time`` is ``MPS_BLOCK_TIME`` and ``--block-time``).
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mps_common.hexutil import from_hex
from rpc.tx_stream import StreamLimits
from stf.context import Limits
from stf.genesis import Genesis, GenesisStake

from .config_help import SETTING_HELP
from .conn_guard import GuardLimits
from .mempool import MempoolLimits

ENV_PREFIX = "MPS_"
# what `mps-node dev` and `deploy` choose for a chain with an L1: ~10 minutes at 1 s blocks
# for the funding to arrive (L1 confirmations) and its create_task to follow
DEFAULT_FUNDING_WINDOW_BLOCKS = 600
# and the price of a task's bytes: BASE_FEE (0.01 ETH on a dev network) per 400 MiB, the price
# of a funding's pre-task uploads (stf.fl.data_budget)
DEFAULT_DATA_FEE_PER_MIB = 25 * 10**12


class ConfigError(ValueError):
    """A setting is missing, malformed or out of range."""


@dataclass(frozen=True)
class NodeConfig:
    datadir: Path = Path("./data")
    chain_id: int = 4242
    key_file: Path | None = None  # default: <datadir>/node.key
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 8645
    block_time: float = 1.0
    max_block_txs: int = 1000
    empty_blocks: bool = False
    max_tx_size: int = 4 * 1024 * 1024
    max_record_size: int = 4096
    max_blob_size: int = 4 * 1024 * 1024
    # consensus: 0, tasks need no L1 funding; n > 0, a task is funded on the L1 before its
    # create_task, which must bind the funding within n blocks of its arrival (stf.fl.funding).
    # Required (>= 1) with an l1_reward_manager: a task slot must cost its requester BASE_FEE
    funding_window_blocks: int = 0
    # consensus: wei per MiB of a task's data, billed to its funding at settlement (0: not
    # priced; needs funding_window_blocks >= 1, and the RewardManager's DATA_FEE_PER_MIB)
    data_fee_per_mib: int = 0
    max_body_size: int = 64 * 1024 * 1024
    max_batch: int = 100
    max_stream_txs: int = 10_000  # POST /txs: transactions in one stream
    # connections (node/conn_guard.py): caps, and how long a socket may go without a request
    max_connections: int = 1000
    max_connections_per_address: int = 64
    request_timeout: float = 10.0  # connect -> the first request's headers
    idle_timeout: float = 60.0  # a response -> the next request's headers
    body_timeout: float = 60.0  # a request's headers -> its whole body
    mempool_max_txs: int = 50_000
    mempool_max_bytes: int = 1024 * 1024 * 1024
    max_nonce_gap: int = 64
    verify_threads: int = 2
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"
    genesis_timestamp_ms: int = 0
    # how the STF computes (never what): numpy, torch, torch:cpu, torch:cuda:0; and the memory
    # an epoch close may use (it streams over the parameters in blocks that fit)
    stf_backend: str = "numpy"
    epoch_memory_mib: int = 256
    # blob store retention (node.blob_gc): blobs no state names are pruned once this many blocks
    # old (and their batch final on the L1); 0 keeps every blob (an archive of them)
    blob_retention_blocks: int = 100_000
    blas_threads: int = 1  # BLAS threads of the epoch close (node/blas.py: chosen, not guessed)
    # L1 settlement; an empty l1_rpc runs the node without an L1 (`mps-node dev` starts one)
    l1_rpc: str = ""
    l1_chain_id: int = 0  # checked against the endpoint's eth_chainId
    l1_key_file: Path | None = None  # the sequencer's L1 account (batch poster), hex private key
    l1_aggregator_key_file: Path | None = None  # the aggregator's L1 account; unset: no aggregator
    l1_staking_registry: str = ""
    l1_rollup: str = ""
    l1_slashing_manager: str = ""
    l1_reward_manager: str = ""
    l1_forced_inbox: str = ""  # ForcedInbox: signed transactions users force past a censor
    l1_start_block: int = 0  # the L1 block the contracts were deployed in
    l1_confirmations: int = 2  # L1 events are read this many blocks behind the L1 head
    l1_poll_interval: float = 1.0
    batch_blocks: int = 20  # commit a batch once this many blocks wait...
    batch_seconds: float = 30.0  # ...or once the oldest waiting block is this old
    batch_max_blocks: int = 1000
    # publish every batch's data on the L1 as well (a data challenge the poster answers itself,
    # about 41 gas a byte), so that a verifier can derive the chain from the L1 alone at any time,
    # not only within each batch's data window
    batch_data_on_l1: bool = False
    l1_max_fee_gwei: float = 500.0  # the poster never bids more per gas than this
    genesis_stakes: tuple[GenesisStake, ...] = field(default=())

    @property
    def key_path(self) -> Path:
        return self.key_file if self.key_file is not None else self.datadir / "node.key"

    @property
    def db_path(self) -> Path:
        return self.datadir / "chain.db"

    def limits(self) -> Limits:
        return Limits(
            max_tx_size=self.max_tx_size,
            max_block_txs=self.max_block_txs,
            max_record_size=self.max_record_size,
            max_blob_size=self.max_blob_size,
            funding_window_blocks=self.funding_window_blocks,
            data_fee_per_mib=self.data_fee_per_mib,
        )

    def guard_limits(self) -> GuardLimits:
        return GuardLimits(
            self.max_connections_per_address,
            self.max_connections,
            self.request_timeout,
            self.idle_timeout,
        )

    def stream_limits(self) -> StreamLimits:
        """``POST /txs``: a frame has the body timeout to arrive; two chunks of frames per verify
        thread are checked at once (enough to keep each busy, few enough to bound memory)."""
        return StreamLimits(
            self.max_tx_size, self.max_stream_txs, self.body_timeout, 2 * self.verify_threads
        )

    def mempool_limits(self) -> MempoolLimits:
        return MempoolLimits(self.mempool_max_txs, self.mempool_max_bytes, self.max_nonce_gap)

    def genesis(self) -> Genesis:
        return Genesis(self.genesis_timestamp_ms, self.genesis_stakes)

    def validate(self) -> NodeConfig:
        problems = []
        if self.block_time <= 0:
            problems.append("block_time must be positive")
        for name in (
            "max_block_txs",
            "max_tx_size",
            "max_body_size",
            "max_batch",
            "max_stream_txs",
            "verify_threads",
            "blas_threads",
            "max_connections",
            "max_connections_per_address",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if not 0 <= self.rpc_port <= 65535:
            problems.append("rpc_port must be 0-65535")
        if self.log_format not in ("auto", "json", "console"):
            problems.append("log_format must be auto, json or console")
        if self.stf_backend != "numpy" and not self.stf_backend.startswith("torch"):
            problems.append("stf_backend must be numpy, torch or torch:<device>")
        if self.blob_retention_blocks < 0:
            problems.append("blob_retention_blocks must be 0 (keep every blob) or more")
        if self.epoch_memory_mib < 1:
            problems.append("epoch_memory_mib must be at least 1")
        if self.l1_rpc:
            if self.l1_chain_id < 1:
                problems.append("l1_chain_id must be set when l1_rpc is")
            for name in ("l1_staking_registry", "l1_rollup", "l1_slashing_manager"):
                if not getattr(self, name):
                    problems.append(f"{name} must be set when l1_rpc is (run `mps-node deploy`)")
            if self.l1_key_file is None:
                problems.append("l1_key_file must be set when l1_rpc is")
        if min(self.request_timeout, self.idle_timeout, self.body_timeout) <= 0:
            problems.append("request_timeout, idle_timeout and body_timeout must be positive")
        if not 0 <= self.funding_window_blocks <= 10**9:
            problems.append("funding_window_blocks must be 0 to 10^9")
        if self.l1_reward_manager and self.funding_window_blocks < 1:
            problems.append(
                "funding_window_blocks must be at least 1 with an l1_reward_manager (tasks are "
                "funded on the L1 first, so that a task slot costs its requester BASE_FEE)"
            )
        if not 0 <= self.data_fee_per_mib < 2**128:
            problems.append("data_fee_per_mib must be 0 to 2^128 - 1 wei")
        elif self.data_fee_per_mib and self.funding_window_blocks < 1:
            problems.append(
                "data_fee_per_mib needs funding_window_blocks >= 1: a task's bytes are billed to "
                "its L1 funding"
            )
        if self.l1_confirmations < 0 or self.batch_blocks < 1 or self.batch_max_blocks < 1:
            problems.append("l1_confirmations must be >= 0, batch_blocks and batch_max_blocks >= 1")
        if self.max_tx_size > self.max_body_size:
            problems.append("max_tx_size cannot exceed max_body_size")
        if problems:
            raise ConfigError("; ".join(problems))
        return self


_SCALAR = {f.name: f for f in fields(NodeConfig) if f.name != "genesis_stakes"}


def _kind(name: str) -> str:
    """``path``, ``bool``, ``int``, ``float`` or ``str``: how a setting's text is read."""
    kind = str(_SCALAR[name].type)
    if "Path" in kind:
        return "path"
    return kind if kind in ("bool", "int", "float") else "str"


@dataclass(frozen=True)
class SettingFlag:
    """One setting as the command line shows it."""

    name: str
    kind: str
    help: str


def setting_flags() -> list[SettingFlag]:
    """Every setting, with help that names its default and its ``MPS_*`` variable."""
    defaults = NodeConfig()
    out = []
    for name in _SCALAR:
        default = getattr(defaults, name)
        shown = "unset" if default in (None, "") else default
        if isinstance(default, bool):
            shown = "on" if default else "off"
        text = f"{SETTING_HELP[name]} (default: {shown}; env {ENV_PREFIX}{name.upper()})"
        out.append(SettingFlag(name, _kind(name), text.replace("%", "%%")))
    return out


def _unknown(kind: str, names: set[str], where: str, spell: Any = str) -> ConfigError:
    """A refusal naming each unknown setting, and the setting it was probably meant to be."""
    parts = []
    for n in sorted(names):
        close = difflib.get_close_matches(n.lower().removeprefix("mps_"), list(_SCALAR), 1)
        parts.append(f"{n} (did you mean {spell(close[0])}?)" if close else n)
    return ConfigError(f"unknown {kind} in {where}: {', '.join(parts)}")


def _coerce(name: str, value: Any) -> Any:
    kind = _kind(name)
    try:
        if kind == "path":
            return Path(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name}: cannot read {value!r} as {kind}") from None


def _stakes(raw: Any) -> tuple[GenesisStake, ...]:
    out = []
    for i, s in enumerate(raw or []):
        try:
            out.append(
                GenesisStake(
                    from_hex(s["client_key"], "client_key", prefix_optional=True),
                    from_hex(s["l1_address"], "l1_address", prefix_optional=True),
                    int(s["amount"]),
                )
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"genesis stake {i}: {exc}") from None
    return tuple(out)


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> NodeConfig:
    """Merge the layers; unknown keys in the file are errors, not silently ignored."""
    values: dict[str, Any] = {}
    stakes: tuple[GenesisStake, ...] = ()
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        genesis = data.pop("genesis", {})
        if not isinstance(genesis, dict):
            raise ConfigError(f"[genesis] in {path} must be a table")
        extra = set(genesis) - {"timestamp_ms", "stakes"}
        if extra:
            raise ConfigError(
                f"unknown settings in [genesis] of {path}: {', '.join(sorted(extra))}"
            )
        stakes = _stakes(genesis.get("stakes"))
        if "timestamp_ms" in genesis and "genesis_timestamp_ms" in data:
            raise ConfigError(
                f"{path} sets the genesis time twice: keep [genesis] timestamp_ms and drop the "
                "top-level genesis_timestamp_ms"
            )
        if "timestamp_ms" in genesis:
            values["genesis_timestamp_ms"] = genesis["timestamp_ms"]
        unknown = set(data) - set(_SCALAR)
        if unknown:
            raise _unknown("settings", unknown, str(path))
        values.update(data)
    env = os.environ if env is None else env
    stray = {k for k in env if k.startswith(ENV_PREFIX)} - {ENV_PREFIX + n.upper() for n in _SCALAR}
    if stray:  # a mistyped variable must not silently leave its setting at the default
        raise _unknown(
            f"{ENV_PREFIX}* variables", stray, "the environment", lambda n: ENV_PREFIX + n.upper()
        )
    for name in _SCALAR:
        if ENV_PREFIX + name.upper() in env:
            values[name] = env[ENV_PREFIX + name.upper()]
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    coerced = {name: _coerce(name, v) for name, v in values.items()}
    return replace(NodeConfig(genesis_stakes=stakes), **coerced).validate()


def render_toml(cfg: NodeConfig) -> str:
    """The config file ``mps-node init`` writes: every setting, with its value."""
    lines = ["# mps-node configuration; MPS_* variables and flags override these", ""]
    for name in _SCALAR:
        value = getattr(cfg, name)
        if value is None or name == "genesis_timestamp_ms":  # written under [genesis]
            continue
        if isinstance(value, bool):
            lines.append(f"{name} = {'true' if value else 'false'}")
        elif isinstance(value, int | float):
            lines.append(f"{name} = {value}")
        else:
            lines.append(f"{name} = {json.dumps(str(value))}")  # a JSON string is a TOML string
    lines += ["", "[genesis]", f"timestamp_ms = {cfg.genesis_timestamp_ms}", "stakes = ["]
    for s in cfg.genesis_stakes:
        lines.append(
            f'  {{ client_key = "{s.client_key.hex()}", l1_address = "{s.l1_address.hex()}", '
            f"amount = {s.amount} }},"
        )
    lines.append("]")
    return "\n".join(lines) + "\n"
