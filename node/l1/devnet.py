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
from contracts.anvil import Anvil
from contracts.deploy import DeployParams, contract, deploy_all, transact
from eth_account.signers.local import LocalAccount

from .chain import save_account

log = structlog.get_logger("mps.l1.dev")

DEV_L1_CHAIN_ID = 31337
ROLES = ("admin", "sequencer", "aggregator", "verifier")  # anvil accounts 0..3
FIRST_CLIENT_ACCOUNT = len(ROLES)


@dataclass(frozen=True)
class DevL1:
    anvil: Anvil
    addresses: dict[str, str]
    start_block: int
    key_files: dict[str, Path]  # role -> private key file

    chain_id: int = DEV_L1_CHAIN_ID

    @property
    def url(self) -> str:
        return str(self.anvil.url)

    def stop(self) -> None:
        self.anvil.stop()


def dev_params(genesis_root: bytes, sequencer: str, admin: str) -> DeployParams:
    """Small numbers so that a demo sees unbonding, windows and fees within minutes."""
    return DeployParams(
        stake_amount=10**18,
        unbonding_blocks=20,
        base_fee=10**16,
        fee_per_epoch=10**17,
        protocol_share_bps=1000,
        challenge_blocks=5,
        challenge_bond=10**17,
        genesis_state_root=genesis_root,
        sequencer=sequencer,
        admin=admin,
    )


def start_dev_l1(
    datadir: Path,
    genesis_root: bytes,
    client_keys: list[bytes],
    block_time: float = 1.0,
    l1_port: int = 0,
) -> DevL1:
    """Start (or resume) the dev L1; deploy and stake on first use."""
    l1dir = datadir / "l1"
    l1dir.mkdir(parents=True, exist_ok=True)
    anvil = Anvil(
        block_time=block_time,
        state_path=l1dir / "anvil-state.json",
        chain_id=DEV_L1_CHAIN_ID,
        accounts=FIRST_CLIENT_ACCOUNT + len(client_keys) + 4,
        port=l1_port,
    )
    anvil.__enter__()
    try:
        return _ensure_deployed(anvil, l1dir, genesis_root, client_keys)
    except BaseException:
        anvil.stop()
        raise


def _ensure_deployed(
    anvil: Anvil, l1dir: Path, genesis_root: bytes, client_keys: list[bytes]
) -> DevL1:
    w3 = anvil.w3()
    accounts: list[LocalAccount] = list(anvil.accounts)
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
            return DevL1(anvil, saved["addresses"], saved["start_block"], key_files)
        raise RuntimeError(
            f"the dev L1 state in {l1dir} lost the contracts the rollup was settled on; "
            "delete the dev data directory to start a fresh dev network"
        )
    start_block = int(w3.eth.block_number)
    params = dev_params(genesis_root, roles["sequencer"].address, roles["admin"].address)
    addresses = deploy_all(w3, roles["admin"], params)
    rollup = contract(w3, "MPSRollup", addresses["MPSRollup"])
    transact(w3, roles["admin"], rollup.functions.setVerifier(roles["verifier"].address, True))
    registry = contract(w3, "StakingRegistry", addresses["StakingRegistry"])
    for i, key in enumerate(client_keys):
        staker = accounts[FIRST_CLIENT_ACCOUNT + i]
        transact(w3, staker, registry.functions.stake(key), value=params.stake_amount)
        save_account(l1dir / f"client{i}.key", staker.key.hex())
    record.write_text(
        json.dumps({"addresses": addresses, "start_block": start_block}, indent=1) + "\n"
    )
    log.info("dev L1 deployed", rollup=addresses["MPSRollup"], clients_staked=len(client_keys))
    return DevL1(anvil, addresses, start_block, key_files)
