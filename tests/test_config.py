"""node.config layering and validation; node.storage refusing databases it cannot trust."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import plyvel
import pytest

from client_sdk.keys import Keypair
from node.config import ConfigError, NodeConfig, load_config, render_toml
from node.sequencer import chain_config, init_chain
from node.storage import K_HEAD, K_SCHEMA, SCHEMA_VERSION, Storage, StorageError
from stf.genesis import GenesisStake

STAKES = (
    GenesisStake(b"\x01" * 32, b"\xaa" * 20, 1000),
    GenesisStake(b"\x02" * 32, b"\xbb" * 20, 7),
)


def write(tmp_path: Path, text: str, name: str = "node.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# -- layering -----------------------------------------------------------------------
def test_defaults(tmp_path):
    cfg = load_config(env={})
    assert cfg == NodeConfig()
    assert cfg.block_time == 1.0 and cfg.chain_id == 4242 and cfg.genesis_stakes == ()
    assert cfg.key_path == Path("./data") / "node.key"
    assert cfg.db_path == Path("./data") / "chain.db"


def test_process_environment_is_the_default_env(monkeypatch):
    monkeypatch.setenv("MPS_MAX_BATCH", "17")
    assert load_config().max_batch == 17
    assert load_config(env={}).max_batch == 100


def test_precedence(tmp_path):
    path = write(
        tmp_path,
        """
block_time = 2.5
max_batch = 10
chain_id = 99
log_level = "debug"
empty_blocks = true
""",
    )
    from_file = load_config(path, env={})
    assert from_file.block_time == 2.5
    assert from_file.max_batch == 10
    assert from_file.chain_id == 99
    assert from_file.log_level == "debug"
    assert from_file.empty_blocks is True
    assert from_file.rpc_port == NodeConfig().rpc_port  # untouched default

    env = {"MPS_BLOCK_TIME": "0.25", "MPS_MAX_BATCH": "20", "MPS_EMPTY_BLOCKS": "off"}
    from_env = load_config(path, env=env)
    assert from_env.block_time == 0.25  # env beats the file
    assert from_env.max_batch == 20
    assert from_env.empty_blocks is False
    assert from_env.chain_id == 99  # the file still beats the default

    final = load_config(path, env=env, overrides={"block_time": 0.5, "max_batch": None})
    assert final.block_time == 0.5  # flags beat env
    assert final.max_batch == 20  # a flag left unset (None) does not count
    assert final.chain_id == 99

    # env alone over defaults; variables without the MPS_ prefix are not ours
    only_env = load_config(env={"MPS_CHAIN_ID": "7", "CHAIN_ID": "8"})
    assert only_env.chain_id == 7


def test_a_mistyped_mps_variable_is_refused_with_its_likely_meaning() -> None:
    """It used to be ignored, leaving the setting it meant at its default (issue 14)."""
    with pytest.raises(ConfigError, match=r"MPS_BLOK_TIME \(did you mean MPS_BLOCK_TIME\?\)"):
        load_config(env={"MPS_BLOK_TIME": "0.1", "MPS_CHAIN_ID": "7"})
    with pytest.raises(ConfigError, match="MPS_NOT_A_SETTING"):
        load_config(env={"MPS_NOT_A_SETTING": "x"})


def test_env_coercion(tmp_path):
    env = {
        "MPS_DATADIR": str(tmp_path / "d"),
        "MPS_KEY_FILE": str(tmp_path / "k.key"),
        "MPS_RPC_PORT": "0",
        "MPS_EMPTY_BLOCKS": "YES",
        "MPS_GENESIS_TIMESTAMP_MS": "1700000000000",
    }
    cfg = load_config(env=env)
    assert cfg.datadir == tmp_path / "d" and isinstance(cfg.datadir, Path)
    assert cfg.key_path == tmp_path / "k.key"
    assert cfg.db_path == tmp_path / "d" / "chain.db"
    assert cfg.rpc_port == 0
    assert cfg.empty_blocks is True
    assert cfg.genesis_timestamp_ms == 1700000000000


def test_genesis_table(tmp_path):
    path = write(
        tmp_path,
        """
[genesis]
timestamp_ms = 123
stakes = [
  { client_key = "0x"""
        + "01" * 32
        + """", l1_address = \""""
        + "aa" * 20
        + """", amount = 1000 },
  { client_key = \""""
        + "02" * 32
        + """", l1_address = "0x"""
        + "bb" * 20
        + """", amount = "7" },
]
""",
    )
    cfg = load_config(path, env={})
    assert cfg.genesis_timestamp_ms == 123
    assert cfg.genesis_stakes == STAKES
    assert cfg.genesis().stakes == STAKES and cfg.genesis().timestamp_ms == 123


# -- errors ---------------------------------------------------------------------------
def test_unknown_key_in_file(tmp_path):
    path = write(tmp_path, "block_time = 1.0\nblok_time = 2.0\nzzz = 1\n")
    with pytest.raises(ConfigError, match=r"blok_time \(did you mean block_time\?\)") as ei:
        load_config(path, env={})
    assert "zzz" in str(ei.value)


def test_the_genesis_time_is_written_once_and_refused_twice(tmp_path):
    """The generated config had genesis_timestamp_ms at the top and timestamp_ms under
    [genesis], and the top-level one silently won (issue 14)."""
    text = render_toml(NodeConfig(genesis_timestamp_ms=5))
    assert "genesis_timestamp_ms" not in text and text.count("timestamp_ms = 5") == 1
    assert load_config(write(tmp_path, text), env={}).genesis_timestamp_ms == 5
    both = write(tmp_path, "genesis_timestamp_ms = 7\n[genesis]\ntimestamp_ms = 5\n", "b.toml")
    with pytest.raises(ConfigError, match="genesis time twice"):
        load_config(both, env={})
    # alone at the top it is still a setting (as MPS_GENESIS_TIMESTAMP_MS is)
    top = write(tmp_path, "genesis_timestamp_ms = 7\n", "t.toml")
    assert load_config(top, env={}).genesis_timestamp_ms == 7


def test_every_setting_has_a_flag_that_names_its_default_and_variable(capsys):
    """11 of 37 settings had flags, none showed a default or a variable (issue 14)."""
    from node.cli import _overrides, build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for f in fields(NodeConfig):
        if f.name == "genesis_stakes":  # a table, in the config file only
            continue
        flag, var = "--" + f.name.replace("_", "-"), "MPS_" + f.name.upper()
        assert flag in shown and f"env {var})" in shown, f.name
    assert "seconds between blocks (default: 1.0; env MPS_BLOCK_TIME)" in shown
    args = parser.parse_args(
        ["run", "--max-batch", "7", "--no-empty-blocks", "--l1-max-fee-gwei", "2.5"]
    )
    over = _overrides(args)
    assert over == {"max_batch": "7", "empty_blocks": False, "l1_max_fee_gwei": "2.5"}
    cfg = load_config(env={"MPS_MAX_BATCH": "9", "MPS_EMPTY_BLOCKS": "on"}, overrides=over)
    assert (cfg.max_batch, cfg.empty_blocks, cfg.l1_max_fee_gwei) == (7, False, 2.5)
    with pytest.raises(ConfigError, match="max_batch"):
        load_config(env={}, overrides=_overrides(parser.parse_args(["dev", "--max-batch", "x"])))


@pytest.mark.parametrize(
    ("text", "env", "setting"),
    [
        ('block_time = "fast"', {}, "block_time"),
        ("", {"MPS_BLOCK_TIME": "fast"}, "block_time"),
        ("", {"MPS_MAX_BATCH": "many"}, "max_batch"),
        ("", {"MPS_RPC_PORT": "80.5"}, "rpc_port"),
        ("", {"MPS_EMPTY_BLOCKS": "maybe"}, "empty_blocks"),
        ("block_time = 0", {}, "block_time"),
        ("", {"MPS_BLOCK_TIME": "-1"}, "block_time"),
        ("max_batch = 0", {}, "max_batch"),
        ("max_block_txs = -3", {}, "max_block_txs"),
        ("verify_threads = 0", {}, "verify_threads"),
        ("rpc_port = 70000", {}, "rpc_port"),
        ('log_format = "xml"', {}, "log_format"),
        ("max_tx_size = 2000\nmax_body_size = 1000", {}, "max_tx_size"),
        ("funding_window_blocks = 2000000000", {}, "funding_window_blocks"),
        ('l1_reward_manager = "0x11"', {}, "funding_window_blocks must be at least 1"),
        ("request_timeout = 0", {}, "request_timeout"),
        ("max_connections_per_address = 0", {}, "max_connections_per_address"),
        ('[genesis]\nstakes = [{ client_key = "zz", l1_address = "aa", amount = 1 }]', {}, "stake"),
        ('[genesis]\nstakes = [{ client_key = "01", amount = 1 }]', {}, "genesis stake 0"),
        ('[genesis]\ntimestamp_ms = "soon"', {}, "genesis_timestamp_ms"),
    ],
)
def test_bad_value_names_the_setting(tmp_path, text, env, setting):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=setting):
        load_config(path, env=env)


def test_bad_override_names_the_setting():
    with pytest.raises(ConfigError, match="max_batch"):
        load_config(env={}, overrides={"max_batch": "lots"})


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.toml", env={})
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(write(tmp_path, "block_time = = 1"), env={})


def test_fractional_value_for_integer_setting(tmp_path):
    with pytest.raises(ConfigError, match="max_batch"):
        load_config(write(tmp_path, "max_batch = 2.5"), env={})


def test_unknown_key_in_genesis_table(tmp_path):
    with pytest.raises(ConfigError, match="timestamp"):
        load_config(write(tmp_path, "[genesis]\ntimestamp = 5\n"), env={})


# -- render_toml round trip ---------------------------------------------------------------
def test_render_toml_round_trip(tmp_path):
    cfg = NodeConfig(
        datadir=tmp_path / "data dir",
        chain_id=31337,
        key_file=tmp_path / "keys" / "seq.key",
        rpc_host="0.0.0.0",
        rpc_port=9000,
        block_time=0.05,
        max_block_txs=10,
        empty_blocks=True,
        max_tx_size=1000,
        max_body_size=2000,
        mempool_max_txs=5,
        max_nonce_gap=3,
        log_format="json",
        log_level="debug",
        genesis_timestamp_ms=1_700_000_000_123,
        genesis_stakes=STAKES,
    ).validate()
    path = write(tmp_path, render_toml(cfg))
    assert load_config(path, env={}) == cfg
    # defaults (no key file, no stakes) too
    default = NodeConfig(datadir=tmp_path)
    assert load_config(write(tmp_path, render_toml(default), "default.toml"), env={}) == default
    # the rendered file is a full, valid config that env still overrides
    assert load_config(path, env={"MPS_CHAIN_ID": "5"}) == replace(cfg, chain_id=5)


def test_render_toml_escapes_strings(tmp_path):
    cfg = NodeConfig(datadir=tmp_path / 'a "quoted" \\dir')
    assert load_config(write(tmp_path, render_toml(cfg)), env={}) == cfg


# -- storage refuses what it cannot trust --------------------------------------------------
def make_db(tmp_path: Path) -> tuple[NodeConfig, Path]:
    cfg = NodeConfig(datadir=tmp_path / "data", genesis_stakes=STAKES)
    key = Keypair.generate()
    key.save(cfg.key_path)
    storage = Storage(cfg.db_path)
    try:
        head = init_chain(storage, chain_config(cfg, key.signing_key), cfg)
        assert head.height == 0
        assert storage.head() == head
    finally:
        storage.close()
    return cfg, cfg.db_path


def test_storage_reopens_a_good_database(tmp_path):
    _, db = make_db(tmp_path)
    s = Storage(db)
    try:
        assert s.head() is not None and s.head().height == 0
        assert int(s.get(K_SCHEMA) or b"-1") == SCHEMA_VERSION
    finally:
        s.close()


def test_storage_refuses_schema_mismatch(tmp_path):
    _, db = make_db(tmp_path)
    raw = plyvel.DB(str(db))
    raw.put(K_SCHEMA, b"99")
    raw.close()
    with pytest.raises(StorageError, match="schema version 99"):
        Storage(db)


def test_storage_refuses_garbage_schema(tmp_path):
    _, db = make_db(tmp_path)
    raw = plyvel.DB(str(db))
    raw.put(K_SCHEMA, b"v1")
    raw.close()
    with pytest.raises(StorageError, match="schema"):
        Storage(db)


def test_storage_refuses_head_without_schema(tmp_path):
    _, db = make_db(tmp_path)
    raw = plyvel.DB(str(db))
    raw.delete(K_SCHEMA)
    raw.close()
    with pytest.raises(StorageError, match="no schema"):
        Storage(db)


def test_storage_refuses_head_to_missing_block(tmp_path):
    cfg, db = make_db(tmp_path)
    raw = plyvel.DB(str(db))
    raw.put(K_HEAD, b"\x5a" * 32)
    raw.close()
    s = Storage(db)
    try:
        with pytest.raises(StorageError, match="missing block"):
            s.head()
        # and so the node will not start on it
        key = Keypair.load(cfg.key_path)
        with pytest.raises(StorageError):
            init_chain(s, chain_config(cfg, key.signing_key), cfg)
    finally:
        s.close()


def test_storage_refuses_another_chains_database(tmp_path):
    cfg, db = make_db(tmp_path)
    key = Keypair.load(cfg.key_path)
    s = Storage(db)
    try:
        other = replace(cfg, chain_id=cfg.chain_id + 1)
        with pytest.raises(StorageError, match="genesis"):
            init_chain(s, chain_config(other, key.signing_key), other)
        no_stakes = replace(cfg, genesis_stakes=())
        with pytest.raises(StorageError, match="genesis"):
            init_chain(s, chain_config(no_stakes, key.signing_key), no_stakes)
        # the right config is accepted
        assert init_chain(s, chain_config(cfg, key.signing_key), cfg).height == 0
    finally:
        s.close()


def test_stf_backend_and_epoch_memory_reach_the_chain_config(tmp_path: Path) -> None:
    from nacl.signing import SigningKey

    from node.sequencer import chain_config

    cfg = load_config(env={"MPS_STF_BACKEND": "torch:cpu", "MPS_EPOCH_MEMORY_MIB": "64"})
    chain = chain_config(cfg, SigningKey.generate())
    assert (chain.backend, chain.epoch_memory_bytes) == ("torch:cpu", 64 * 2**20)
    with pytest.raises(ConfigError, match="stf_backend"):
        load_config(env={"MPS_STF_BACKEND": "jax"})
    with pytest.raises(ConfigError, match="epoch_memory_mib"):
        load_config(env={"MPS_EPOCH_MEMORY_MIB": "0"})


def test_blas_threads_is_a_setting_of_at_least_one() -> None:
    assert load_config(env={}).blas_threads == 1
    assert load_config(env={"MPS_BLAS_THREADS": "4"}).blas_threads == 4
    with pytest.raises(ConfigError, match="blas_threads"):
        load_config(env={"MPS_BLAS_THREADS": "0"})
