"""Fixtures for the L1 contract tests: the contracts deployed on anvil and on eth-tester (py-evm).

``l1`` is parametrized over both backends (import ``l1_fixture`` and ``l1_deployed_fixture``
into a test module to use it). Each backend is started and deployed once per module;
every test runs inside an EVM snapshot that is reverted afterwards, so tests never see each
other's state (and need no redeployment). Also here: an in-memory rollup state tree
(:class:`StateTree`, the project's own ``stf.smt``) and the byte layouts of the leaves the
contracts check, written from the spec rather than imported from the STF so that the two are
checked against each other.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from contracts import deploy, transact
from contracts.anvil import Anvil, AnvilError, find_binary
from contracts.deploy import DeployParams
from contracts.reverts import ContractRevert
from stf.hashing import ZERO_HASH
from stf.smt import NODE_PREFIX, SparseMerkleTree, value_hash, verify_proof

BACKENDS = ["anvil", "eth-tester"]
ETHER = 10**18
GENESIS_ROOT = hashlib.sha256(b"mps genesis").digest()
NO_DEADLINE = 2**64 - 1  # commitBatch's l1Deadline where a test does not test it

# accounts[ADMIN] deploys and is admin and sequencer; VERIFIER challenges; the rest are users
ADMIN, VERIFIER = 0, 1
USERS = range(2, 10)

PARAMS = DeployParams(
    stake_amount=1 * ETHER,
    base_fee=ETHER // 100,
    fee_per_epoch=ETHER // 1000,
    data_fee_per_mib=ETHER // 10_000,
    protocol_share_bps=500,
    challenge_blocks=12,
    challenge_bond=ETHER // 10,
    da_challenge_blocks=4,
    da_resolve_blocks=6,
    genesis_state_root=GENESIS_ROOT,
)


# the L1 passes a stake's binding on without checking it (the STF does): any 64 bytes do here
BINDING = bytes(64)


# -- leaves (the byte layouts of the L1 spec) ------------------------------------------------------
def slash_leaf(client: bytes, task: bytes, epoch: int, reason: int) -> tuple[bytes, bytes]:
    return b"slash/" + client + task, struct.pack(">II", epoch, reason)


def _address(a: bytes | str) -> bytes:
    return a if isinstance(a, bytes) else bytes.fromhex(a.removeprefix("0x"))


def settle_leaf(
    task: bytes,
    status: int,
    epochs: int,
    total_clean: int,
    funder: bytes | str,
    data_bytes: int = 0,
) -> tuple[bytes, bytes]:
    value = struct.pack(">BIQ20sQ", status, epochs, total_clean, _address(funder), data_bytes)
    return b"settle/" + task, value


def funding_leaf(
    task: bytes, funder: bytes | str, deposit: int, bind_by: int, bound: bool = False
) -> tuple[bytes, bytes]:
    value = deposit.to_bytes(32, "big") + struct.pack(">QB", bind_by, bound)
    return b"funding/" + task + _address(funder), value


def reward_leaf(task: bytes, client: bytes, accepted: int, flagged: int) -> tuple[bytes, bytes]:
    return b"reward/" + task + client, struct.pack(">IB", accepted, flagged)


def release_leaf(client: bytes, unbond_block: int) -> tuple[bytes, bytes]:
    return b"release/" + client, struct.pack(">Q", unbond_block)


def key32(label: str) -> bytes:
    """A deterministic 32-byte client key or task id."""
    return hashlib.sha256(label.encode()).digest()


class StateTree:
    """An in-memory rollup state tree (stf.smt) holding raw values, for building real proofs."""

    def __init__(self, leaves: dict[bytes, bytes] | None = None, filler: int = 64) -> None:
        self.nodes: dict[bytes, bytes] = {}
        self.values: dict[bytes, bytes] = {}
        self.tree = SparseMerkleTree(self)
        self.root = ZERO_HASH
        # unrelated keys, so that proofs have a realistic depth (about log2 of the key count)
        self.put({f"filler/{i}".encode(): i.to_bytes(4, "big") for i in range(filler)})
        if leaves:
            self.put(leaves)

    def get(self, key: bytes) -> bytes | None:  # the NodeReader protocol
        return self.nodes.get(key)

    def put(self, items: dict[bytes, bytes]) -> bytes:
        self.root = self.tree.update(self.root, {k: value_hash(v) for k, v in items.items()})
        self.nodes.update({NODE_PREFIX + h: pre for h, pre in self.tree.new_nodes.items()})
        self.tree.new_nodes.clear()
        self.values.update(items)
        return self.root

    def siblings(self, key: bytes) -> list[bytes]:
        """The inclusion proof of ``key`` (root first), checked with stf.smt first."""
        proof = self.tree.prove(self.root, key)
        assert verify_proof(self.root, key, self.values[key], proof)
        return list(proof.siblings)


# -- the deployed system ---------------------------------------------------------------------------
@dataclass
class L1:
    backend: str
    w3: Web3
    accounts: list[LocalAccount]
    addresses: dict[str, str]
    params: DeployParams
    _mine: Callable[[int], None]
    _snapshot: Callable[[], Any]
    _revert: Callable[[Any], None]
    _contracts: dict[str, Contract] = field(default_factory=dict)

    @property
    def admin(self) -> LocalAccount:
        return self.accounts[ADMIN]

    @property
    def verifier(self) -> LocalAccount:
        return self.accounts[VERIFIER]

    def user(self, i: int) -> LocalAccount:
        return self.accounts[USERS[i]]

    def c(self, name: str) -> Contract:
        if name not in self._contracts:
            self._contracts[name] = transact.contract(self.w3, name, self.addresses[name])
        return self._contracts[name]

    @property
    def registry(self) -> Contract:
        return self.c("StakingRegistry")

    @property
    def rollup(self) -> Contract:
        return self.c("MPSRollup")

    @property
    def slashing(self) -> Contract:
        return self.c("SlashingManager")

    @property
    def rewards(self) -> Contract:
        return self.c("RewardManager")

    # -- chain --------------------------------------------------------------------------------
    def mine(self, n: int) -> None:
        self._mine(n)

    def block(self) -> int:
        """The latest block; a transaction sent now executes in ``block() + 1``."""
        return int(self.w3.eth.block_number)

    def balance(self, address: str) -> int:
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def tx(self, account: LocalAccount, fn: ContractFunction, value: int = 0) -> TxReceipt:
        return transact.transact(self.w3, account, fn, value)

    def call(self, fn: ContractFunction) -> Any:
        return transact.call(fn)

    def deploy(self, name: str, *args: Any) -> Contract:
        address = deploy.deploy(self.w3, self.admin, name, *args)
        return transact.contract(self.w3, name, address)

    @staticmethod
    def cost(receipt: TxReceipt) -> int:
        """Wei the sender paid for gas."""
        return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])

    def events(self, receipt: TxReceipt, name: str, event: str) -> list[dict[str, Any]]:
        """The decoded arguments of ``event`` logs that contract ``name`` emitted in ``receipt``."""
        address = self.addresses.get(name)
        ev = self.c(name).events[event]()
        out = []
        for log in receipt["logs"]:
            if address is not None and log["address"] != address:
                continue
            try:
                out.append(dict(ev.process_log(log)["args"]))
            except Exception:  # another event of the same contract
                continue
        return out

    # -- rollup helpers -----------------------------------------------------------------------
    def commit(self, root: bytes, blocks: int = 1) -> int:
        """Commit the next batch with state root ``root``; return its index."""
        index = int(self.call(self.rollup.functions.nextBatchIndex()))
        prev = self.call(self.rollup.functions.lastStateRoot())
        last = int(self.call(self.rollup.functions.lastCommittedBlock()))
        data_hash = hashlib.sha256(root + index.to_bytes(8, "big")).digest()
        fn = self.rollup.functions.commitBatch(
            index, prev, root, data_hash, last + blocks, NO_DEADLINE
        )
        self.tx(self.admin, fn)
        return index

    def resolve(self, batch: int, fraud: bool) -> TxReceipt:
        """The resolver committee (the admin alone, 1 of 1, in these fixtures) decides."""
        return self.tx(self.admin, self.c("ResolverCommittee").functions.vote(batch, fraud))

    def finalize(self) -> None:
        """Mine past the challenge window of every batch committed so far."""
        self.mine(self.params.challenge_blocks)

    def commit_final(self, tree: StateTree) -> int:
        index = self.commit(tree.root)
        self.finalize()
        return index

    def stake(self, account: LocalAccount, client: bytes) -> TxReceipt:
        fn = self.registry.functions.stake(client, BINDING)
        return self.tx(account, fn, self.params.stake_amount)

    def release(self, client: bytes, unbond_block: int | None = None) -> tuple[int, list[bytes]]:
        """Commit and finalize a root holding the rollup's release of ``client``'s unbonding
        (of its current ``unbondBlockOf`` unless told another block); ``(batch, siblings)``."""
        if unbond_block is None:
            unbond_block = int(self.call(self.registry.functions.unbondBlockOf(client)))
        key, value = release_leaf(client, unbond_block)
        tree = StateTree({key: value})
        return self.commit_final(tree), tree.siblings(key)

    def unbond_and_withdraw(self, account: LocalAccount, client: bytes) -> TxReceipt:
        """``unregister``, the rollup's release, and ``withdrawStake`` with its proof."""
        self.tx(account, self.registry.functions.unregister())
        return self.tx(account, self.registry.functions.withdrawStake(*self.release(client)))


def reverts(error: str) -> Any:
    """``with reverts("WrongStakeAmount") as exc:``: the call must revert with that error."""
    return pytest.raises(ContractRevert, match=rf"reverted: {error}\(")


def _start(backend: str) -> tuple[L1, Callable[[], None]]:
    if backend == "anvil":
        try:
            find_binary()
        except AnvilError as exc:
            pytest.skip(str(exc))
        node = Anvil(accounts=10).start()
        w3 = node.w3()
        accounts = list(node.accounts)
        mine, snap, rev, stop = node.mine, node.snapshot, node.revert, node.stop
    else:
        from web3 import EthereumTesterProvider

        provider = EthereumTesterProvider()
        tester = provider.ethereum_tester
        w3 = Web3(provider)
        # eth-tester's own funded accounts (1,000,000 ether each)
        accounts = [Account.from_key(k) for k in tester.backend.account_keys[:10]]
        mine, snap, rev = tester.mine_blocks, tester.take_snapshot, tester.revert_to_snapshot

        def stop() -> None:
            return None

    addresses = deploy.deploy_all(w3, accounts[ADMIN], PARAMS)
    chain = L1(backend, w3, accounts, addresses, PARAMS, mine, snap, rev)
    return chain, stop


@pytest.fixture(name="l1_deployed", scope="module", params=BACKENDS)
def l1_deployed_fixture(request: pytest.FixtureRequest) -> Iterator[L1]:
    chain, stop = _start(request.param)
    try:
        yield chain
    finally:
        stop()


@pytest.fixture(name="l1")
def l1_fixture(l1_deployed: L1) -> Iterator[L1]:
    """The deployed contracts, reset to their freshly deployed state after the test."""
    snapshot = l1_deployed._snapshot()
    try:
        yield l1_deployed
    finally:
        l1_deployed._revert(snapshot)
