"""A node wired to a real anvil L1 with freshly deployed contracts (for the L1 tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from rpc_fixtures import CHAIN_ID, NodeHarness, make_config, start_node
from web3 import Web3
from web3.contract import Contract

from client_sdk.keys import Keypair
from client_sdk.tx import put_record
from contracts.anvil import Anvil
from contracts.deploy import DeployParams, deploy_all
from contracts.transact import contract, transact
from node.l1.chain import save_account
from node.sequencer import chain_config
from stf.genesis import genesis_block
from stf.stakes import binding_message

STAKE = 10**18
BASE_FEE = 10**15
FEE_PER_EPOCH = 10**17
CHALLENGE_BLOCKS = 12
DA_CHALLENGE_BLOCKS, DA_RESOLVE_BLOCKS = 3, 6  # the data windows end inside the fraud one
DA_BOND = 10**16
CHALLENGE_BOND = 10**17
FUNDING_WINDOW = 40  # blocks a funding waits for its create_task (a chain spec value)
ADMIN, SEQUENCER, AGGREGATOR, VERIFIER = 0, 1, 2, 3
FIRST_CLIENT = 4


@dataclass
class L1Net:
    anvil: Anvil
    w3: Web3
    accounts: list[LocalAccount]
    addresses: dict[str, str]
    h: NodeHarness
    datadir: Path
    stake_amount: int = STAKE

    def c(self, name: str) -> Contract:
        return contract(self.w3, name, self.addresses[name])

    def tx(self, who: int | LocalAccount, fn: Any, value: int = 0) -> Any:
        acct = self.accounts[who] if isinstance(who, int) else who
        return transact(self.w3, acct, fn, value=value)

    def stake(self, client: Keypair, account: int) -> None:
        staker = bytes.fromhex(self.accounts[account].address[2:])
        binding = client.sign(binding_message(CHAIN_ID, staker))
        fn = self.c("StakingRegistry").functions.stake(client.public_key, binding)
        self.tx(account, fn, self.stake_amount)

    async def follow(self) -> None:
        """Let the L1 events reach the rollup: confirm, read, seal."""
        self.anvil.mine(2)
        self.h.node.l1.follower.poll_once()
        await self.h.node.sequencer.produce_block()

    def post_through(self, height: int) -> None:
        """Post batches until one covers rollup block ``height`` (a batch holds a few dozen
        blocks, and the head may move on meanwhile), then mine past its challenge window."""
        rollup = self.c("MPSRollup").functions
        for _ in range(100):
            if rollup.lastCommittedBlock().call() >= height:
                break
            self.post_until_idle()
        else:
            raise AssertionError(f"no batch reached rollup block {height}")
        self.anvil.mine(CHALLENGE_BLOCKS + 1)

    def post_until_idle(self) -> list[str]:
        actions = []
        for _ in range(10):
            a = self.h.node.l1.poster.step()
            actions.append(a)
            if a == "idle":
                break
        return actions


async def send_filler(h: NodeHarness, data: bytes) -> None:
    """``data`` as 4 KiB records from a fresh key: bulk for a batch on a chain that funds its
    tasks, which takes no bare blob (stf.fl.uploads)."""
    key = Keypair.generate()
    for i in range(0, len(data), 4096):
        await h.send_ok(put_record(key, CHAIN_ID, i // 4096, "n", data[i : i + 4096]))


def deploy_for(
    w3: Web3, accounts: list[LocalAccount], datadir: Path, stake_amount: int = STAKE
) -> dict[str, str]:
    cfg = make_config(datadir, funding_window_blocks=FUNDING_WINDOW)
    chain = chain_config(cfg, Keypair.load(cfg.key_path).signing_key)
    root = genesis_block({}, chain, cfg.genesis())[0].header.state_root
    params = DeployParams(
        stake_amount=stake_amount,
        base_fee=BASE_FEE,
        fee_per_epoch=FEE_PER_EPOCH,
        protocol_share_bps=1000,
        challenge_blocks=CHALLENGE_BLOCKS,
        challenge_bond=CHALLENGE_BOND,
        da_challenge_blocks=DA_CHALLENGE_BLOCKS,
        da_resolve_blocks=DA_RESOLVE_BLOCKS,
        da_bond=DA_BOND,
        genesis_state_root=root,
        sequencer=accounts[SEQUENCER].address,
        admin=accounts[ADMIN].address,
    )
    addresses = deploy_all(w3, accounts[ADMIN], params)
    for i, role in ((SEQUENCER, "sequencer"), (AGGREGATOR, "aggregator")):
        save_account(datadir / "l1" / f"{role}.key", accounts[i].key.hex())
    return addresses


def l1_settings(anvil: Anvil, addresses: dict[str, str], datadir: Path) -> dict[str, Any]:
    return {
        "l1_rpc": anvil.url,
        "l1_chain_id": int(anvil.w3().eth.chain_id),
        "l1_key_file": datadir / "l1" / "sequencer.key",
        "l1_aggregator_key_file": datadir / "l1" / "aggregator.key",
        "l1_staking_registry": addresses["StakingRegistry"],
        "l1_rollup": addresses["MPSRollup"],
        "l1_slashing_manager": addresses["SlashingManager"],
        "l1_reward_manager": addresses["RewardManager"],
        "l1_forced_inbox": addresses["ForcedInbox"],
        "funding_window_blocks": FUNDING_WINDOW,
        "l1_confirmations": 1,
        "batch_blocks": 1,
        "batch_seconds": 0.0,
        "empty_blocks": True,
    }


@asynccontextmanager
async def l1_net(
    tmp_path: Path,
    produce_blocks: bool = False,
    stake_amount: int = STAKE,
    node: dict[str, Any] | None = None,
    **anvil_opts: Any,
) -> AsyncIterator[L1Net]:
    """anvil + contracts + a node; by default it runs neither blocks nor L1 services on its own
    (tests step them); with ``produce_blocks`` it is the daemon. ``node``: config settings
    over the defaults."""
    with Anvil(accounts=20, **anvil_opts) as anvil:
        w3 = anvil.w3()
        accounts = list(anvil.accounts)
        datadir = tmp_path / "node"
        addresses = deploy_for(w3, accounts, datadir, stake_amount)
        settings = l1_settings(anvil, addresses, datadir)
        if produce_blocks:
            settings.update(l1_poll_interval=0.1, block_time=0.1, empty_blocks=False)
        settings.update(node or {})
        async with start_node(datadir, produce_blocks, **settings) as h:
            yield L1Net(anvil, w3, accounts, addresses, h, datadir, stake_amount)


@asynccontextmanager
async def following(net: L1Net) -> AsyncIterator[None]:
    """Mine and follow the L1 in the background, as a running node would."""

    async def loop() -> None:
        while True:
            net.anvil.mine(1)
            net.h.node.l1.follower.poll_once()
            await asyncio.sleep(0.2)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
