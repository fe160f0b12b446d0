"""The rollup's release of an unbonding stake (stf.fl.release): the only way a stake leaves the
L1, so the only way out for a cheater (issue 11's escape).

The L1 StakingRegistry pays a withdrawal on proof of ``release/<client>`` naming the L1 block of
its ``unregister`` (tests/test_contracts.py); these tests pin when the STF writes that leaf: at
once for a client holding no open commitment, after the last epoch it committed to has closed
otherwise, and never for a client with slash evidence in any task.
"""

from __future__ import annotations

import numpy as np
from test_fl import FL, Honest, init_model, pub, receipt, slash_leaf

from stf import state_keys
from stf.errors import Code
from stf.fl.flags import Flag
from stf.fl.settlement import decode_release
from stf.fl.task import COMPLETE, FINISHED
from stf.stakes import UNBONDING, WITHDRAWN, StakeRecord


def released(fl: FL, client: bytes) -> int | None:
    """The L1 block the client's release names, or None: not released."""
    raw = fl.get(state_keys.release(client))
    return None if raw is None else decode_release(raw)


def pending(fl: FL, client: bytes) -> bool:
    return fl.get(state_keys.unbonding(client)) is not None


def unbond(fl: FL, client: bytes) -> int:
    """Bring an L1 ``unregister`` in; return its L1 block (the test chain numbers L1 events
    1, 2, ... as their blocks)."""
    tx = fl.deposit("unbond", [client])
    result = fl.block(tx)
    assert receipt(result, tx) == (1, 0)
    return fl._deposits


def stake_status(fl: FL, client: bytes) -> int:
    raw = fl.get(state_keys.stake(client))
    assert raw is not None
    return StakeRecord.decode(raw).status


def last_step(fl: FL, task_id: bytes, epoch: int) -> np.ndarray:
    """The global step an epoch published: resending it is REPLAY_GLOBAL, slashable at once."""
    summary = fl.summary(task_id, epoch)
    assert summary is not None
    step = fl.blob(summary.step)
    assert step is not None
    return np.frombuffer(step, dtype=np.int8)


def test_a_client_with_no_open_commitment_is_released_at_once() -> None:
    """Joined, even: joining promises nothing; only a commitment binds the client to an epoch."""
    fl = FL(n_clients=6)
    tid = fl.new_task(min_clients=5, max_clients=6)
    fl.join_all(tid, fl.clients)
    me = pub(fl.clients[0])
    at = unbond(fl, me)
    assert released(fl, me) == at and not pending(fl, me)
    assert stake_status(fl, me) == UNBONDING
    # it may commit nothing any more, so nothing can make the release wrong afterwards
    tx = fl.submit(fl.clients[0], tid, 0, Honest().one())
    assert receipt(fl.block(tx), tx) == (0, Code.NOT_STAKED)


def test_the_release_waits_for_every_epoch_the_client_committed_to() -> None:
    """Committed in two epochs that are past their commit phase, then unbonding: it may still
    reveal (and is waited for), and it is released only when the second epoch has closed."""
    fl = FL(n_clients=6)
    a = fl.new_task(min_clients=5, max_clients=6, window=20, name="a")
    b = fl.new_task(min_clients=5, max_clients=6, window=20, name="b")
    fl.join_all(a, fl.clients)
    fl.join_all(b, fl.clients)
    h = Honest(seed=7)
    me = fl.clients[0]
    fl.commit_all(a, 0, [(k, h.one()) for k in fl.clients])
    fl.commit_all(b, 0, [(k, h.one()) for k in fl.clients])
    assert fl.task(a).revealing and fl.task(b).revealing
    at = unbond(fl, pub(me))
    assert released(fl, pub(me)) is None and pending(fl, pub(me))
    fl.reveal_all(a, 0, fl.clients[1:])
    assert fl.task(a).epoch == 0, "the epoch waits for the unbonding committer's reveal"
    fl.reveal_all(a, 0, [me])
    assert fl.task(a).epoch == 1
    assert fl.flags(a, 0, me) == 0
    assert released(fl, pub(me)) is None, "still committed in task b"
    fl.reveal_all(b, 0, fl.clients)
    assert fl.task(b).epoch == 1
    assert released(fl, pub(me)) == at and not pending(fl, pub(me))


def test_a_commitment_still_in_its_commit_phase_is_dropped_and_the_stake_released() -> None:
    """Nothing of the epoch is public yet: dropping the commitment is as if it never came, and
    the epoch goes on without the client (not waited for, not counted)."""
    fl = FL(n_clients=6)
    tid = fl.new_task(min_clients=5, max_clients=6, window=20)
    fl.join_all(tid, fl.clients)
    h = Honest(seed=6)
    me = fl.clients[0]
    fl.commit_all(tid, 0, [(k, h.one()) for k in fl.clients[:5]])
    at = unbond(fl, pub(me))
    assert released(fl, pub(me)) == at
    t = fl.task(tid)
    assert pub(me) not in t.submitted and len(t.commitments) == len(t.pending) == 4
    assert not t.revealing, "four commitments are below min_clients"
    fl.submit_all(tid, 0, [(fl.clients[5], h.one())])
    summary = fl.summary(tid, 0)
    assert summary is not None and summary.n_clients == 5 and pub(me) not in summary.clients


def test_a_commitment_left_unrevealed_is_a_strike_and_then_released() -> None:
    """Leaving does not excuse a reveal: the committer that never reveals gets REVEAL_MISSING
    like any other (a strike, not slashable), and is released when the epoch closes."""
    fl = FL(n_clients=6)
    tid = fl.new_task(min_clients=5, max_clients=6, window=2)
    fl.join_all(tid, fl.clients)
    h = Honest(seed=8)
    me = fl.clients[0]
    fl.commit_all(tid, 0, [(k, h.one()) for k in fl.clients])
    at = unbond(fl, pub(me))
    fl.reveal_all(tid, 0, fl.clients[1:])
    assert fl.task(tid).epoch == 0, "the reveal phase waits for it until its window ends"
    fl.empty(3)
    assert fl.task(tid).epoch == 1
    assert fl.flags(tid, 0, me) == int(Flag.REVEAL_MISSING)
    assert slash_leaf(fl, tid, me) is None
    assert released(fl, pub(me)) == at


def test_the_escape_a_slashable_client_is_never_released() -> None:
    """Issue 11's escape: commit the last global step (REPLAY_GLOBAL: slashable at once),
    unregister at once, reveal. The epoch close writes the slash evidence; no release is ever
    written, not when the task finishes, not for a later unbonding either."""
    fl = FL(n_clients=6)
    init = init_model()
    tid = fl.new_task(init, min_clients=5, max_clients=6, window=2, epochs=2)
    other = fl.new_task(init, min_clients=5, max_clients=6, window=2, epochs=1, name="other")
    fl.join_all(tid, fl.clients)
    h = Honest(seed=4)
    fl.submit_all(tid, 0, [(k, h.one()) for k in fl.clients])
    assert fl.task(tid).epoch == 1
    cheat = fl.clients[0]
    ups = [(cheat, last_step(fl, tid, 0))] + [(k, h.one()) for k in fl.clients[1:]]
    fl.commit_all(tid, 1, ups)
    unbond(fl, pub(cheat))
    assert released(fl, pub(cheat)) is None
    fl.reveal_all(tid, 1, fl.clients)
    assert fl.task(tid).status == FINISHED
    assert Flag(fl.flags(tid, 1, cheat)) & Flag.REPLAY_GLOBAL
    assert slash_leaf(fl, tid, cheat) is not None
    assert fl.get(state_keys.convicted(pub(cheat))) == tid
    assert released(fl, pub(cheat)) is None and pending(fl, pub(cheat))
    # other tasks closing later release nothing either
    fl.join_all(other, fl.clients[1:])
    fl.submit_all(other, 0, [(k, h.one()) for k in fl.clients[1:]])
    assert fl.task(other).status == FINISHED
    assert released(fl, pub(cheat)) is None


def test_a_convicted_client_that_unbonds_later_is_not_released() -> None:
    fl = FL(n_clients=6)
    init = init_model()
    tid = fl.new_task(init, min_clients=5, max_clients=6, window=2, epochs=2)
    fl.join_all(tid, fl.clients)
    h = Honest(seed=5)
    fl.submit_all(tid, 0, [(k, h.one()) for k in fl.clients])
    cheat = fl.clients[0]
    ups = [(cheat, last_step(fl, tid, 0))] + [(k, h.one()) for k in fl.clients[1:]]
    fl.submit_all(tid, 1, ups)
    assert slash_leaf(fl, tid, cheat) is not None
    unbond(fl, pub(cheat))  # after the verdict, with nothing open
    assert released(fl, pub(cheat)) is None


def test_a_task_ending_early_releases_its_open_commitments() -> None:
    """A task completed by an evaluation (or stranded) in the middle of an epoch: the
    commitments of that epoch lapse, and so does what they held back."""
    fl = FL(n_clients=6)
    tid = fl.new_task(min_clients=5, max_clients=6, window=3, target=500_000)
    fl.join_all(tid, fl.clients)
    h = Honest(seed=9)
    fl.submit_all(tid, 0, [(k, h.one()) for k in fl.clients])
    me = fl.clients[0]
    fl.commit_all(tid, 1, [(k, h.one()) for k in fl.clients])
    assert fl.task(tid).revealing
    at = unbond(fl, pub(me))
    assert released(fl, pub(me)) is None
    fl.block(fl.report(fl.evaluator, tid, 0, 600_000))
    assert fl.task(tid).status == COMPLETE
    assert released(fl, pub(me)) == at


def test_a_restaked_key_gets_a_release_naming_its_new_unbonding() -> None:
    fl = FL(n_clients=6)
    me = pub(fl.clients[0])
    first = unbond(fl, me)
    fl.block(fl.deposit("withdraw", [me]))
    assert stake_status(fl, me) == WITHDRAWN
    fl.block(fl.stake(fl.clients[0], b"\x01" * 20, 1000))
    assert released(fl, me) == first  # stale: the L1 refuses it for the new stake
    second = unbond(fl, me)
    assert second > first and released(fl, me) == second


def test_release_replays_to_the_same_roots() -> None:
    fl = FL(n_clients=6)
    tid = fl.new_task(min_clients=5, max_clients=6)
    fl.join_all(tid, fl.clients)
    h = Honest(seed=3)
    fl.commit_all(tid, 0, [(k, h.one()) for k in fl.clients])
    unbond(fl, pub(fl.clients[1]))
    fl.reveal_all(tid, 0, fl.clients)
    assert released(fl, pub(fl.clients[1])) is not None
    store = fl.replay_from_genesis()
    assert store.get(b"s:" + state_keys.release(pub(fl.clients[1]))) == fl.get(
        state_keys.release(pub(fl.clients[1]))
    )
