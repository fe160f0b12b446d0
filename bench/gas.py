#!/usr/bin/env python
"""Gas used by the L1 contracts' transactions, measured on anvil.

Usage: ``python bench/gas.py [--quick]`` (``--quick``: state trees of 1k and 10k keys instead of
1k, 100k and 1M).

Deploys the contracts on a fresh anvil (``contracts.anvil.Anvil``) and runs each operation as a
real signed transaction, printing a markdown table of ``gasUsed`` (the whole transaction: the
21,000 base, calldata, execution and refunds). Slashing, settling, claiming and reclaiming prove a
leaf of a real rollup state tree (``stf.smt``) holding as many other keys as the rollup would, so the proof
has the depth it would have (about log2 of the key count): the rows show how the cost grows with
it. ``commitBatch`` is measured for batches covering 1 and 1,000 rollup blocks to show that its
cost does not depend on the batch size (the batch's data stays off-chain; only its hash is kept).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account.signers.local import LocalAccount
from nacl.signing import SigningKey
from web3.contract.contract import ContractFunction, ContractFunctions

from contracts.anvil import Anvil
from contracts.deploy import ETHER, DeployParams, deploy_all
from contracts.transact import contract, transact
from node.l1.batch_data import batch_commitment, split_chunks
from stf import encoding, state_keys
from stf.fl.settlement import encode_release, encode_reward_share, encode_slash_evidence
from stf.hashing import ZERO_HASH
from stf.ids import ClientKey, TaskId
from stf.smt import NODE_PREFIX, SparseMerkleTree, value_hash
from stf.tx import make_tx
from stf.txtypes import blob
from stf.txtypes.blob import PutBlob
from stf.txtypes.fl import CommitUpdate


class Tree:
    """An in-memory rollup state tree with ``n`` filler keys plus the given leaves."""

    def __init__(self, n: int, leaves: dict[bytes, bytes]) -> None:
        self.nodes: dict[bytes, bytes] = {}
        self.tree = SparseMerkleTree(self)
        items: dict[bytes, bytes | None] = {
            f"filler/{i}".encode(): value_hash(i.to_bytes(8, "big")) for i in range(n)
        }
        items.update({k: value_hash(v) for k, v in leaves.items()})
        self.root = self.tree.update(ZERO_HASH, items)
        self.nodes.update({NODE_PREFIX + h: p for h, p in self.tree.new_nodes.items()})

    def get(self, key: bytes) -> bytes | None:
        return self.nodes.get(key)

    def siblings(self, key: bytes) -> list[bytes]:
        return list(self.tree.prove(self.root, key).siblings)


def key32(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def address20(account: LocalAccount) -> bytes:
    return bytes.fromhex(account.address.removeprefix("0x"))


# The RewardManager's leaves, written from the L1 spec (docs/contracts.md): what the contract
# checks, whatever the STF's encoders look like
def settle_leaf(
    task: bytes, status: int, epochs: int, total: int, funder: bytes, data_bytes: int = 0
) -> tuple[bytes, bytes]:
    value = (
        bytes([status])
        + epochs.to_bytes(4, "big")
        + total.to_bytes(8, "big")
        + funder
        + data_bytes.to_bytes(8, "big")
    )
    return b"settle/" + task, value


def funding_leaf(
    task: bytes, funder: bytes, deposit: int, bind_by: int, bound: int
) -> tuple[bytes, bytes]:
    value = deposit.to_bytes(32, "big") + bind_by.to_bytes(8, "big") + bytes([bound])
    return b"funding/" + task + funder, value


Row = tuple[str, int, str]  # (label, gasUsed, note)


class Bench:
    """The deployed contracts on one anvil, and the rows of gas measured on them so far.

    It also tracks the rollup's batch chain (root, index, last block), because every
    ``commitBatch`` must extend the previous one and the proof rows commit their own trees.
    """

    def __init__(self, node: Anvil, params: DeployParams) -> None:
        self.node = node
        self.params = params
        self.w3 = node.w3()
        self.admin, self.verifier, self.requester = node.accounts[:3]
        self.stakers = node.accounts[3:-1]
        self.squatter = node.accounts[-1]  # funds every task id first (see fund_tasks)
        a = deploy_all(self.w3, self.admin, params)
        self.registry = self.functions("StakingRegistry", a)
        self.rollup = self.functions("MPSRollup", a)
        self.slashing = self.functions("SlashingManager", a)
        self.rewards = self.functions("RewardManager", a)
        self.committee = self.functions("ResolverCommittee", a)
        self.inbox = self.functions("ForcedInbox", a)
        self.rows: list[Row] = []
        self.last = 0
        self.root = params.genesis_state_root
        self.index = 0

    def functions(self, name: str, addresses: dict[str, str]) -> ContractFunctions:
        return contract(self.w3, name, addresses[name]).functions

    def send(self, account: LocalAccount, fn: ContractFunction, value: int = 0) -> None:
        """A set-up transaction: sent like the measured ones, but not a row of the table."""
        transact(self.w3, account, fn, value)

    def gas(
        self,
        label: str,
        account: LocalAccount,
        fn: ContractFunction,
        value: int = 0,
        note: str = "",
    ) -> int:
        used = int(transact(self.w3, account, fn, value)["gasUsed"])
        self.rows.append((label, used, note))
        return used

    def commit(
        self,
        root: bytes,
        blocks: int,
        label: str | None = None,
        note: str = "",
        data_hash: bytes | None = None,
    ) -> None:
        """Commits the next batch on top of the last one; measured only when given a label."""
        data_hash = data_hash or hashlib.sha256(root).digest()
        fn = self.rollup.commitBatch(
            self.index, self.root, root, data_hash, self.last + blocks, 2**64 - 1
        )
        if label:
            self.gas(label, self.admin, fn, note=note)
        else:
            self.send(self.admin, fn)
        self.last += blocks
        self.root, self.index = root, self.index + 1


def parse_sizes() -> list[int]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="trees of 1k and 10k keys")
    args = parser.parse_args()
    return [1_000, 10_000] if args.quick else [1_000, 100_000, 1_000_000]


# a stake's binding is an ed25519 signature the L1 passes on unchecked (the rollup checks it):
# its cost is its 64 bytes of calldata and log data, whatever they hold
BINDING = bytes(range(64))


def bench_staking(b: Bench) -> list[bytes]:
    """Every staker stays staked but the first, so that each tree size has a victim to slash."""
    keys = [key32(f"client {i}") for i in range(len(b.stakers))]
    stake = b.params.stake_amount
    b.gas("StakingRegistry.stake", b.stakers[0], b.registry.stake(keys[0], BINDING), stake)
    for s, k in zip(b.stakers[1:], keys[1:], strict=True):
        b.send(s, b.registry.stake(k, BINDING), stake)
    b.gas("StakingRegistry.unregister", b.stakers[0], b.registry.unregister())
    return keys


def bench_batches(b: Bench) -> None:
    """The 1- and 1,000-block batches side by side show that the batch size costs nothing."""
    b.commit(key32("r0"), 1, "MPSRollup.commitBatch (first batch)", "nextBatchIndex 0 -> 1")
    b.commit(key32("r1"), 1, "MPSRollup.commitBatch (1 rollup block)")
    b.commit(
        key32("r2"),
        1000,
        "MPSRollup.commitBatch (1,000 rollup blocks)",
        "calldata of the larger lastBlock: +12",
    )
    bond = b.params.challenge_bond
    b.gas("MPSRollup.challenge", b.verifier, b.rollup.challenge(2), bond)
    b.gas(
        "ResolverCommittee.vote (1 of 1: resolves, no fraud)",
        b.admin,
        b.committee.vote(2, False),
    )
    b.gas("MPSRollup.withdrawBond", b.admin, b.rollup.withdrawBond())


def answer_data_challenge(b: Bench, kib: int, rows: bool) -> int:
    """Commit a batch of ``kib`` KiB of data, challenge its data and publish every chunk; the
    gas of the publications (with ``rows``: the challenge and the first and last chunk too)."""
    data = bytes(range(256)) * (kib * 4)  # incompressible enough: calldata prices bytes
    data_hash, hashes = batch_commitment(data)
    chunks = split_chunks(data)
    b.commit(key32(f"data {kib}"), 1, data_hash=data_hash)
    index = b.index - 1
    challenge = b.rollup.challengeData(index)
    if rows:
        b.gas("MPSRollup.challengeData", b.verifier, challenge, b.params.da_bond)
    else:
        b.send(b.verifier, challenge, b.params.da_bond)
    total = 0
    for i, chunk in enumerate(chunks):
        fn = b.rollup.publishChunk(index, hashes, i, chunk)
        if rows and i == 0:
            label, note = "MPSRollup.publishChunk (64 KiB)", f"1 of {len(chunks)}"
            total += b.gas(label, b.admin, fn, note=note)
        elif rows and i == len(chunks) - 1:
            label, note = "MPSRollup.publishChunk (64 KiB, last)", "resolves, bond paid"
            total += b.gas(label, b.admin, fn, note=note)
        else:
            total += int(transact(b.w3, b.admin, fn)["gasUsed"])
    return total


def bench_data(b: Bench) -> None:
    """Data challenges answered chunk by chunk, for batches of several sizes, and one that
    expires: what withheld data costs its challenger, and what publishing it costs."""
    for kib in (64, 256, 1024):
        total = answer_data_challenge(b, kib, rows=kib == 1024)
        chunks = -(-kib // 64)
        b.rows.append(
            (
                f"MPSRollup.publishChunk x {chunks}",
                total,
                f"a batch of {kib} KiB answered: {total / (kib * 1024):.1f} gas per byte",
            )
        )
    before = (b.index, b.root, b.last)
    b.commit(key32("withheld"), 1)
    b.send(b.verifier, b.rollup.challengeData(before[0]), b.params.da_bond)
    b.node.mine(b.params.da_resolve_blocks)
    b.gas("MPSRollup.expireData", b.verifier, b.rollup.expireData(before[0]), note="voids 1")
    b.index, b.root, b.last = before  # the withheld batch is gone: its index is reused


def bench_forced(b: Bench) -> None:
    """Forcing a signed transaction past the sequencer: a commit_update (the reveal a censor
    would hold back is a commitment's twin), and put_blob updates of 16 and 128 KiB."""
    key = SigningKey(bytes(32))
    commit = make_tx(key, 1, CommitUpdate.TYPE_ID, 0, encoding.encode([bytes(32), 1, bytes(32)]))
    b.gas(
        "ForcedInbox.forceTx (commit_update)",
        b.stakers[0],
        b.inbox.forceTx(commit.encode()),
        note=f"{len(commit.encode())} bytes",
    )
    for kib in (16, 128):
        raw = make_tx(key, 1, PutBlob.TYPE_ID, 1, blob.payload(bytes(range(256)) * (4 * kib)))
        used = b.gas(
            f"ForcedInbox.forceTx (put_blob, {kib} KiB)",
            b.stakers[0],
            b.inbox.forceTx(raw.encode()),
        )
        b.rows[-1] = (b.rows[-1][0], used, f"{used / len(raw.encode()):.1f} gas per byte")


DEPOSIT = ETHER // 10
SQUAT = 1  # the squatter's deposit: it funds every task id first, with 1 wei


def fund_tasks(b: Bench, sizes: list[int]) -> list[bytes]:
    """One task per tree size: a task settles once, and each size needs its own settlement.
    A squatter funds each id first (its fundings are reclaimed in ``bench_proofs``)."""
    fee = b.params.base_fee
    task_ids = [key32(f"task {n}") for n in sizes]
    for funder, deposit, note in (
        (b.squatter, SQUAT, "base fee to the treasury"),
        (b.requester, DEPOSIT, "a second funder of the same id"),
    ):
        b.gas("RewardManager.fundTask", funder, b.rewards.fundTask(task_ids[0], deposit),
              fee + deposit, note)  # fmt: skip
        for task in task_ids[1:]:
            b.send(funder, b.rewards.fundTask(task, deposit), fee + deposit)
    return task_ids


def bench_proofs(
    b: Bench, n: int, task: bytes, victim: bytes, client: bytes, leaver: bytes | None = None
) -> None:
    """Slash, settle, claim and reclaim (and, given the unbonding ``leaver``, the withdrawal of
    its stake) against a committed tree of ``n`` keys, past its challenge window. The
    requester's funding is the task's (bound, settled); the squatter's lapsed unbound at
    ``bindBy`` = the batch's last block."""
    slash_key = state_keys.slash_evidence(ClientKey(victim), TaskId(task))
    reward_key = state_keys.reward_share(TaskId(task), ClientKey(client))
    settle_key, settle_value = settle_leaf(task, 2, 10, 20, address20(b.requester))
    bind_by = b.last + 1  # the batch below covers one rollup block
    squat_key, squat_value = funding_leaf(task, address20(b.squatter), SQUAT, bind_by, 0)
    bound_key, bound_value = funding_leaf(task, address20(b.requester), DEPOSIT, bind_by, 1)
    leaves = {
        slash_key: encode_slash_evidence(3, 1),
        settle_key: settle_value,
        reward_key: encode_reward_share(10, False),
        squat_key: squat_value,
        bound_key: bound_value,
    }
    if leaver is not None:
        unbond_block = int(b.registry.unbondBlockOf(leaver).call())
        leaves[state_keys.release(ClientKey(leaver))] = encode_release(unbond_block)
    tree = Tree(n, leaves)
    b.commit(tree.root, 1)
    batch = b.index - 1
    b.node.mine(b.params.challenge_blocks)
    sib = tree.siblings(slash_key)
    depth = f"{n:,} keys, proof depth {len(sib)}"
    b.gas(
        "SlashingManager.slash", b.admin, b.slashing.slash(batch, victim, task, 3, 1, sib), 0, depth
    )
    sib = tree.siblings(settle_key)
    b.gas(
        "RewardManager.settle",
        b.admin,
        b.rewards.settle(batch, task, b.requester.address, 2, 10, 20, 0, sib),
        0,
        f"{n:,} keys, proof depth {len(sib)}",
    )
    sib = tree.siblings(reward_key)
    b.gas(
        "RewardManager.claim",
        b.admin,
        b.rewards.claim(task, client, 10, sib),
        0,
        f"{n:,} keys, proof depth {len(sib)}",
    )
    sib = tree.siblings(squat_key)
    b.gas(
        "RewardManager.reclaim",
        b.squatter,
        b.rewards.reclaim(batch, task, bind_by, sib),
        0,
        f"an unbound lapsed funding: {n:,} keys, proof depth {len(sib)}",
    )
    if leaver is not None:
        sib = tree.siblings(state_keys.release(ClientKey(leaver)))
        b.gas(
            "StakingRegistry.withdrawStake",
            b.stakers[0],
            b.registry.withdrawStake(batch, sib),
            0,
            f"on the rollup's release: {n:,} keys, proof depth {len(sib)}",
        )


def bench_fraud(b: Bench) -> None:
    """A fraud resolution discards every later batch in O(1): 100 of them show it."""
    first_bad = b.index
    for i in range(100):
        b.commit(key32(f"bad {i}"), 1)
    b.send(b.verifier, b.rollup.challenge(first_bad), b.params.challenge_bond)
    b.gas(
        "ResolverCommittee.vote (1 of 1: resolves, fraud)",
        b.admin,
        b.committee.vote(first_bad, True),
        note="discards 100 batches",
    )


def print_table(rows: list[Row]) -> None:
    """Rows of one label are grouped where it first appeared, so the tree sizes read together."""
    first: dict[str, int] = {}
    for i, (label, _, _) in enumerate(rows):
        first.setdefault(label, i)
    rows = sorted(rows, key=lambda row: first[row[0]])  # stable: the tree sizes stay in order
    print("| transaction | gas used | notes |")
    print("| --- | ---: | --- |")
    for label, used, note in rows:
        print(f"| `{label}` | {used:,} | {note} |")


def main() -> int:
    sizes = parse_sizes()
    params = DeployParams(challenge_blocks=200, da_challenge_blocks=50, da_resolve_blocks=100)
    with Anvil(accounts=13) as node:
        b = Bench(node, params)
        keys = bench_staking(b)
        bench_batches(b)
        bench_data(b)
        bench_forced(b)
        task_ids = fund_tasks(b, sizes)
        for i, (n, task) in enumerate(zip(sizes, task_ids, strict=True)):
            leaver = keys[0] if i == 0 else None  # it unregistered in bench_staking
            bench_proofs(b, n, task, victim=keys[1 + i], client=keys[-1], leaver=leaver)
        b.gas("RewardManager.withdrawRefund", b.requester, b.rewards.withdrawRefund(task_ids[0]))
        bench_fraud(b)
    print_table(b.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
