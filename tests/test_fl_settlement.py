"""The leaves the L1 contracts check (slash evidence, settlement, reward shares) and the
``fund`` L1 deposit.

The leaves are fixed binary layouts (docs/protocol.md, "Leaves the L1 contracts
check"); the tests read the raw bytes and also fold their Merkle proofs the way
the Solidity verifier does, from the siblings alone.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from nacl.signing import SigningKey
from test_fl import CREATE_TASK, FL, SCRIPT, D, Honest, init_model, pub, receipt, task_params

from stf import encoding, state_keys
from stf.errors import Code
from stf.fl import settlement
from stf.fl.checks import MIN_PROVABLE_SUPPORT
from stf.fl.contribution import CREDIT_SCALE
from stf.fl.flags import EXACT, STATISTICAL, Flag
from stf.fl.records import CLEAN, NO_EPOCH, Verdict
from stf.fl.rules import EpochRules
from stf.fl.settlement import FundingLeaf
from stf.fl.task import COMPLETE, FINISHED
from stf.smt import SparseMerkleTree, verify_proof
from stf.stakes import SLASHED, STAKED, StakeRecord
from stf.tx import Transaction

ZERO32 = b"\x00" * 32


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def solidity_fold(root: bytes, key: bytes, value: bytes, siblings: tuple[bytes, ...]) -> bool:
    """The L1 contracts' check, written from docs/protocol.md only (no stf.smt)."""
    path = sha(key)
    h = sha(b"\x00" + path + sha(value))
    for d in range(len(siblings) - 1, -1, -1):
        bit = (path[d // 8] >> (7 - d % 8)) & 1
        h = sha(b"\x01" + siblings[d] + h) if bit else sha(b"\x01" + h + siblings[d])
    return h == root


def assert_proven(fl: FL, key: bytes, value: bytes) -> None:
    """``key = value`` under the head's state root, by stf.smt and by the L1's fold."""
    root = fl.root
    proof = SparseMerkleTree(fl.chain.store).prove(root, key)
    assert verify_proof(root, key, value, proof)
    assert not verify_proof(root, key, value + b"\x00", proof)
    assert solidity_fold(root, key, value, proof.siblings)
    assert not solidity_fold(root, key, b"\xff" + value[1:], proof.siblings)


def slash_leaf(fl: FL, tid: bytes, k: SigningKey) -> bytes | None:
    return fl.get(state_keys.slash_evidence(pub(k), tid))


def reward(fl: FL, tid: bytes, k: SigningKey) -> tuple[int, bool] | None:
    raw = fl.get(state_keys.reward_share(tid, pub(k)))
    return None if raw is None else settlement.decode_reward_share(raw)


def noise(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(-127, 128, D).astype(np.int8)


# -- encodings -------------------------------------------------------------------------


def test_binary_layouts() -> None:
    assert settlement.encode_slash_evidence(7, Flag.ZERO | Flag.COPY) == bytes.fromhex(
        "0000000700000003"
    )
    assert settlement.decode_slash_evidence(bytes.fromhex("0000010200000100")) == (258, 256)
    funder = b"\x5a" * 20
    s = settlement.Settlement(settlement.SETTLE_FINISHED, 3, 2**40 + 5, funder, 2**33 + 7)  # type: ignore[arg-type]
    raw = settlement.encode_settlement(s)
    assert raw == (
        b"\x02"
        + (3).to_bytes(4, "big")
        + (2**40 + 5).to_bytes(8, "big")
        + funder
        + (2**33 + 7).to_bytes(8, "big")
    )
    assert len(raw) == 41 and settlement.decode_settlement(raw) == s
    # an unfunded task's leaf names the zero address and bills no bytes
    assert settlement.encode_settlement(settlement.Settlement(1, 0, 0))[13:] == bytes(28)
    f = FundingLeaf(2**255 + 3, 77, True)
    raw = settlement.encode_funding(f)
    assert raw == (2**255 + 3).to_bytes(32, "big") + (77).to_bytes(8, "big") + b"\x01"
    assert settlement.decode_funding(raw) == f
    assert settlement.encode_reward_share(5, True) == bytes.fromhex("0000000501")
    assert settlement.decode_reward_share(bytes.fromhex("0000000900")) == (9, False)
    # the status byte is the L1's (1 complete, 2 finished), mapped from the task record
    assert settlement.SETTLEMENT_STATUS == {COMPLETE: 1, FINISHED: 2}
    for bad in (
        lambda: settlement.encode_slash_evidence(2**32, 1),
        lambda: settlement.encode_slash_evidence(-1, 1),
        lambda: settlement.encode_settlement(settlement.Settlement(0, 1, 1)),
        lambda: settlement.encode_settlement(settlement.Settlement(1, 1, 2**64)),
        lambda: settlement.encode_reward_share(2**32, False),
        lambda: settlement.decode_reward_share(bytes.fromhex("0000000002")),
        lambda: settlement.decode_settlement(b"\x03" + bytes(32)),
        lambda: settlement.decode_settlement(b"\x01" + bytes(12)),  # the former 13 bytes
        lambda: settlement.encode_settlement(settlement.Settlement(1, 1, 1, b"\x01" * 19)),  # type: ignore[arg-type]
        lambda: settlement.encode_funding(FundingLeaf(2**256, 1, False)),
        lambda: settlement.encode_funding(FundingLeaf(1, 2**64, False)),
        lambda: settlement.decode_funding(bytes(40) + b"\x02"),
        lambda: settlement.decode_funding(bytes(40)),
        lambda: settlement.decode_slash_evidence(bytes(9)),
    ):
        with pytest.raises(ValueError):
            bad()


def test_key_layouts() -> None:
    c, t = b"\x11" * 32, b"\x22" * 32
    assert state_keys.slash_evidence(c, t) == b"slash/" + c + t
    assert state_keys.settlement(t) == b"settle/" + t
    assert state_keys.reward_share(t, c) == b"reward/" + t + c
    a = b"\x33" * 20
    assert state_keys.funding(t, a) == b"funding/" + t + a  # type: ignore[arg-type]


# -- a task with every kind of client --------------------------------------------------


class Run:
    """12 clients, f = 2, 3 epochs, 2 strikes to bar:

    * ``hon`` (7): honest every epoch, except ``hon[6]`` who skips epoch 2;
    * ``zero``: a zero update in epoch 0 (exact but not provable: one strike), then nothing;
    * ``noisy``: noise in epochs 0 and 1 (two Krum strikes: barred at epoch 1, stake untouched);
    * ``reformed``: noise in epoch 0 (one strike, which stays), honest in epochs 1 and 2;
    * ``replayer``: honest in epoch 0, resends epoch 0's global step in epoch 1 (provable:
      slashable at epoch 1), then submits nothing (it may not);
    * ``late``: honest in epochs 0 and 1, resends epoch 1's global step in epoch 2 (slashable
      in the last close).

    ``slash_before[ep]`` holds every client's slash leaf in the block before epoch ``ep``
    closed, ``verdicts[ep]`` every verdict right after it closed.
    """

    def __init__(self) -> None:
        self.fl = fl = FL(n_clients=12)
        self.hon = fl.clients[:7]
        self.zero, self.noisy, self.reformed, self.replayer, self.late = fl.clients[7:]
        self.tid = fl.new_task(
            init_model(),
            min_clients=7,
            max_clients=12,
            window=2,
            epochs=3,
            rules=EpochRules(f=2, strikes_to_bar=2),
        )
        fl.join_all(self.tid, fl.clients)
        h = Honest(seed=31)
        rng = np.random.default_rng(32)
        self.flags: list[dict[bytes, int]] = []
        self.slash_before: list[dict[bytes, bytes | None]] = []
        self.verdicts: list[dict[bytes, Verdict | None]] = []
        step: np.ndarray | None = None  # the previous epoch's global step
        for ep in range(3):
            pairs: list[tuple[SigningKey, Any]] = [(k, h.one()) for k in self.hon]
            if ep == 2:
                pairs.pop()  # hon[6] skips the last epoch
            if ep == 0:
                pairs.append((self.zero, np.zeros(D, dtype=np.int8)))
                pairs.append((self.reformed, noise(rng)))
                pairs.append((self.replayer, h.one()))
            else:
                pairs.append((self.reformed, h.one()))
            if ep == 1:
                pairs.append((self.replayer, step))
            if ep < 2:
                pairs.append((self.noisy, noise(rng)))
                pairs.append((self.late, h.one()))
            else:
                pairs.append((self.late, step))
            self.slash_before.append({pub(k): slash_leaf(fl, self.tid, k) for k in fl.clients})
            fl.submit_all(self.tid, ep, pairs)
            if fl.summary(self.tid, ep) is None:
                fl.run_out(self.tid, ep)  # not everyone able to submit did: the windows close it
            summary = fl.summary(self.tid, ep)
            assert summary is not None
            raw = fl.blob(summary.step)
            assert raw is not None
            step = np.frombuffer(raw, dtype=np.int8)
            assert np.count_nonzero(step) >= MIN_PROVABLE_SUPPORT  # resending it is provable
            self.flags.append({pub(k): fl.flags(self.tid, ep, k) for k, _ in pairs})
            self.verdicts.append({pub(k): fl.verdict(self.tid, k) for k in fl.clients})
            self.check_leaves(ep)

    def check_leaves(self, ep: int) -> None:
        """Right after epoch ``ep`` closed, every slash leaf agrees with its verdict."""
        fl, tid = self.fl, self.tid
        for k in fl.clients:
            v = fl.verdict(tid, k)
            leaf = slash_leaf(fl, tid, k)
            if v is None or not v.slashable:  # a barred client has no leaf either
                assert leaf is None
                continue
            reason, when = v.reason, v.epoch
            assert leaf == when.to_bytes(4, "big") + reason.to_bytes(4, "big")
            if when == ep:  # it became slashable in this very close, not earlier
                assert self.slash_before[ep][pub(k)] is None
            else:
                assert self.slash_before[ep][pub(k)] == leaf


@pytest.fixture(scope="module")
def run() -> Run:
    return Run()


def test_run_flags_are_what_the_scenario_needs(run: Run) -> None:
    zero, noisy, reformed = pub(run.zero), pub(run.noisy), pub(run.reformed)
    replayer, late = pub(run.replayer), pub(run.late)
    for ep, flags in enumerate(run.flags):
        for k in run.hon:
            assert flags.get(pub(k), 0) == 0, (ep, Flag(flags[pub(k)]))
    assert Flag(run.flags[0][zero]) & EXACT == Flag.ZERO
    assert run.flags[0][noisy] & STATISTICAL and not run.flags[0][noisy] & EXACT
    assert run.flags[1][noisy] & STATISTICAL and not run.flags[1][noisy] & EXACT
    assert run.flags[0][reformed] & STATISTICAL and not run.flags[0][reformed] & EXACT
    assert run.flags[1][reformed] == run.flags[2][reformed] == 0
    assert run.flags[0][replayer] == 0
    assert Flag(run.flags[1][replayer]) & EXACT == Flag.REPLAY_GLOBAL
    assert run.flags[0][late] == run.flags[1][late] == 0
    assert Flag(run.flags[2][late]) & EXACT == Flag.REPLAY_GLOBAL
    assert noisy not in run.flags[2] and replayer not in run.flags[2]
    assert zero not in run.flags[1] and zero not in run.flags[2]


def test_run_verdicts_strike_bar_and_slash_as_the_policy_says(run: Run) -> None:
    """Strikes for every flag, one off per clean epoch, barred at two, slashable only for the
    provable resend of a global step; every stake record untouched."""
    fl = run.fl
    by_epoch = [{k: run.verdicts[ep][pub(k)] for k in fl.clients} for ep in range(3)]
    one_strike = Verdict(1, False, 0, NO_EPOCH)
    for ep in range(3):
        for k in run.hon:
            assert by_epoch[ep][k] == CLEAN, (ep, by_epoch[ep][k])
        # zero: one strike that never decays, since it stopped submitting
        assert by_epoch[ep][run.zero] == one_strike
    # reformed: struck once; strikes do not decay, so it keeps one, standing, through the end
    assert [by_epoch[ep][run.reformed] for ep in range(3)] == [one_strike] * 3
    # noisy: its second strike bars it, reason the flags of that epoch; barred is final
    barred = Verdict(2, False, run.flags[1][pub(run.noisy)], 1, barred=True)
    assert [by_epoch[ep][run.noisy] for ep in range(3)] == [one_strike, barred, barred]
    assert barred.reason & int(STATISTICAL) == barred.reason
    # the resends of a global step: slashable at once, with no strike before
    replay = int(Flag.REPLAY_GLOBAL)
    assert [by_epoch[ep][run.replayer] for ep in range(3)] == [
        CLEAN,
        Verdict(0, True, replay, 1),
        Verdict(0, True, replay, 1),
    ]
    assert [by_epoch[ep][run.late] for ep in range(3)] == [
        CLEAN,
        CLEAN,
        Verdict(0, True, replay, 2),
    ]
    for k in fl.clients:  # verdicts are the rollup's; a slash happens on the L1
        assert read_stake(fl, pub(k)).status == STAKED


def test_slash_leaf_appears_when_the_verdict_becomes_slashable(run: Run) -> None:
    fl, tid = run.fl, run.tid
    replay = int(Flag.REPLAY_GLOBAL)
    # replayer: slashable in epoch 1, reason REPLAY_GLOBAL; late: in epoch 2, the last close
    leaf = slash_leaf(fl, tid, run.replayer)
    assert leaf == (1).to_bytes(4, "big") + replay.to_bytes(4, "big")
    assert settlement.decode_slash_evidence(leaf) == (1, replay)
    assert run.slash_before[1][pub(run.replayer)] is None
    assert run.slash_before[2][pub(run.replayer)] == leaf
    leaf = slash_leaf(fl, tid, run.late)
    assert leaf == (2).to_bytes(4, "big") + replay.to_bytes(4, "big")
    assert run.slash_before[2][pub(run.late)] is None
    # strikes, even enough to bar (noisy), are not slashable; honest clients never have a leaf
    for k in (*run.hon, run.zero, run.noisy, run.reformed):
        assert slash_leaf(fl, tid, k) is None
    # final: later blocks do not touch it
    before = {k: slash_leaf(fl, tid, k) for k in (run.replayer, run.late)}
    fl.empty(3)
    assert {k: slash_leaf(fl, tid, k) for k in (run.replayer, run.late)} == before


def test_slash_leaf_proof_verifies_against_the_state_root(run: Run) -> None:
    fl, tid = run.fl, run.tid
    for k in (run.replayer, run.late):
        leaf = slash_leaf(fl, tid, k)
        assert leaf is not None
        assert_proven(fl, state_keys.slash_evidence(pub(k), tid), leaf)
    # an honest client's absence is provable too, and so is a barred one's
    root = fl.root
    for k in (run.hon[0], run.noisy):
        key = state_keys.slash_evidence(pub(k), tid)
        proof = SparseMerkleTree(fl.chain.store).prove(root, key)
        assert verify_proof(root, key, None, proof)
        assert not verify_proof(root, key, bytes(8), proof)


def credits_of(run: Run, k: SigningKey) -> list[int]:
    """The credit of each of ``k``'s epoch records, in epoch order."""
    return [run.fl.record(run.tid, ep, k).credit for ep, f in enumerate(run.flags) if pub(k) in f]


def test_reward_shares_sum_credits_and_stick_flagged_when_excluded(run: Run) -> None:
    fl, tid = run.fl, run.tid
    full = CREDIT_SCALE  # an unflagged update of the task's first epoch
    for k in run.hon[:6]:
        c = credits_of(run, k)
        assert c[0] == full and len(c) == 3 and reward(fl, tid, k) == (sum(c), False)
    assert reward(fl, tid, run.zero) == (0, False)  # its one update was flagged: a strike only
    assert reward(fl, tid, run.noisy) == (0, True)  # barred: forfeits its share
    # flagged in epoch 0: no credit there, only for its later, used updates
    assert credits_of(run, run.reformed)[0] == 0
    assert reward(fl, tid, run.reformed) == (sum(credits_of(run, run.reformed)), False)
    assert reward(fl, tid, run.replayer) == (full, True)  # slashable: its epoch 0 forfeited
    assert reward(fl, tid, run.late)[1]  # type: ignore[index]
    # the raw 5 bytes, and their proof
    raw = fl.get(state_keys.reward_share(tid, pub(run.hon[0])))
    assert raw == sum(credits_of(run, run.hon[0])).to_bytes(4, "big") + b"\x00"
    assert_proven(fl, state_keys.reward_share(tid, pub(run.hon[0])), raw)
    raw = fl.get(state_keys.reward_share(tid, pub(run.replayer)))
    assert raw == full.to_bytes(4, "big") + b"\x01"
    assert_proven(fl, state_keys.reward_share(tid, pub(run.replayer)), raw)
    # recomputed from the epoch records and the verdicts: a flagged record has no credit
    for k in fl.clients:
        mine = [f[pub(k)] for f in run.flags if pub(k) in f]
        c = credits_of(run, k)
        assert all(cr == 0 for cr, fl_ in zip(c, mine, strict=True) if fl_)
        v = fl.verdict(tid, k)
        assert v is not None
        assert reward(fl, tid, k) == (sum(c), not v.standing)


def test_settlement_written_when_the_last_epoch_closes(run: Run) -> None:
    fl, tid = run.fl, run.tid
    task = fl.task(tid)
    assert (task.status, task.epoch) == (FINISHED, 3)
    raw = fl.get(state_keys.settlement(tid))
    assert raw is not None
    # the honest clients' credits and reformed's; zero has none; noisy (barred), replayer and
    # late (slashable) forfeit theirs
    total = sum(sum(credits_of(run, k)) for k in (*run.hon, run.reformed))
    assert raw == b"\x02" + (3).to_bytes(4, "big") + total.to_bytes(8, "big") + bytes(28)
    assert settlement.decode_settlement(raw) == settlement.Settlement(2, 3, total)
    assert_proven(fl, state_keys.settlement(tid), raw)
    # a report reaching the target after the end changes nothing
    hit = fl.report(fl.requester, tid, 2, 999_999)
    assert receipt(fl.block(hit), hit) == (1, 0)
    assert fl.get(state_keys.settlement(tid)) == raw
    assert fl.task(tid).status == FINISHED


def test_settlement_is_not_written_before_the_task_stops() -> None:
    fl = FL(n_clients=5)
    tid = fl.new_task(min_clients=5, max_clients=5, epochs=2)
    fl.join_all(tid, fl.clients)
    h = Honest(seed=41)
    fl.submit_all(tid, 0, [(k, h.one()) for k in fl.clients])
    assert fl.get(state_keys.settlement(tid)) is None
    fl.submit_all(tid, 1, [(k, h.one()) for k in fl.clients])
    total = sum(fl.record(tid, ep, k).credit for ep in (0, 1) for k in fl.clients)
    assert total >= 5 * CREDIT_SCALE  # epoch 0 alone pays five full credits
    leaf = b"\x02" + (2).to_bytes(4, "big") + total.to_bytes(8, "big") + bytes(28)
    assert fl.get(state_keys.settlement(tid)) == leaf


def test_settlement_written_once_when_the_target_is_reported() -> None:
    fl = FL(n_clients=6)
    hon, zero = fl.clients[:5], fl.clients[5]
    tid = fl.new_task(min_clients=5, max_clients=6, window=2, epochs=5, target=900_000)
    fl.join_all(tid, fl.clients)
    h = Honest(seed=42)
    fl.submit_all(tid, 0, [*((k, h.one()) for k in hon), (zero, np.zeros(D, dtype=np.int8))])
    low = fl.report(fl.requester, tid, 0, 899_999)
    assert receipt(fl.block(low), low) == (1, 0)
    assert fl.get(state_keys.settlement(tid)) is None
    fl.submit_all(tid, 1, [(k, h.one()) for k in hon])
    fl.run_out(tid, 1)  # zero (one strike) could submit and does not: the window closes epoch 1
    assert fl.task(tid).epoch == 2
    assert fl.get(state_keys.settlement(tid)) is None
    hit = fl.report(fl.evaluator, tid, 1, 900_000)
    assert receipt(fl.block(hit), hit) == (1, 0)
    assert fl.task(tid).status == COMPLETE
    raw = fl.get(state_keys.settlement(tid))
    # two epochs trained; the zero sender's one update is flagged and does not count, and one
    # strike does not exclude it (a share of 0, not flagged)
    total = sum(fl.record(tid, ep, k).credit for ep in (0, 1) for k in hon)
    assert raw == b"\x01" + (2).to_bytes(4, "big") + total.to_bytes(8, "big") + bytes(28)
    assert reward(fl, tid, zero) == (0, False)
    assert fl.verdict(tid, zero) == Verdict(1, False, 0, NO_EPOCH)
    assert_proven(fl, state_keys.settlement(tid), raw)
    # a repeated report (it fails) and a late submission leave it alone
    again = fl.report(fl.requester, tid, 1, 950_000)
    late = fl.submit(hon[0], tid, 2, h.one())
    result = fl.block(again, late)
    assert receipt(result, again) == (0, Code.ALREADY_EVALUATED)
    assert receipt(result, late) == (0, Code.TASK_CLOSED)
    fl.empty(3)
    assert fl.get(state_keys.settlement(tid)) == raw


def test_failed_report_does_not_settle() -> None:
    """A report in a failing transaction is rolled back with its settlement leaf."""
    fl = FL(n_clients=5)
    tid = fl.new_task(min_clients=5, max_clients=5, epochs=3, target=500_000)
    fl.join_all(tid, fl.clients)
    fl.submit_all(tid, 0, [(k, Honest(seed=43).one()) for k in fl.clients])
    by_outsider = fl.report(fl.outsider, tid, 0, 999_999)
    assert receipt(fl.block(by_outsider), by_outsider) == (0, Code.NOT_AUTHORIZED)
    assert fl.get(state_keys.settlement(tid)) is None


# -- the fund deposit ------------------------------------------------------------------


def funding(fl: FL, tid: bytes, funder: bytes) -> FundingLeaf | None:
    raw = fl.get(state_keys.funding(tid, funder))  # type: ignore[arg-type]
    return None if raw is None else settlement.decode_funding(raw)


def read_stake(fl: FL, client: bytes) -> StakeRecord:
    raw = fl.get(state_keys.stake(client))  # type: ignore[arg-type]
    assert raw is not None
    return StakeRecord.decode(raw)


WINDOW = 6
ALICE, MALLORY = b"\xaa" * 20, b"\xee" * 20


UPLOADER = b"\x0b" * 20


def signed_create(
    fl: FL,
    funder: bytes | None = None,
    front_run: bytes | None = None,
    paid_by: bytes | None = None,
    **kw: Any,
) -> Transaction:
    """A requester's create_task, signed but not sent: its hash is the task id to fund. Its
    model and script are uploaded first: bare on a chain without funding; on a funded chain
    against ``funder``'s funding of the id (recorded here first), or against ``paid_by``'s
    (by default, without a funder, a 1-wei funding of an uploader's own: a funded chain takes a
    blob only for a task);
    ``front_run`` funds the id with 1 wei just before ``funder`` does, in the same block."""
    model = init_model().tobytes()
    first = fl.skip(fl.requester, 2)
    if funder is not None:
        kw["funder"] = funder
    kw.setdefault("min_clients", 5)
    kw.setdefault("max_clients", 5)
    create = fl.create(task_params(sha(model), sha(SCRIPT), **kw))
    if fl.config.limits.funding_window_blocks == 0:
        fl.block(fl.put_blob(fl.requester, model, nonce=first))
        fl.block(fl.put_blob(fl.requester, SCRIPT, nonce=first + 1))
        return create
    payer = paid_by or funder or UPLOADER
    first_in = [fl.deposit("fund", [create.hash, front_run, 1])] if front_run else []
    fl.block(*first_in, fl.deposit("fund", [create.hash, payer, 7]))
    # a pre-task upload draws on the funding its create_task names: one paid by another
    # account goes up for a carrier task of the requester's that names that account (never
    # created), so that the blobs exist and the create itself meets its funding rule
    carrier = create
    if payer != funder:
        params = task_params(sha(model), sha(SCRIPT), name="carrier", funder=payer)
        carrier = fl.tx(fl.requester, CREATE_TASK, params, nonce=10**6)
        fl.block(fl.deposit("fund", [carrier.hash, payer, 7]))
    fl.block(
        fl.put_blob(fl.requester, model, carrier.hash, payer, first, carrier),
        fl.put_blob(fl.requester, SCRIPT, carrier.hash, payer, first + 1, carrier),
    )
    return create


def test_fund_records_each_funder_once() -> None:
    fl = FL(n_clients=5, funding_window=WINDOW)
    tid = sha(b"some task id")
    fund = fl.deposit("fund", [tid, ALICE, 10**18])
    assert receipt(fl.block(fund), fund) == (1, 0)
    assert funding(fl, tid, ALICE) == FundingLeaf(10**18, fl.height + WINDOW, False)
    # anyone may fund any id: a second funder has its own funding, the first is untouched
    other = fl.deposit("fund", [tid, MALLORY, 1])
    assert receipt(fl.block(other), other) == (1, 0)
    assert funding(fl, tid, MALLORY) == FundingLeaf(1, fl.height + WINDOW, False)
    assert funding(fl, tid, ALICE) == FundingLeaf(10**18, fl.height - 1 + WINDOW, False)
    again = fl.deposit("fund", [tid, ALICE, 5])  # the L1 refuses this first (FundingExists)
    result = fl.block(again)
    assert receipt(result, again) == (0, Code.TASK_ALREADY_FUNDED)
    assert funding(fl, tid, ALICE) == FundingLeaf(10**18, fl.height - 2 + WINDOW, False)
    # the event was consumed all the same
    assert encoding.decode(fl.get(state_keys.L1_LAST_EVENT)) == [3, 0]  # type: ignore[arg-type]


def test_a_huge_funding_window_cannot_halt_the_chain() -> None:
    """Red team: with height + window past 2^64 the leaf did not encode, so no block holding the
    fund deposit could be built (deposits go in order: the chain halted). bind_by saturates."""
    fl = FL(n_clients=5, funding_window=2**64 - 1)
    fund = fl.deposit("fund", [sha(b"t"), ALICE, 7])
    assert receipt(fl.block(fund), fund) == (1, 0)
    assert funding(fl, sha(b"t"), ALICE) == FundingLeaf(7, 2**64 - 1, False)


def test_a_funded_chain_refuses_an_unfunded_task() -> None:
    """The squatting attack: on a chain with an L1 RewardManager every slot must have cost its
    requester BASE_FEE, so a create_task that names no recorded funding fails (the former code
    let an unstaked key take all 64 slots for free)."""
    fl = FL(n_clients=5, funding_window=WINDOW)
    create = signed_create(fl)
    assert receipt(fl.block(create), create) == (0, Code.TASK_NOT_FUNDED)
    assert fl.get(state_keys.task(create.hash)) is None
    named = signed_create(fl, funder=ALICE, paid_by=UPLOADER)  # Alice's never arrived
    result = fl.block(named)
    assert receipt(result, named) == (0, Code.TASK_NOT_FUNDED)
    assert "recorded no L1 funding" in result.receipts[0].message
    # on a chain without an L1 a task may still name no funder (nothing to pay, nothing to cost)
    free = FL(n_clients=5)
    create = signed_create(free)
    assert receipt(free.block(create), create) == (1, 0)


def test_the_create_task_binds_the_funding_it_names() -> None:
    fl = FL(n_clients=5, funding_window=WINDOW)
    # the front-run: Mallory sees the id funded on the L1 and funds it first with 1 wei
    create = signed_create(fl, funder=ALICE, front_run=MALLORY)
    tid = create.hash  # the task id is known before the task is created
    bind_by = fl.height - 1 + WINDOW  # funded, then the uploads in the next block
    assert receipt(fl.block(create), create) == (1, 0)
    assert fl.task(tid).params.funder == ALICE
    assert funding(fl, tid, ALICE) == FundingLeaf(7, bind_by, True)
    assert funding(fl, tid, MALLORY) == FundingLeaf(1, bind_by, False)
    # a funding that arrives once the task exists can never be bound: it lapses at once
    late = fl.deposit("fund", [tid, b"\x0c" * 20, 9])
    fl.block(late)
    assert funding(fl, tid, b"\x0c" * 20) == FundingLeaf(9, fl.height, False)


def test_a_funding_lapses_after_its_window() -> None:
    fl = FL(n_clients=5, funding_window=WINDOW)
    create = signed_create(fl, funder=ALICE)
    bind_by = fl.height - 1 + WINDOW
    fl.empty(WINDOW - 1)
    assert fl.height == bind_by  # the last height it may still be bound at...
    fl.empty()
    result = fl.block(create)  # ...so one block later the create_task fails
    assert receipt(result, create) == (0, Code.TASK_NOT_FUNDED)
    assert f"lapsed at height {bind_by}" in result.receipts[0].message
    assert funding(fl, create.hash, ALICE) == FundingLeaf(7, bind_by, False)  # reclaimable


def test_a_funding_binds_up_to_its_last_height() -> None:
    fl = FL(n_clients=5, funding_window=WINDOW)
    create = signed_create(fl, funder=ALICE)
    fl.empty(WINDOW - 2)
    assert receipt(fl.block(create), create) == (1, 0)  # at height bind_by exactly
    assert funding(fl, create.hash, ALICE).bound  # type: ignore[union-attr]


def test_the_settlement_names_the_bound_funder() -> None:
    fl = FL(n_clients=5, funding_window=WINDOW)
    create = signed_create(fl, funder=ALICE, epochs=1)
    assert receipt(fl.block(create), create) == (1, 0)
    tid = create.hash
    fl.join_all(tid, fl.clients)
    h = Honest(seed=3)
    fl.submit_all(tid, 0, [(k, h.one()) for k in fl.clients])
    raw = fl.get(state_keys.settlement(tid))
    assert raw is not None
    assert settlement.decode_settlement(raw) == settlement.Settlement(2, 1, 5 * CREDIT_SCALE, ALICE)  # type: ignore[arg-type]


def test_malformed_fund_deposits_are_dropped() -> None:
    fl = FL(n_clients=5)
    bad: list[list[Any]] = [
        [b"\x01" * 31, b"\xaa" * 20, 1],  # short task id
        [b"\x01" * 32, b"\xaa" * 32, 1],  # a 32-byte address
        [b"\x01" * 32, b"\xaa" * 20, 0],  # zero deposit
        [b"\x01" * 32, b"\xaa" * 20],  # missing deposit
        [b"\x01" * 32, b"\xaa" * 20, 1, 2],  # extra argument
    ]
    for args in bad:
        tx = fl.deposit("fund", args)
        result = fl.chain.build([tx])
        assert result.receipts == []
        assert [exc.code for _, exc in result.dropped] == [Code.INVALID_PAYLOAD], args
        fl._deposits -= 1  # reuse the nonce: nothing was included


def test_stake_for_a_slashed_key_fails() -> None:
    fl = FL(n_clients=5)
    k = pub(fl.clients[0])
    slash = fl.deposit("slash", [k])
    restake = fl.stake(fl.clients[0], b"\x09" * 20, 1000)
    result = fl.block(slash, restake)
    assert receipt(result, slash) == (1, 0)
    assert receipt(result, restake) == (0, Code.KEY_ALREADY_BOUND)
    assert read_stake(fl, k) == StakeRecord(b"\x01" * 20, 1000, SLASHED)  # type: ignore[arg-type]
    # in a later block too
    later = fl.stake(fl.clients[0], b"\x01" * 20, 1000)
    assert receipt(fl.block(later), later) == (0, Code.KEY_ALREADY_BOUND)
    assert read_stake(fl, k).status == SLASHED


# -- replay ----------------------------------------------------------------------------


def test_replay_from_genesis_gives_the_same_roots(run: Run) -> None:
    fl = run.fl
    fund = fl.deposit("fund", [sha(b"any id"), b"\xdd" * 20, 3])
    fl.block(fund)
    store = fl.replay_from_genesis()
    assert store.data == fl.chain.store.data
    for prefix in (b"slash/", b"settle/", b"reward/", b"funding/"):
        assert any(k.startswith(b"s:" + prefix) for k in store.data), prefix
    # an independent run of the same scenario reaches the same roots
    again = Run()
    n = len(again.fl.chain.blocks)
    assert [b.header.state_root for b in again.fl.chain.blocks] == [
        b.header.state_root for b in fl.chain.blocks[:n]
    ]
