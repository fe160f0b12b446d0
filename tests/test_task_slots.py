"""Open-task slots and deadlines (issue 11): one unstaked key filled all 64 slots in 72
transactions and every honest ``create_task`` failed for good; a task that never reached
``min_clients`` held its slot and its L1 deposit for ever."""

from __future__ import annotations

from conftest import signing_key
from test_fl import FL, SCRIPT, Honest, init_model, receipt, sha, task_params

from stf import state_keys
from stf.errors import Code
from stf.fl import settlement
from stf.fl.contribution import CREDIT_SCALE
from stf.fl.epoch import EXPIRY_WINDOWS
from stf.fl.task import FINISHED, OPEN
from stf.txtypes.fl import MAX_OPEN_TASKS, MAX_OPEN_TASKS_PER_REQUESTER


def create(fl: FL, requester_seed: int, name: str, window: int = 50) -> tuple[bytes, int]:
    """``(task id, receipt code)`` of a create_task by the key of ``requester_seed``."""
    model = init_model().astype("<i4").tobytes()
    tx = fl.create(
        task_params(sha(model), sha(SCRIPT), name=name, window=window),
        signing_key(requester_seed),
    )
    return tx.hash, receipt(fl.block(tx), tx)[1]


def test_one_requester_takes_a_few_slots_and_the_chain_a_bounded_number() -> None:
    fl = FL(n_clients=1)
    fl.new_task(name="uploads", window=50)  # stores the model and the script blobs
    opened = 1  # by fl.requester
    for k in range(1, MAX_OPEN_TASKS_PER_REQUESTER):
        assert create(fl, 1, f"mine {k}")[1] == 0
        opened += 1
    assert create(fl, 1, "one too many")[1] == Code.TOO_MANY_OPEN_TASKS  # fl.requester: key 1
    seed = 100
    while opened < MAX_OPEN_TASKS:
        assert create(fl, seed + opened // MAX_OPEN_TASKS_PER_REQUESTER, f"t{opened}")[1] == 0
        opened += 1
    assert len(fl.open_tasks()) == MAX_OPEN_TASKS
    assert create(fl, 250, "full")[1] == Code.TOO_MANY_OPEN_TASKS


def test_a_task_that_gathers_too_few_clients_ends_by_its_deadline() -> None:
    """A free seat is no reason to wait for ever: a commit phase still short of
    ``min_clients`` after EXPIRY_WINDOWS windows ends the task by rule, settled on the epochs
    it trained, its slot free again (the L1 settles it and refunds what was not earned)."""
    fl = FL(n_clients=6)
    c = fl.clients
    window = 3
    tid = fl.new_task(init_model(), min_clients=5, max_clients=6, window=window, epochs=4)
    fl.join_all(tid, c[:5])
    h = Honest(seed=13)
    fl.submit_all(tid, 0, [(k, h.one()) for k in c[:5]])
    fl.commit_all(tid, 1, [(k, h.one()) for k in c[:3]])  # three of five come back
    deadline = fl.task(tid).epoch_start + EXPIRY_WINDOWS * window
    while fl.height < deadline - 1:
        fl.empty()
        assert fl.task(tid).status == OPEN, fl.height
    fl.empty()
    task = fl.task(tid)
    assert (task.status, task.epoch, task.submitted) == (FINISHED, 1, [])
    assert tid not in fl.open_tasks()
    raw = fl.get(state_keys.settlement(tid))
    assert raw is not None
    assert settlement.decode_settlement(raw) == settlement.Settlement(2, 1, 5 * CREDIT_SCALE)
    assert fl.replay_from_genesis().data == fl.chain.store.data


def test_squatted_slots_come_free_by_the_deadline() -> None:
    """Tasks nobody joins expire like any other: a squatter must keep paying transactions
    (and, funded, its L1 base fee) to hold slots, and cannot hold them past the deadline."""
    fl = FL(n_clients=1)
    fl.new_task(name="uploads", window=2)
    squats = [create(fl, 120, f"squat {k}", window=2)[0] for k in range(3)]
    assert all(t in fl.open_tasks() for t in squats)
    fl.empty(EXPIRY_WINDOWS * 2 + 1)
    assert not any(t in fl.open_tasks() for t in squats)
    assert all(fl.task(t).status == FINISHED for t in squats)
    assert all(fl.get(state_keys.settlement(t)) is not None for t in squats)
