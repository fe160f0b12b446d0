#!/usr/bin/env python
"""Gas used by the L1 contracts' transactions, measured on anvil.

Usage: ``python bench/gas.py [--quick]`` (``--quick``: state trees of 1k and 10k keys instead of
1k, 100k and 1M).

Deploys the contracts on a fresh anvil (``contracts.anvil.Anvil``) and runs each operation as a
real signed transaction, printing a markdown table of ``gasUsed`` (the whole transaction: the
21,000 base, calldata, execution and refunds). Slashing, settling and claiming prove a leaf of a
real rollup state tree (``stf.smt``) holding as many other keys as the rollup would, so the proof
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
from web3.contract.contract import ContractFunction

from contracts.anvil import Anvil
from contracts.deploy import ETHER, DeployParams, deploy_all
from contracts.transact import contract, transact
from stf import state_keys
from stf.fl.settlement import (
    Settlement,
    encode_reward_share,
    encode_settlement,
    encode_slash_evidence,
)
from stf.hashing import ZERO_HASH
from stf.ids import ClientKey, TaskId
from stf.smt import NODE_PREFIX, SparseMerkleTree, value_hash


class Tree:
    """An in-memory rollup state tree with ``n`` filler keys plus the given leaves."""

    def __init__(self, n: int, leaves: dict[bytes, bytes]) -> None:
        self.nodes: dict[bytes, bytes] = {}
        self.tree = SparseMerkleTree(self)
        items = {f"filler/{i}".encode(): value_hash(i.to_bytes(8, "big")) for i in range(n)}
        items.update({k: value_hash(v) for k, v in leaves.items()})
        self.root = self.tree.update(ZERO_HASH, items)
        self.nodes.update({NODE_PREFIX + h: p for h, p in self.tree.new_nodes.items()})

    def get(self, key: bytes) -> bytes | None:
        return self.nodes.get(key)

    def siblings(self, key: bytes) -> list[bytes]:
        return list(self.tree.prove(self.root, key).siblings)


def key32(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="trees of 1k and 10k keys")
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 100_000, 1_000_000]

    rows: list[tuple[str, int, str]] = []
    params = DeployParams(challenge_blocks=200, unbonding_blocks=20)
    with Anvil(accounts=12) as node:
        w3 = node.w3()
        admin, verifier, requester = node.accounts[0], node.accounts[1], node.accounts[2]
        stakers = node.accounts[3:]
        a = deploy_all(w3, admin, params)
        registry = contract(w3, "StakingRegistry", a["StakingRegistry"]).functions
        rollup = contract(w3, "MPSRollup", a["MPSRollup"]).functions
        slashing = contract(w3, "SlashingManager", a["SlashingManager"]).functions
        rewards = contract(w3, "RewardManager", a["RewardManager"]).functions

        def gas(
            label: str, account: LocalAccount, fn: ContractFunction, value: int = 0, note: str = ""
        ) -> int:
            used = int(transact(w3, account, fn, value)["gasUsed"])
            rows.append((label, used, note))
            return used

        transact(w3, admin, rollup.setVerifier(verifier.address, True))
        keys = [key32(f"client {i}") for i in range(len(stakers))]
        gas("StakingRegistry.stake", stakers[0], registry.stake(keys[0]), params.stake_amount)
        for s, k in zip(stakers[1:], keys[1:], strict=True):
            transact(w3, s, registry.stake(k), params.stake_amount)
        gas("StakingRegistry.unregister", stakers[0], registry.unregister())
        node.mine(params.unbonding_blocks)
        gas("StakingRegistry.withdrawStake", stakers[0], registry.withdrawStake())

        last = 0
        state = {"root": params.genesis_state_root, "index": 0}

        def commit(root: bytes, blocks: int, label: str | None = None, note: str = "") -> None:
            nonlocal last
            fn = rollup.commitBatch(
                state["index"], state["root"], root, hashlib.sha256(root).digest(), last + blocks
            )
            if label:
                gas(label, admin, fn, note=note)
            else:
                transact(w3, admin, fn)
            last += blocks
            state["root"], state["index"] = root, state["index"] + 1

        commit(key32("r0"), 1, "MPSRollup.commitBatch (first batch)", "nextBatchIndex 0 -> 1")
        commit(key32("r1"), 1, "MPSRollup.commitBatch (1 rollup block)")
        commit(
            key32("r2"),
            1000,
            "MPSRollup.commitBatch (1,000 rollup blocks)",
            "calldata of the larger lastBlock: +12",
        )
        gas("MPSRollup.challenge", verifier, rollup.challenge(2), params.challenge_bond)
        gas("MPSRollup.resolveChallenge (no fraud)", admin, rollup.resolveChallenge(2, False))
        gas("MPSRollup.withdrawBond", admin, rollup.withdrawBond())

        deposit = ETHER // 10
        task_ids = [key32(f"task {n}") for n in sizes]
        gas(
            "RewardManager.createTask",
            requester,
            rewards.createTask(task_ids[0], deposit),
            params.base_fee + deposit,
            "base fee to the treasury",
        )
        for task in task_ids[1:]:
            transact(w3, requester, rewards.createTask(task, deposit), params.base_fee + deposit)

        for n, task in zip(sizes, task_ids, strict=True):
            victim, client = keys[1 + sizes.index(n)], keys[-1]
            slash_key = state_keys.slash_evidence(ClientKey(victim), TaskId(task))
            settle_key = state_keys.settlement(TaskId(task))
            reward_key = state_keys.reward_share(TaskId(task), ClientKey(client))
            leaves = {
                slash_key: encode_slash_evidence(3, 1),
                settle_key: encode_settlement(Settlement(2, 10, 20)),
                reward_key: encode_reward_share(10, False),
            }
            tree = Tree(n, leaves)
            commit(tree.root, 1)
            batch = state["index"] - 1
            node.mine(params.challenge_blocks)
            sib = tree.siblings(slash_key)
            depth = f"{n:,} keys, proof depth {len(sib)}"
            gas(
                "SlashingManager.slash",
                admin,
                slashing.slash(batch, victim, task, 3, 1, sib),
                0,
                depth,
            )
            sib = tree.siblings(settle_key)
            gas(
                "RewardManager.settle",
                admin,
                rewards.settle(batch, task, 2, 10, 20, sib),
                0,
                f"{n:,} keys, proof depth {len(sib)}",
            )
            sib = tree.siblings(reward_key)
            gas(
                "RewardManager.claim",
                admin,
                rewards.claim(task, client, 10, sib),
                0,
                f"{n:,} keys, proof depth {len(sib)}",
            )
        gas("RewardManager.withdrawRefund", requester, rewards.withdrawRefund(task_ids[0]))

        # a fraud resolution discards every later batch in O(1)
        first_bad = state["index"]
        for i in range(100):
            commit(key32(f"bad {i}"), 1)
        transact(w3, verifier, rollup.challenge(first_bad), params.challenge_bond)
        gas(
            "MPSRollup.resolveChallenge (fraud)",
            admin,
            rollup.resolveChallenge(first_bad, True),
            note="discards 100 batches",
        )

    first = {}
    for i, (label, _, _) in enumerate(rows):
        first.setdefault(label, i)
    rows.sort(key=lambda row: first[row[0]])  # stable: the tree sizes stay in order
    print("| transaction | gas used | notes |")
    print("| --- | ---: | --- |")
    for label, used, note in rows:
        print(f"| `{label}` | {used:,} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
