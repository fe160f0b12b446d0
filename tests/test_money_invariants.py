"""The L1 money flows as invariants, over random sequences of every action (issue 11).

A hypothesis state machine drives the deployed contracts on py-evm (in process) with random
stake / unregister / withdraw / slash / fund / settle / claim / refund steps and mined blocks,
against a model written from docs/contracts.md. After every step:

* **conservation**: the wei of every account and contract plus the gas paid is what there was
  at the start (nothing is created or lost);
* the StakingRegistry holds exactly the stakes that are staked or unbonding; the RewardManager
  exactly the unsettled deposits plus, per settled task, the pool not yet claimed and the
  refund not yet withdrawn;
* every action succeeds exactly when the model says it may: no claim twice, no withdrawal
  without the rollup's finalized release of that very unbonding, and **no slash without a
  finalized proof** (a slash or a withdrawal against a batch still inside its challenge window
  reverts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)
from l1_fixtures import (
    BINDING,
    L1,
    USERS,
    StateTree,
    _start,
    key32,
    release_leaf,
    reward_leaf,
    settle_leaf,
    slash_leaf,
)

from contracts.reverts import ContractRevert

pytestmark = pytest.mark.slow

N_STAKERS, N_TASKS = 4, 2
STAKED, UNBONDING, SLASHED, WITHDRAWN, NONE = "staked", "unbonding", "slashed", "withdrawn", ""
CONTRACTS = ("StakingRegistry", "RewardManager", "RewardTreasury", "SlashTreasury")


@dataclass
class Staker:
    status: str = NONE
    unbond_block: int = 0
    ever_staked: bool = False


@dataclass
class Task:
    requester: int  # index into USERS
    deposit: int = 0
    settled: bool = False
    pool: int = 0
    refund: int = 0
    refunded: bool = False
    total_clean: int = 0
    tree: StateTree | None = None
    accepted: dict[int, tuple[int, int]] = field(default_factory=dict)  # staker -> (n, flagged)
    claimed: set[int] = field(default_factory=set)
    paid: int = 0  # claimed so far


@cache
def deployed() -> L1:
    """The contracts on py-evm, deployed once (in process: nothing to stop)."""
    chain, _ = _start("eth-tester")
    return chain


class MoneyFlows(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.l1 = deployed()
        self.snapshot = self.l1._snapshot()
        self.p = self.l1.params
        self.stakers = [Staker() for _ in range(N_STAKERS)]
        self.tasks = [Task(requester=N_STAKERS + j) for j in range(N_TASKS)]
        self.gas = 0
        self.slashes = 0
        self.start = self.total()

    def teardown(self) -> None:
        self.l1._revert(self.snapshot)

    # -- helpers ------------------------------------------------------------------------------
    def key(self, i: int) -> bytes:
        return key32(f"client {i}")

    def task_id(self, j: int) -> bytes:
        return key32(f"task {j}")

    def user(self, i: int) -> Any:
        return self.l1.accounts[USERS[i]]

    def addresses(self) -> list[str]:
        return [a.address for a in self.l1.accounts] + [self.l1.addresses[c] for c in CONTRACTS]

    def total(self) -> int:
        return sum(self.l1.balance(a) for a in self.addresses())

    def attempt(self, who: Any, fn: Any, value: int = 0) -> bool:
        """Send; True if it went through (its gas counted), False if it reverted."""
        try:
            receipt = self.l1.tx(who, fn, value)
        except ContractRevert:
            return False
        self.gas += self.l1.cost(receipt)
        return True

    def expect(self, allowed: bool, send: Callable[[], bool], what: str) -> None:
        ok = send()
        event(f"{what}: {'done' if ok else 'refused'}")  # --hypothesis-show-statistics
        assert ok == allowed, f"{what}: the model says {allowed}, the contracts {ok}"

    def commit(self, tree: StateTree, finalize: bool) -> int:
        before = self.l1.balance(self.l1.admin.address)
        batch = self.l1.commit(tree.root)
        self.gas += before - self.l1.balance(self.l1.admin.address)
        if finalize:
            self.l1.finalize()
        return batch

    # -- stakes -------------------------------------------------------------------------------
    @rule(i=st.integers(0, N_STAKERS - 1))
    def stake(self, i: int) -> None:
        s = self.stakers[i]
        allowed = s.status in (NONE, WITHDRAWN)
        fn = self.l1.registry.functions.stake(self.key(i), BINDING)
        self.expect(allowed, lambda: self.attempt(self.user(i), fn, self.p.stake_amount), "stake")
        if allowed:
            s.status, s.ever_staked = STAKED, True

    @precondition(lambda self: any(s.status == STAKED for s in self.stakers))
    @rule(i=st.integers(0, N_STAKERS - 1))
    def unregister(self, i: int) -> None:
        s = self.stakers[i]
        allowed = s.status == STAKED
        fn = self.l1.registry.functions.unregister()
        self.expect(allowed, lambda: self.attempt(self.user(i), fn), "unregister")
        if allowed:
            s.status, s.unbond_block = UNBONDING, self.l1.block()

    @precondition(lambda self: any(s.status == UNBONDING for s in self.stakers))
    @rule(i=st.integers(0, N_STAKERS - 1), finalized=st.booleans(), stale=st.booleans())
    def withdraw(self, i: int, finalized: bool, stale: bool) -> None:
        """An unbonding staker's withdrawal, with a release of its current unbonding or
        (``stale``) of another one, under a finalized root or a fresh one."""
        unbonding = [k for k, s in enumerate(self.stakers) if s.status == UNBONDING]
        i = unbonding[i % len(unbonding)]
        s = self.stakers[i]
        key, value = release_leaf(self.key(i), s.unbond_block + int(stale))
        tree = StateTree({key: value}, filler=8)
        batch = self.commit(tree, finalized)
        allowed = s.status == UNBONDING and finalized and not stale
        fn = self.l1.registry.functions.withdrawStake(batch, tree.siblings(key))
        self.expect(allowed, lambda: self.attempt(self.user(i), fn), "withdraw")
        if allowed:
            s.status = WITHDRAWN

    @rule(n=st.sampled_from([1, 5, 13]))  # 13: past the 12-block challenge window
    def mine(self, n: int) -> None:
        self.l1.mine(n)

    @rule(i=st.integers(0, N_STAKERS - 1), finalized=st.booleans())
    def slash(self, i: int, finalized: bool) -> None:
        s = self.stakers[i]
        self.slashes += 1
        offence_task = key32(f"offence {self.slashes}")
        key, value = slash_leaf(self.key(i), offence_task, 1, 8)
        tree = StateTree({key: value}, filler=8)
        batch = self.commit(tree, finalized)
        allowed = finalized and s.status in (STAKED, UNBONDING)
        fn = self.l1.slashing.functions.slash(
            batch, self.key(i), offence_task, 1, 8, tree.siblings(key)
        )
        self.expect(allowed, lambda: self.attempt(self.user(N_STAKERS + 1), fn), "slash")
        if allowed:
            s.status = SLASHED

    # -- tasks ---------------------------------------------------------------------------------
    @rule(j=st.integers(0, N_TASKS - 1), deposit=st.sampled_from([1, 10**15, 3 * 10**16]))
    def fund(self, j: int, deposit: int) -> None:
        t = self.tasks[j]
        allowed = t.deposit == 0
        fn = self.l1.rewards.functions.createTask(self.task_id(j), deposit)
        pay = self.p.base_fee + deposit
        self.expect(allowed, lambda: self.attempt(self.user(t.requester), fn, pay), "fund")
        if allowed:
            t.deposit = deposit

    @precondition(lambda self: any(t.deposit for t in self.tasks))
    @rule(
        j=st.integers(0, N_TASKS - 1),
        epochs=st.sampled_from([0, 3, 40]),
        accepted=st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=N_STAKERS,
                          max_size=N_STAKERS),
    )  # fmt: skip
    def settle(self, j: int, epochs: int, accepted: list[tuple[int, bool]]) -> None:
        t = self.tasks[j]
        shares = {i: (n, int(flag)) for i, (n, flag) in enumerate(accepted)}
        total = sum(n for n, flag in shares.values() if not flag)
        leaves = dict([settle_leaf(self.task_id(j), 2, epochs, total)])
        leaves.update(
            reward_leaf(self.task_id(j), self.key(i), n, f) for i, (n, f) in shares.items()
        )
        tree = StateTree(leaves, filler=8)
        batch = self.commit(tree, finalize=True)
        allowed = t.deposit > 0 and not t.settled
        key = settle_leaf(self.task_id(j), 2, epochs, total)[0]
        fn = self.l1.rewards.functions.settle(
            batch, self.task_id(j), 2, epochs, total, tree.siblings(key)
        )
        self.expect(allowed, lambda: self.attempt(self.user(N_STAKERS + 1), fn), "settle")
        if allowed:
            fee = min(epochs * self.p.fee_per_epoch, t.deposit)
            protocol = fee * self.p.protocol_share_bps // 10_000
            t.settled, t.tree, t.accepted, t.total_clean = True, tree, shares, total
            t.pool = 0 if total == 0 else fee - protocol
            t.refund = t.deposit - fee

    @precondition(lambda self: any(t.settled for t in self.tasks))
    @rule(j=st.integers(0, N_TASKS - 1), i=st.integers(0, N_STAKERS - 1))
    def claim(self, j: int, i: int) -> None:
        t = self.tasks[j]
        if not t.settled or t.tree is None:
            return
        n, flagged = t.accepted[i]
        amount = t.pool * n // t.total_clean if t.total_clean else 0
        allowed = (
            not flagged
            and i not in t.claimed
            and amount > 0
            and self.stakers[i].ever_staked  # the staker of record is paid
        )
        siblings = t.tree.siblings(reward_leaf(self.task_id(j), self.key(i), n, flagged)[0])
        fn = self.l1.rewards.functions.claim(self.task_id(j), self.key(i), n, siblings)
        self.expect(allowed, lambda: self.attempt(self.user(N_STAKERS + 1), fn), "claim")
        if allowed:
            t.claimed.add(i)
            t.paid += amount

    @precondition(lambda self: any(t.settled for t in self.tasks))
    @rule(j=st.integers(0, N_TASKS - 1))
    def refund(self, j: int) -> None:
        t = self.tasks[j]
        allowed = t.settled and not t.refunded and t.refund > 0
        fn = self.l1.rewards.functions.withdrawRefund(self.task_id(j))
        self.expect(allowed, lambda: self.attempt(self.user(t.requester), fn), "refund")
        if allowed:
            t.refunded = True

    # -- invariants -----------------------------------------------------------------------------
    @invariant()
    def conserved(self) -> None:
        assert self.total() + self.gas == self.start

    @invariant()
    def registry_holds_the_live_stakes(self) -> None:
        live = sum(1 for s in self.stakers if s.status in (STAKED, UNBONDING))
        held = self.l1.balance(self.l1.addresses["StakingRegistry"])
        assert held == live * self.p.stake_amount

    @invariant()
    def reward_manager_holds_what_it_owes(self) -> None:
        owed = 0
        for t in self.tasks:
            if not t.settled:
                owed += t.deposit
                continue
            assert t.paid <= t.pool  # claims never exceed the pool
            owed += t.pool - t.paid + (0 if t.refunded else t.refund)
        assert self.l1.balance(self.l1.addresses["RewardManager"]) == owed


TestMoneyFlows = MoneyFlows.TestCase
TestMoneyFlows.settings = settings(
    max_examples=12,
    stateful_step_count=40,
    deadline=None,
    # every step is L1 transactions: shrinking a failure would take minutes
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)


def test_the_model_knows_the_deployment() -> None:
    """The parameters the model computes with are the deployed ones (a guard for the model)."""
    chain = deployed()
    rm = chain.rewards.functions
    assert chain.call(rm.BASE_FEE()) == chain.params.base_fee
    assert chain.call(rm.FEE_PER_EPOCH()) == chain.params.fee_per_epoch
    assert chain.call(rm.PROTOCOL_SHARE_BPS()) == chain.params.protocol_share_bps
