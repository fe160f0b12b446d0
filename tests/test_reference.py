"""The requester's reference update (stf.fl.reference): exact trust weights, no money moved.

The arithmetic is checked against an independent exact-fraction reference (the largest
``t`` with ``t^2 |u|^2 |r|^2 <= S^2 <u, r>^2``, and a ``Fraction`` mean rounded half to
even); the money claim by closing the same epoch with and without a reference and comparing
every client's figures; the protocol (commit in the commit phase, reveal in the reveal phase,
the close waiting for the reveal, a missing reveal falling back) on a real chain that every
block replays.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from test_fl import FL, Honest, check_epoch, init_model, pub, receipt, sha

from stf import robust, state_keys
from stf.errors import Code
from stf.fl.aggregate import aggregate_blocks, plan_aggregate
from stf.fl.checks import krum_f
from stf.fl.commit import REFERENCE_DOMAIN, commitment
from stf.fl.epoch import awaited
from stf.fl.judge import evaluate_epoch
from stf.fl.records import ReferenceRecord
from stf.fl.reference import REFERENCE_SCALE, reference_plan, trust
from stf.fl.rules import Aggregator, EpochRules
from stf.ids import TaskId
from stf.state import State

COMMIT_REFERENCE, REVEAL_REFERENCE = 8, 9
S = REFERENCE_SCALE
I8 = st.integers(-127, 127)


def dot(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> int:
    return sum(int(x) * int(y) for x, y in zip(a.tolist(), b.tolist(), strict=True))


def expected_trust(u: np.ndarray[Any, Any], r: np.ndarray[Any, Any]) -> int:
    """floor(S * max(0, cos(u, r))), by its definition: no isqrt, no float."""
    a, uu, rr = dot(u, r), dot(u, u), dot(r, r)
    if a <= 0 or uu == 0 or rr == 0:
        return 0
    lo, hi = 0, S + 1  # the largest t in [0, S] with t^2 uu rr <= S^2 a^2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mid * mid * uu * rr <= S * S * a * a:
            lo = mid
        else:
            hi = mid
    return lo


def expected_step(
    rows: np.ndarray[Any, Any], used: list[int], r: np.ndarray[Any, Any]
) -> list[int]:
    """round_half_even(sum_i t_i u_i / sum_i t_i) over ``used``, in exact fractions."""
    t = {i: expected_trust(rows[i], r) for i in used}
    total = sum(t.values())
    if total == 0:
        return [0] * rows.shape[1]
    return [
        round(Fraction(sum(t[i] * int(rows[i, j]) for i in used), total))
        for j in range(rows.shape[1])
    ]


def epoch_rows(n: int, d: int, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``n`` honest-looking int8 rows and a reference near their common direction."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(0, 30, d)
    rows = np.clip(np.rint(direction + rng.normal(0, 25, (n, d))), -127, 127).astype(np.int8)
    ref = np.clip(np.rint(direction + rng.normal(0, 40, d)), -127, 127).astype(np.int8)
    return rows, ref


# -- the arithmetic ----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(I8, I8), min_size=1, max_size=30))
def test_trust_is_the_floor_of_the_scaled_positive_cosine(pairs: list[tuple[int, int]]) -> None:
    u = np.array([p[0] for p in pairs], dtype=np.int64)
    r = np.array([p[1] for p in pairs], dtype=np.int64)
    assert trust(dot(u, u), dot(u, r), dot(r, r)) == expected_trust(u, r)


def test_trust_ends() -> None:
    u = np.array([3, -4, 5], dtype=np.int64)
    assert trust(dot(u, u), dot(u, u), dot(u, u)) == S  # the reference itself: cosine 1
    assert trust(dot(u, u), -dot(u, u), dot(u, u)) == 0  # opposed: no trust
    assert trust(0, 0, dot(u, u)) == 0 and trust(dot(u, u), 0, 0) == 0


@settings(max_examples=60, deadline=None)
@given(
    st.integers(3, 8),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
    st.sampled_from([Aggregator.MEAN, Aggregator.MULTI_KRUM_MEAN, Aggregator.MEDIAN]),
)
def test_the_step_is_the_exact_trust_weighted_mean_of_the_aggregators_rows(
    n: int, d: int, seed: int, aggregator: Aggregator
) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.integers(-127, 128, (n, d)).astype(np.int8)
    ref = rng.integers(-127, 128, d).astype(np.int8)
    rules = EpochRules(f=1, aggregator=aggregator)
    plain = evaluate_epoch(rows, rules)
    out = evaluate_epoch(rows, rules, reference=ref)
    # the rows the configured aggregator combines: the unflagged ones, or Multi-Krum's choice
    clean = [i for i, c in enumerate(plain.clients) if c.flags == 0]
    used = plan_aggregate(robust.gram(rows), clean, rules, krum_f(rules.f, n)).rows
    assert out.aggregate.tolist() == expected_step(rows, list(used), ref)


def test_a_reference_that_trusts_no_row_gives_a_zero_step() -> None:
    rows, ref = epoch_rows(6, 50, seed=1)
    out = evaluate_epoch(rows, EpochRules(f=1), reference=(-ref.astype(np.int16)).astype(np.int8))
    assert not out.aggregate.any()
    assert reference_plan([4, 9], [0, -3], 5, [0, 1]).kind == "zero"


def test_an_update_against_the_reference_gets_no_weight() -> None:
    """A sign flip of the honest mean that the checks let through (rules loosened so, and an
    own past it correlates with) pulls the plain mean; under the reference it has trust 0 and
    the step is the honest rows' alone."""
    rows, ref = epoch_rows(8, 200, seed=2)
    rows[7] = np.clip(-robust.mean(rows[:7]), -127, 127).astype(np.int8)
    past = rows[7].copy()
    past[0] = past[0] // 2 + 1
    own: list[np.ndarray[Any, Any] | None] = [None] * 7 + [past]
    rules = EpochRules(f=1, krum_ratio=(10**6, 1))
    out = evaluate_epoch(rows, rules, None, own, reference=ref)
    assert all(c.flags == 0 for c in out.clients)  # no statistic caught it
    assert expected_trust(rows[7], ref) == 0
    assert out.aggregate.tolist() == expected_step(rows, list(range(7)), ref)
    plain = evaluate_epoch(rows, rules, None, own)
    assert dot(plain.aggregate, ref) < dot(out.aggregate, ref)


def test_the_reference_moves_no_money() -> None:
    """Every figure the verdicts and rewards read is the same with no reference, an honest one
    and one that favours a single client: only the step changes."""
    rows, ref = epoch_rows(8, 300, seed=3)
    prev = np.clip(np.rint(rows.astype(np.float64).mean(axis=0)), -127, 127).astype(np.int8)
    own: list[np.ndarray[Any, Any] | None] = [None, *(rows[i][::-1].copy() for i in range(1, 8))]
    rules = EpochRules(f=1)
    results = [
        evaluate_epoch(rows, rules, prev, own, reference=r) for r in (None, ref, rows[5].copy())
    ]
    figures = [[asdict(c) for c in res.clients] for res in results]
    assert figures[0] == figures[1] == figures[2]
    assert any(c["credit"] > 0 for c in figures[0])
    steps = [res.aggregate.tolist() for res in results]
    assert steps[0] != steps[1] != steps[2]


@pytest.mark.parametrize("budget", [64, 1000, 10**6])
def test_backends_and_budgets_give_the_same_bytes(budget: int) -> None:
    rows, ref = epoch_rows(9, 1_001, seed=4)
    rules = EpochRules(f=2)
    want = evaluate_epoch(rows, rules, reference=ref)
    got = evaluate_epoch(rows, rules, reference=ref, budget_bytes=budget)
    assert got.aggregate.tolist() == want.aggregate.tolist()
    if importlib.util.find_spec("torch") is not None:
        tor = evaluate_epoch(rows, rules, reference=ref, backend="torch", budget_bytes=budget)
        assert tor.aggregate.tolist() == want.aggregate.tolist()


def test_the_int64_sums_stay_exact_at_the_largest_values() -> None:
    """Many rows at the int16 limit, all trusted fully: the weighted sum is n S 2^15 < 2^53."""
    n, d = 5_000, 3
    rows = [lambda a, b: np.full(b - a, 32767, dtype=np.int16)] * n
    sq = 32767 * 32767 * d
    plan = reference_plan([sq] * n, [sq] * n, sq, list(range(n)))
    assert plan.weights == (S,) * n and plan.scale == n * S
    blocks = list(aggregate_blocks(rows, plan, d, np.dtype(np.int16)))
    assert [b.tolist() for _, _, b in blocks] == [[32767] * d]


# -- the protocol --------------------------------------------------------------------------


def ref_salt(fl: FL, task_id: bytes, epoch: int) -> bytes:
    return sha(b"ref-salt" + pub(fl.requester) + task_id + epoch.to_bytes(8, "big"))


def commit_ref(
    fl: FL, task_id: bytes, epoch: int, ref: np.ndarray[Any, Any], key: SigningKey | None = None
) -> Any:
    key = key or fl.requester
    digest = commitment(
        TaskId(task_id), epoch, pub(key), sha(ref.tobytes()), ref_salt(fl, task_id, epoch),
        REFERENCE_DOMAIN,
    )  # fmt: skip
    return fl.tx(key, COMMIT_REFERENCE, [task_id, epoch, digest])


def reveal_ref(fl: FL, task_id: bytes, epoch: int, ref: Any, key: SigningKey | None = None) -> Any:
    body = ref if isinstance(ref, bytes) else ref.tobytes()
    return fl.tx(
        key or fl.requester, REVEAL_REFERENCE, [task_id, epoch, body, ref_salt(fl, task_id, epoch)]
    )


def two_chains() -> tuple[FL, FL, bytes, list[np.ndarray[Any, Any]], np.ndarray[Any, Any]]:
    """The same task on two chains: one will get a reference, the other none."""
    fls = [FL(n_clients=6), FL(n_clients=6)]
    ids = [fl.new_task(init_model(), min_clients=6, max_clients=6, window=6) for fl in fls]
    assert ids[0] == ids[1]
    for fl in fls:
        fl.join_all(ids[0], fl.clients)
    h = Honest(seed=9)
    ups = h.many(6)
    ref = h.one()
    return fls[0], fls[1], ids[0], ups, ref


def test_the_close_weighs_by_the_revealed_reference_and_pays_as_without_it() -> None:
    fl, twin, tid, ups, ref = two_chains()
    pairs = list(zip(fl.clients, ups, strict=True))
    # the reference is committed first (its own block), then every client commits
    assert receipt(fl.block(c := commit_ref(fl, tid, 0, ref)), c) == (1, 0)
    fl.commit_all(tid, 0, pairs)
    twin.commit_all(tid, 0, list(zip(twin.clients, ups, strict=True)))
    assert fl.task(tid).revealing
    fl.reveal_all(tid, 0, fl.clients)
    # every client has revealed: the close waits for the requester's reveal
    assert fl.summary(tid, 0) is None
    state = State(fl.chain.store, b"")
    assert list(awaited(state, TaskId(tid), fl.task(tid))) == [pub(fl.requester)]
    assert receipt(fl.block(r := reveal_ref(fl, tid, 0, ref)), r) == (1, 0)
    summary = fl.summary(tid, 0)
    assert summary is not None
    raw = fl.get(state_keys.reference(tid, 0))
    assert raw is not None and ReferenceRecord.decode(raw).reference == sha(ref.tobytes())
    by_key = {pub(k): u for k, u in zip(fl.clients, ups, strict=True)}
    rows = np.stack([by_key[c] for c in summary.clients])
    want = evaluate_epoch(rows, EpochRules(), reference=ref).aggregate
    assert fl.blob(summary.step) == np.clip(want, -127, 127).astype(np.int8).tobytes()
    # the twin closed on the plain mean; every record, verdict and reward leaf is the same
    twin.reveal_all(tid, 0, twin.clients)
    plain = twin.summary(tid, 0)
    assert plain is not None and plain.step != summary.step
    for k in fl.clients:
        for key in (
            state_keys.client_record(tid, 0, pub(k)),
            state_keys.verdict(tid, pub(k)),
            state_keys.reward_share(tid, pub(k)),
        ):
            assert fl.get(key) == twin.get(key)


def test_an_unrevealed_reference_costs_one_window_and_is_ignored() -> None:
    fl, _, tid, ups, ref = two_chains()
    fl.block(commit_ref(fl, tid, 0, ref))
    fl.commit_all(tid, 0, list(zip(fl.clients, ups, strict=True)))
    fl.reveal_all(tid, 0, fl.clients)
    opened = fl.task(tid).reveal_start
    while fl.summary(tid, 0) is None:
        fl.empty()
    assert fl.summary(tid, 0).closed_at == opened + 6  # type: ignore[union-attr]
    # the configured aggregator (the plain mean) made the step, as check_epoch recomputes it
    check_epoch(fl, tid, 0, {pub(k): u for k, u in zip(fl.clients, ups, strict=True)}, init_model())


def test_reference_transactions_are_refused_with_their_codes() -> None:
    fl, _, tid, ups, ref = two_chains()
    outsider = commit_ref(fl, tid, 0, ref, key=fl.clients[0])
    wrong_epoch = commit_ref(fl, tid, 1, ref)
    early = reveal_ref(fl, tid, 0, ref)
    ok = commit_ref(fl, tid, 0, ref)
    again = commit_ref(fl, tid, 0, ref)
    result = fl.block(outsider, wrong_epoch, early, ok, again)
    assert receipt(result, outsider) == (0, Code.NOT_AUTHORIZED)
    assert receipt(result, wrong_epoch) == (0, Code.WRONG_EPOCH)
    assert receipt(result, early) == (0, Code.WRONG_PHASE)
    assert receipt(result, ok) == (1, 0)
    assert receipt(result, again) == (0, Code.DUPLICATE_UPDATE)
    fl.commit_all(tid, 0, list(zip(fl.clients, ups, strict=True)))
    late = commit_ref(fl, tid, 0, ref)
    short = reveal_ref(fl, tid, 0, ref.tobytes()[:-1])
    other = reveal_ref(fl, tid, 0, ups[0])
    by_client = reveal_ref(fl, tid, 0, ref, key=fl.clients[1])
    fine = reveal_ref(fl, tid, 0, ref)
    twice = reveal_ref(fl, tid, 0, ref)
    result = fl.block(late, short, other, by_client, fine, twice)
    assert receipt(result, late) == (0, Code.WRONG_PHASE)
    assert receipt(result, short) == (0, Code.INVALID_UPDATE)
    assert receipt(result, other) == (0, Code.COMMITMENT_MISMATCH)
    assert receipt(result, by_client) == (0, Code.NOT_AUTHORIZED)
    assert receipt(result, fine) == (1, 0)
    assert receipt(result, twice) == (0, Code.DUPLICATE_UPDATE)
    fl.reveal_all(tid, 0, fl.clients)
    assert fl.task(tid).epoch == 1
    fl.block(*(fl.submit(k, tid, 1, u) for k, u in zip(fl.clients, ups, strict=True)))
    while not fl.task(tid).revealing:  # the requester is awaited: the window ends the phase
        fl.empty()
    missing = reveal_ref(fl, tid, 1, ref)
    assert receipt(fl.block(missing), missing) == (0, Code.NOT_COMMITTED)


def test_a_reference_commitment_is_not_an_update_commitment() -> None:
    """Another domain: a requester that also trains in its task cannot open one as the other."""
    args = (TaskId(b"t" * 32), 3, pub(SigningKey(b"k" * 32)), sha(b"u"), b"s" * 32)
    assert commitment(*args) != commitment(*args, REFERENCE_DOMAIN)  # type: ignore[arg-type]


def test_a_requester_that_sends_references_is_waited_for_in_the_commit_phase() -> None:
    """After an epoch with a reference, the next commit phase does not end when the last client
    commits, but when the requester has too (or its window passes): clients quicker than the
    requester's training cannot shut its reference out. One that stops costs one window."""
    fl, _, tid, ups, ref = two_chains()
    fl.block(commit_ref(fl, tid, 0, ref))
    fl.commit_all(tid, 0, list(zip(fl.clients, ups, strict=True)))
    fl.reveal_all(tid, 0, fl.clients)
    fl.block(reveal_ref(fl, tid, 0, ref))
    assert fl.task(tid).epoch == 1
    fl.commit_all(tid, 1, list(zip(fl.clients, ups[::-1], strict=True)))
    t = fl.task(tid)
    assert not t.revealing  # every client committed: the requester is still awaited
    state = State(fl.chain.store, b"")
    assert list(awaited(state, TaskId(tid), t)) == [pub(fl.requester)]
    assert receipt(fl.block(c := commit_ref(fl, tid, 1, ref)), c) == (1, 0)
    assert fl.task(tid).revealing  # its commitment ended the phase
    fl.reveal_all(tid, 1, fl.clients)
    fl.block(reveal_ref(fl, tid, 1, ref))
    # epoch 2: the requester sends nothing; the phase runs to its window (and the epoch after
    # one without a reference no longer waits: `awaited` reads the previous epoch's record)
    fl.commit_all(tid, 2, list(zip(fl.clients, ups, strict=True)))
    start = fl.task(tid).epoch_start
    while not fl.task(tid).revealing:
        fl.empty()
    assert fl.height == start + 6  # the window
    t = fl.task(tid)
    t.epoch, t.reveal_start = 3, 0  # as epoch 3 would stand: nobody but the clients awaited
    t.submitted, t.pending, t.commitments = [], [], []
    state = State(fl.chain.store, b"")
    assert pub(fl.requester) not in list(awaited(state, TaskId(tid), t))


def test_a_chunked_reference_weighs_the_close_as_an_inline_one() -> None:
    """A reference larger than one transaction goes as put_blob chunks and the list of their
    ids, like an update; the close reads it through its manifest: the same step as inline."""
    from client_sdk import fl as sdk

    steps = []
    for chunked in (False, True):
        fl, _, tid, ups, ref = two_chains()
        body = ref.tobytes()
        chunks = [body[:1200], body[1200:]]
        ref_id = sha(sdk.chunk_manifest(chunks)) if chunked else sha(body)
        salt = ref_salt(fl, tid, 0)
        digest = commitment(TaskId(tid), 0, pub(fl.requester), ref_id, salt, REFERENCE_DOMAIN)
        fl.block(fl.tx(fl.requester, COMMIT_REFERENCE, [tid, 0, digest]))
        fl.commit_all(tid, 0, list(zip(fl.clients, ups, strict=True)))
        fl.reveal_all(tid, 0, fl.clients)
        payload: Any = [sha(c) for c in chunks] if chunked else body
        txs = [fl.put_blob(fl.requester, c) for c in chunks] if chunked else []
        reveal = fl.tx(fl.requester, REVEAL_REFERENCE, [tid, 0, payload, salt])
        result = fl.block(*txs, reveal)
        assert receipt(result, reveal) == (1, 0)
        raw = fl.get(state_keys.reference(tid, 0))
        assert raw is not None and ReferenceRecord.decode(raw).reference == ref_id
        summary = fl.summary(tid, 0)
        assert summary is not None
        steps.append(fl.blob(summary.step))
    assert steps[0] == steps[1]
