"""One federated run for ``bench/detection.py``: the STF's epoch close or a baseline aggregator.

The STF is reached only through its public functions (``evaluate_epoch``, ``next_verdict``,
``EpochRules``, ``Verdict`` / ``CLEAN``, ``flag_names``), so this keeps working while the rules
inside change. Every epoch the active clients train from the current global model and send
int8 updates, honest clients first, attackers last (each attacker gets an
:class:`attacks.View`). Under the STF a barred or slashable client is out for good; a flagged
one is left out of that epoch's aggregate. Rewards are counted as the reward leaf does
(``stf/fl/settlement.py``): ``accepted`` sums a client's reward credits (``ClientResult.credit``,
:mod:`stf.fl.contribution`), a ``flagged`` bit sticks once it is barred or slashable, and only
clients without it share the reward, in proportion to ``accepted``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from attacks import AttackFn, View, to_int8
from baselines import Aggregate
from fl_sim import Task, quantize

from stf.fl.flags import flag_names
from stf.fl.judge import evaluate_epoch, next_verdict
from stf.fl.records import CLEAN, Verdict
from stf.fl.rules import EpochRules

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]


@dataclass
class RunResult:
    """What one run ends with; the counters are over all epochs."""

    acc: float = 0.0
    asr: float = 0.0  # backdoor success on triggered test inputs
    honest: int = 0
    attackers: int = 0
    honest_slashed: int = 0  # slashable: the stake is lost
    honest_barred: int = 0  # barred from the task: no more updates or reward, stake kept
    att_slashed: int = 0
    att_caught: int = 0  # barred or slashable: out of the task
    honest_flagged: Counter[str] = field(default_factory=Counter)  # flagged epochs per reason
    honest_slash_reasons: Counter[str] = field(default_factory=Counter)
    honest_bar_reasons: Counter[str] = field(default_factory=Counter)
    att_reasons: Counter[str] = field(default_factory=Counter)
    reward_honest: float = 0.0  # mean reward weight (credits; 0 if barred/slashable)
    reward_att: float = 0.0
    reward_low: float = 0.0  # least-paid honest client still in, over the honest median


@dataclass
class Chain:
    """The STF's per-client state across epochs: verdicts, own last update, reward leaf."""

    verdicts: dict[int, Verdict]
    prev_own: dict[int, I8 | None]
    accepted: Counter[int] = field(default_factory=Counter)
    flagged: set[int] = field(default_factory=set)
    prev_global: npt.NDArray[np.int16] | None = None


def honest_rows(task: Task, w: F64, ids: list[int], e: int, scale: float) -> dict[int, I8]:
    return {i: quantize(task.local_delta(w, i, e), task.shift) for i in ids}


def attacker_rows(
    task: Task,
    fn: AttackFn,
    omniscient: bool,
    att_ids: list[int],
    base: dict[str, Any],
) -> dict[int, I8]:
    """Each attacker's update, built from its :class:`View` (colluders see each other's)."""
    out: dict[int, I8] = {}
    w, e, scale = base["w"], base["epoch"], float(2**task.shift)
    for i in att_ids:

        def train(i: int = i, **kw: Any) -> F64:
            return np.asarray(task.local_delta(w, i, e, **kw) * scale)

        view = View(
            epoch=e,
            client=i,
            attackers=tuple(att_ids),
            n_clients=base["n"],
            base=w,
            shift=task.shift,
            rules=base["rules"],
            prev_globals=base["prev_globals"],
            history=base["history"],
            colluders_now=list(out.values()),
            current=base["current"] if omniscient else None,
            train=train,
            rng=task.rng(e, i, salt=7),
        )
        out[i] = to_int8(fn(view))
    return out


def stf_step(
    chain: Chain,
    q: I8,
    ids: list[int],
    att: set[int],
    e: int,
    rules: EpochRules,
    res: RunResult,
    reference: I8 | None = None,
) -> F64:
    """One epoch close through the public STF functions; folds verdicts and the reward leaf.
    ``reference``: the requester's reference update (:mod:`stf.fl.reference`), if it sends one."""
    own = [chain.prev_own[i] for i in ids]
    out = evaluate_epoch(q, rules, chain.prev_global, own, reference=reference)
    for k, i in enumerate(ids):
        flags = out.clients[k].flags
        if i not in att:
            res.honest_flagged.update(flag_names(flags))
        chain.accepted[i] += out.clients[k].credit  # the reward leaf sums credits
        v = next_verdict(chain.verdicts[i], flags, e, rules)
        if chain.verdicts[i].standing and not v.standing:
            chain.flagged.add(i)  # barred or slashable: the whole share is forfeit
            reasons = flag_names(v.reason)
            if i in att:
                res.att_reasons.update(reasons)
            else:
                (res.honest_slash_reasons if v.slashable else res.honest_bar_reasons).update(
                    reasons
                )
        chain.verdicts[i] = v
        chain.prev_own[i] = q[k]
    chain.prev_global = out.aggregate.astype(np.int16)
    return np.asarray(out.aggregate, dtype=np.float64)


def settle(res: RunResult, chain: Chain, clients: list[int], att: set[int]) -> None:
    """Slash and bar counts, and the reward leaf's weights (credits, 0 once out)."""

    def weight(i: int) -> float:
        return 0.0 if i in chain.flagged else float(chain.accepted[i])

    hon = [i for i in clients if i not in att]
    res.honest_slashed = sum(chain.verdicts[i].slashable for i in hon)
    res.honest_barred = sum(chain.verdicts[i].barred for i in hon)
    res.att_slashed = sum(chain.verdicts[i].slashable for i in att)
    res.att_caught = sum(not chain.verdicts[i].standing for i in att)
    res.reward_honest = float(np.mean([weight(i) for i in hon])) if hon else 0.0
    res.reward_att = float(np.mean([weight(i) for i in att])) if att else 0.0
    kept = [weight(i) for i in hon if i not in chain.flagged]
    med = float(np.median(kept)) if kept else 0.0
    res.reward_low = min(kept) / med if med > 0 else 0.0


def run(
    task: Task,
    clients: list[int],
    attackers: set[int],
    fn: AttackFn | None,
    omniscient: bool,
    epochs: int,
    rules: EpochRules,
    agg: Aggregate | None,
    reference: bool = False,
) -> RunResult:
    """``agg=None``: the STF decides (verdicts, slashing), with the requester's reference
    update (its root data, as FLTrust's) every epoch if ``reference``; else the baseline
    ``agg(rows, f)``."""
    scale = float(2**task.shift)
    w = task.init.copy()
    chain = Chain({i: CLEAN for i in clients}, {i: None for i in clients})
    prev_globals: list[F64] = []
    history: list[dict[int, I8]] = []
    res = RunResult(honest=len(clients) - len(attackers), attackers=len(attackers))
    for e in range(epochs):
        ids = [i for i in clients if chain.verdicts[i].standing]
        if not ids:
            break
        hon_ids = [i for i in ids if i not in attackers]
        hon = honest_rows(task, w, hon_ids, e, scale)
        att_ids = [i for i in ids if i in attackers]
        base = {
            "w": w,
            "epoch": e,
            "n": len(ids),
            "rules": rules,
            "prev_globals": prev_globals,
            "history": history,
            "current": list(hon.values()),
        }
        att = attacker_rows(task, fn, omniscient, att_ids, base) if fn and att_ids else {}
        order = hon_ids + att_ids
        rows = {**hon, **att}
        q = np.stack([rows[i] for i in order])
        if agg is None:
            root = quantize(task.root_delta(w, e), task.shift) if reference else None
            step = stf_step(chain, q, order, attackers, e, rules, res, root)
        elif getattr(agg, "needs_reference", False):  # FLTrust: the requester's root update
            ref = np.asarray(task.root_delta(w, e) * scale)
            step = agg(q.astype(np.float64), rules.f, ref)  # type: ignore[call-arg]
        else:
            step = agg(q.astype(np.float64), rules.f)
        w = w + step / scale
        prev_globals.append(step)
        history.append(rows)
    res.acc = task.accuracy(w)
    res.asr = task.backdoor_success(w)
    settle(res, chain, clients, attackers)
    return res
