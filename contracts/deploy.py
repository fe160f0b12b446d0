"""Deploy and wire the L1 contracts of one MPS chain (``mps-node deploy``, the dev network, tests).

Deployment signs raw transactions like any other call (:mod:`contracts.transact`); what lives here
is only what a deployment knows: the constructor arguments and the order and wiring of the
contracts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract.contract import ContractConstructor
from web3.types import TxReceipt

from . import artifacts
from .reverts import ContractRevert
from .transact import Sendable, contract, send, wait

ETHER = 10**18

#: Deployment order; the addresses come back under these names.
CONTRACTS = (
    "StakingRegistry",
    "MPSRollup",
    "SlashingManager",
    "SlashTreasury",
    "RewardManager",
    "RewardTreasury",
    "ResolverCommittee",
    "ForcedInbox",
)


@dataclass
class DeployParams:
    """Constructor arguments of the L1 contracts. Defaults suit a dev network; amounts in wei,
    windows in L1 blocks (anvil's automine makes one block per transaction,
    ``Anvil(block_time=1)`` one a second).

    A production deployment would rather use a challenge window of 1 to 7 days and a challenge
    bond that deters frivolous challenges. There is no unbonding period to choose: a stake is paid
    back only on proof of the rollup's release under a finalized root (StakingRegistry), so its
    delay is the real path from the client's last epoch to finality, whatever the windows.
    """

    stake_amount: int = 1 * ETHER
    """Exact stake per client key (StakingRegistry.STAKE_AMOUNT)."""
    base_fee: int = ETHER // 100
    """Flat fee per task, to the RewardTreasury (RewardManager.BASE_FEE)."""
    fee_per_epoch: int = ETHER // 1000
    """Fee per trained epoch, taken from the task deposit (RewardManager.FEE_PER_EPOCH)."""
    data_fee_per_mib: int = 0
    """Wei per MiB of a task's data, billed at settlement (RewardManager.DATA_FEE_PER_MIB). It
    must equal the rollup genesis spec's ``data_fee_per_mib`` (``deploy`` passes the node's)."""
    protocol_share_bps: int = 500
    """Part of the fee kept by the protocol, in basis points (5 %)."""
    challenge_blocks: int = 10
    """Fraud-challenge window of a batch (MPSRollup.CHALLENGE_BLOCKS)."""
    challenge_bond: int = ETHER // 10
    """Exact bond per fraud challenge (MPSRollup.CHALLENGE_BOND)."""
    da_challenge_blocks: int = 3
    """Data-challenge window of a batch, from its commit (MPSRollup.DA_CHALLENGE_BLOCKS)."""
    da_resolve_blocks: int = 3
    """Blocks to publish a challenged batch's data (MPSRollup.DA_RESOLVE_BLOCKS); the two data
    windows must end before the fraud window does."""
    da_bond: int = ETHER // 100
    """Exact bond per data challenge (MPSRollup.DA_BOND)."""

    sequencing_window: int = 32
    """L1 blocks within which a batch must carry every L1 event, forced transactions included
    (ForcedInbox.SEQUENCING_WINDOW; the verifier proves a batch that does not fraud). It must
    leave the sequencer time to see an event (``l1_confirmations``) and post a batch."""
    max_forced_tx_bytes: int = 4 * 1024 * 1024
    """Largest transaction the inbox accepts (ForcedInbox.MAX_TX_BYTES): the rollup's
    ``max_tx_size``."""

    def rollup_windows(self) -> tuple[int, int, int, int, int]:
        """MPSRollup's windows and bonds, in its constructor's order."""
        return (
            self.challenge_blocks, self.challenge_bond,
            self.da_challenge_blocks, self.da_resolve_blocks, self.da_bond,
        )  # fmt: skip

    genesis_state_root: bytes = bytes(32)
    """The rollup genesis block's state root: the node passes its own."""
    sequencer: str | None = None
    """Address allowed to commit batches; None: the deploying account."""
    admin: str | None = None
    """Admin of every contract (the sequencer's replacement, the reward treasury); None: the
    deploying account."""
    resolvers: tuple[str, ...] = ()
    """Who decides fraud challenges (the ResolverCommittee's members); empty: the admin alone."""
    resolver_threshold: int = 1
    """Votes an outcome needs: more than half the resolvers."""


def deploy(w3: Web3, account: LocalAccount, name: str, *args: Any, nonce: int | None = None) -> str:
    """Deploy artifact ``name`` with constructor ``args``; return its checksummed address."""
    return _receipt_address(
        wait(w3, account, send(w3, account, _constructor(w3, name, args), nonce=nonce))
    )


def _constructor(w3: Web3, name: str, args: Sequence[Any]) -> ContractConstructor:
    abi, bytecode = artifacts.load(name)
    return w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args)


def _receipt_address(receipt: TxReceipt) -> str:
    address = receipt["contractAddress"]
    if address is None:
        raise ContractRevert("", (), b"", "deployment produced no contract")
    return to_checksum_address(address)


def deploy_all(
    w3: Web3, account: LocalAccount, params: DeployParams | None = None
) -> dict[str, str]:
    """Deploy and wire every L1 contract; return ``{name: address}`` for :data:`CONTRACTS`.

    The registry and the rollup are deployed with the deploying account as admin so that they can
    be wired (the SlashingManager, the SlashTreasury, the rollup; the ResolverCommittee), then
    handed to ``params.admin`` if that is another address. Transactions go in three waves
    (independent ones share a block when blocks are timed).
    """
    p = params or DeployParams()
    me = account.address
    admin = to_checksum_address(p.admin) if p.admin else me
    sequencer = to_checksum_address(p.sequencer) if p.sequencer else me
    if len(p.genesis_state_root) != 32:
        raise ValueError("genesis_state_root must be 32 bytes")

    def new(name: str, *args: Any) -> ContractConstructor:
        return _constructor(w3, name, args)

    root = p.genesis_state_root
    registry, rollup, slash_treasury, reward_treasury, inbox = _deployed(
        w3,
        account,
        new("StakingRegistry", p.stake_amount, me),
        new("MPSRollup", sequencer, *p.rollup_windows(), root, me),
        new("SlashTreasury"),
        new("RewardTreasury", admin),
        new("ForcedInbox", p.max_forced_tx_bytes, p.sequencing_window),
    )
    fees = (p.base_fee, p.fee_per_epoch, p.data_fee_per_mib, p.protocol_share_bps)
    resolvers = [to_checksum_address(r) for r in p.resolvers] or [admin]
    slashing, rewards, committee = _deployed(
        w3,
        account,
        new("SlashingManager", registry, rollup),
        new("RewardManager", registry, rollup, reward_treasury, *fees, admin),
        new("ResolverCommittee", rollup, resolvers, p.resolver_threshold),
    )
    reg = contract(w3, "StakingRegistry", registry).functions
    ro = contract(w3, "MPSRollup", rollup).functions
    handover = [reg.transferAdmin(admin), ro.transferAdmin(admin)] if admin != me else []
    wiring = [
        reg.setSlasher(slashing),
        reg.setSlashTreasury(slash_treasury),
        reg.setRollup(rollup),
        ro.setResolver(committee),
    ]
    _wave(w3, account, [*wiring, *handover])
    addresses = (
        registry, rollup, slashing, slash_treasury, rewards, reward_treasury, committee, inbox,
    )  # fmt: skip
    return dict(zip(CONTRACTS, addresses, strict=True))


def _wave(w3: Web3, account: LocalAccount, calls: Sequence[Sendable]) -> list[TxReceipt]:
    """Send every call before waiting for any (consecutive nonces), so that they can share a
    block."""
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    hashes = [send(w3, account, fn, 0, nonce + k) for k, fn in enumerate(calls)]
    return [wait(w3, account, h) for h in hashes]


def _deployed(w3: Web3, account: LocalAccount, *constructors: ContractConstructor) -> list[str]:
    """The addresses of ``constructors``, deployed in one wave."""
    return [_receipt_address(r) for r in _wave(w3, account, constructors)]
