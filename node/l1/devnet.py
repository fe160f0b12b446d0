"""The dev network's L1: a local anvil whose chain lives in the data directory.

``mps-node dev`` needs no Ethereum node of its own: it starts anvil (from the
npm package the set-up installs) with ``--state``, so the L1 chain survives a
restart of the dev node, deploys the contracts on first use, funds and stakes
the dev clients on L1, and writes every key to ``<datadir>/l1/``. We use anvil
rather than an in-process EVM here because it is the same EVM the integration
tests run, it is fast, and it can persist its chain; the contract tests also
run on py-evm in process (eth-tester).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import structlog
from eth_account.signers.local import LocalAccount
from web3 import Web3

from contracts.anvil import Anvil, derive_accounts
from contracts.deploy import DeployParams, deploy_all
from contracts.transact import contract, transact
from mps_common.hexutil import from_hex
from mps_common.keyfile import Keypair
from stf.stakes import binding_message

from .chain import save_account

log = structlog.get_logger("mps.l1.dev")

DEV_L1_CHAIN_ID = 31337
ROLES = ("admin", "sequencer", "aggregator", "verifier")  # anvil accounts 0..3
FIRST_CLIENT_ACCOUNT = len(ROLES)


@dataclass(frozen=True)
class DevL1:
    url: str
    chain_id: int
    addresses: dict[str, str]
    start_block: int
    key_files: dict[str, Path]  # role -> private key file
    anvil: Anvil | None = None  # None: an L1 the user runs (--l1-rpc)

    def stop(self) -> None:
        if self.anvil is not None:
            self.anvil.stop()


def dev_params(
    genesis_root: bytes, sequencer: str, admin: str, data_fee_per_mib: int = 0
) -> DeployParams:
    """Small numbers so that a demo sees windows, finality and fees within minutes."""
    return DeployParams(
        stake_amount=10**18,
        base_fee=10**16,
        fee_per_epoch=10**17,
        data_fee_per_mib=data_fee_per_mib,  # the genesis spec's: the two must agree
        protocol_share_bps=1000,
        challenge_blocks=5,
        challenge_bond=10**17,
        da_challenge_blocks=2,
        da_resolve_blocks=2,
        genesis_state_root=genesis_root,
        sequencer=sequencer,
        admin=admin,
    )


def dev_clients(keys_dir: Path) -> list[Keypair]:
    """The dev clients' keys ``client0.key``, ``client1.key``, ... in the order of their number.

    The order pairs dev client *i* with the L1 account that stakes it (``l1/client{i}.key``);
    sorted as text, ``client10`` came before ``client2`` and every client from 2 on was staked
    by another client's account (rewards paid elsewhere, an unregister unbonding another key).
    """
    found = {}
    for path in keys_dir.glob("client*.key"):
        number = path.stem[len("client") :]
        if number.isdigit():
            found[int(number)] = path
    if sorted(found) != list(range(len(found))):
        raise ValueError(f"dev client keys in {keys_dir} are not numbered 0..n-1: {sorted(found)}")
    return [Keypair.load(found[i]) for i in range(len(found))]


def start_dev_l1(
    datadir: Path,
    genesis_root: bytes,
    clients: list[Keypair],
    rollup_chain_id: int,
    block_time: float = 1.0,
    l1_port: int = 0,
    l1_rpc: str = "",
    data_fee_per_mib: int = 0,
) -> DevL1:
    """Start (or resume) the dev L1; deploy and stake ``clients`` on first use (each stake with
    its key's binding to its L1 account, for the MPS chain ``rollup_chain_id``; the
    RewardManager bills a task's data at the genesis spec's ``data_fee_per_mib``).

    With ``l1_rpc``, use that node instead (an anvil or hardhat node the user
    runs, whose accounts come from the well-known test mnemonic).
    """
    l1dir = datadir / "l1"
    l1dir.mkdir(parents=True, exist_ok=True)
    n_accounts = FIRST_CLIENT_ACCOUNT + len(clients)
    if l1_rpc:
        w3 = Web3(Web3.HTTPProvider(l1_rpc))
        return _ensure_deployed(
            w3,
            derive_accounts(n_accounts),
            l1dir,
            genesis_root,
            clients,
            rollup_chain_id,
            l1_rpc,
            None,
            data_fee_per_mib,
        )
    anvil = Anvil(  # automine while deploying; then a block every block_time seconds
        block_time=None,
        state_path=l1dir / "anvil-state.json",
        chain_id=DEV_L1_CHAIN_ID,
        accounts=FIRST_CLIENT_ACCOUNT + len(clients) + 4,
        port=l1_port,
    )
    anvil.start()
    try:
        dev = _ensure_deployed(
            anvil.w3(),
            list(anvil.accounts),
            l1dir,
            genesis_root,
            clients,
            rollup_chain_id,
            anvil.url,
            anvil,
            data_fee_per_mib,
        )
        anvil.rpc("evm_setIntervalMining", [max(1, round(block_time))])
        return dev
    except BaseException:
        anvil.stop()
        raise


def _ensure_deployed(
    w3: Web3,
    accounts: list[LocalAccount],
    l1dir: Path,
    genesis_root: bytes,
    clients: list[Keypair],
    rollup_chain_id: int,
    url: str,
    anvil: Anvil | None,
    data_fee_per_mib: int = 0,
) -> DevL1:
    chain_id = int(w3.eth.chain_id)
    roles = {name: accounts[i] for i, name in enumerate(ROLES)}
    key_files = {}
    for name, acct in roles.items():
        path = l1dir / f"{name}.key"
        save_account(path, acct.key.hex())
        key_files[name] = path
    record = l1dir / "deployment.json"
    if record.exists():
        saved = json.loads(record.read_text())
        if all(w3.eth.get_code(a) for a in saved["addresses"].values()):
            return DevL1(url, chain_id, saved["addresses"], saved["start_block"], key_files, anvil)
        raise RuntimeError(
            f"the dev L1 state in {l1dir} lost the contracts the rollup was settled on; "
            "delete the dev data directory to start a fresh dev network"
        )
    start_block = int(w3.eth.block_number)
    params = dev_params(
        genesis_root, roles["sequencer"].address, roles["admin"].address, data_fee_per_mib
    )
    addresses = deploy_all(w3, roles["admin"], params)
    registry = contract(w3, "StakingRegistry", addresses["StakingRegistry"])
    for i, kp in enumerate(clients):  # each key binds the account that stakes it
        staker = accounts[FIRST_CLIENT_ACCOUNT + i]
        binding = kp.sign(binding_message(rollup_chain_id, from_hex(staker.address, "staker")))
        fn = registry.functions.stake(kp.public_key, binding)
        transact(w3, staker, fn, value=params.stake_amount)
        save_account(l1dir / f"client{i}.key", staker.key.hex())
    record.write_text(
        json.dumps({"addresses": addresses, "start_block": start_block}, indent=1) + "\n"
    )
    log.info("dev L1 deployed", rollup=addresses["MPSRollup"], clients_staked=len(clients))
    return DevL1(url, chain_id, addresses, start_block, key_files, anvil)
