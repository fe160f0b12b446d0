"""Attacks for ``bench/detection.py``: what an attacker sends, from what the chain makes public.

Every attack is a function ``attack(view: View) -> np.ndarray`` returning the update **in
quantized units** (the int8 grid of the task's shift: an int8 array is sent as is, a float
array is rounded and clipped to [-127, 127]). ``View`` holds what a client can read from the
chain when it submits: the epoch, the base model, the earlier global steps, every earlier
epoch's updates by client (they are on chain), the published rules, its own training, and
the updates the colluding attackers already sent this epoch. Only an **omniscient** attack
also gets ``view.current``: this epoch's honest updates. Updates are committed before any is
revealed (commit-reveal), so no client can read them on chain: omniscience is the papers'
worst case (a leak), kept here because robust aggregation must hold even then.

Attackers know every threshold in ``view.rules`` (:class:`stf.fl.rules.EpochRules`): the
colluding ones spread their updates to pairwise cosine ``collusion_cos(rules)`` (0.99, below
``near_copy_cos``) so that no copy check fires. Built-in attacks (``*`` = omniscient):

* ``signflip`` -4 x its own honest update; ``gauss`` N(0, (10 x its own RMS)^2);
  ``labelflip`` trains on 9 - y; ``signflip_adaptive`` its update negated, turned slowly so
  that its own past excuses it, and scaled to just under the outlier rule as the STF itself
  would judge last epoch's public updates with it (a red team's attack, 2026-12-02);
* ``alie``* Baruch et al. 2019: mean - z_max x std, ``s = floor(n/2 + 1) - m``,
  ``z_max = Phi^-1((n - s) / n)``; ``ipm0.5``* / ``ipm10``* Xie et al. 2019: -eps x mean;
* ``minmax``* / ``minsum``* Shejwalkar & Houmansadr 2021: mean - gamma x std with their
  gamma search (largest gamma whose max distance / sum of squared distances to the honest
  updates stays within the honest maximum);
* ``fang_krum``* Fang et al. 2020 (full knowledge, on Krum with the rules' f): -lambda x
  sign(mean), lambda from their upper bound, halved until Krum picks it with the other
  attackers as supporters;
* ``cartel`` the last global step, negated and scaled to the median public norm, every
  member at cosine 0.99 to the others;
* ``backdoor`` Bagdasaryan et al. 2020: half its samples stamped with a pixel trigger and
  relabelled 0, the update boosted by n/m (model replacement), capped at 2x the median public
  norm of the last epoch (so that the Krum score stays under ``krum_ratio``);
  ``backdoor_matched`` the same capped at 1x (an attacker that reads the published norms);
* free riders, honest in epoch 0 (nothing public to imitate yet): ``fr_zero``; ``fr_copy``
  the free riders share one update (the first trains, the others resend it: under commit-reveal
  the only copy there is; an honest update cannot be read in time); ``fr_disguised`` noise at the median
  public norm; ``fr_delta`` the last global step resent; ``fr_mean_noise`` the mean of the
  last epoch's updates at the median norm plus noise (cosine ~0.9 to it); ``fr_global_cos``
  the last global step at cosine 0.99 (under ``global_echo_cos``); ``fr_stale_peer`` a
  random peer's update of the last epoch; ``fr_scaled_copy`` 0.85 x the first free rider's
  update (the red-team's near copy that kept under the old 81% norm-ratio gate);
  ``fr_persistent`` knows the credit rule (:mod:`stf.fl.contribution`): the last global step
  at cosine 0.9 plus a private random direction it keeps every epoch, so that its innovation
  persists like an honest client's; ``fr_centre`` the mean of the smaller half of last epoch's
  honest updates at their median norm, the colluders at cosine 0.97, turned slowly from its
  own last update (a red team's, 2026-12-02: central, small, self-consistent).

Bring your own (``--attack-file PATH [--omniscient]``): a file defining ``attack(view)``;
see ``bench/attacks_example.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from plugin import load_function

from stf import robust
from stf.fl.checks import epoch_view, krum_f, outlier_flag
from stf.fl.rules import EpochRules

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]


@dataclass(frozen=True)
class View:
    """What the chain makes public to a client at submit time (plus its own training)."""

    epoch: int
    client: int  # this attacker's client index
    attackers: tuple[int, ...]  # the colluding clients, in submission order
    n_clients: int  # clients submitting this epoch
    base: F64  # the model this epoch trains from (float weights)
    shift: int  # quantized unit = 2**-shift
    rules: EpochRules
    prev_globals: list[F64]  # earlier global steps in quantized units, oldest first
    history: list[dict[int, I8]]  # earlier epochs' updates, by client index
    colluders_now: list[I8]  # what the other attackers already sent this epoch
    current: list[I8] | None  # this epoch's honest updates; omniscient attacks only
    train: Callable[
        ..., F64
    ]  # own honest training, quantized units: train(flip_labels=, backdoor=)
    rng: np.random.Generator

    @property
    def d(self) -> int:
        return int(self.base.shape[0])

    @property
    def m(self) -> int:
        return len(self.attackers)


AttackFn = Callable[[View], npt.NDArray[np.generic]]

OMNISCIENT = frozenset({"alie", "ipm0.5", "ipm10", "minmax", "minsum", "fang_krum"})
PROVABLE_OFFENCES = ("fr_delta",)  # an exact resend of the global step: slashed, recall 1
EXACT_OFFENCES = ("fr_zero", "fr_copy")  # exact but not proof: barred by strikes, recall 1
FREE_RIDERS = (
    "fr_zero",
    "fr_copy",
    "fr_disguised",
    "fr_delta",
    "fr_mean_noise",
    "fr_global_cos",
    "fr_stale_peer",
    "fr_scaled_copy",
    "fr_persistent",
    "fr_centre",
)
BACKDOORS = ("backdoor", "backdoor_matched")


def collusion_cos(rules: EpochRules) -> float:
    """The pairwise cosine colluders keep: 0.99, or just under the published near-copy bound."""
    num, den = rules.near_copy_cos
    return min(0.99, num / den - 0.005)


def spread(v: F64, rng: np.random.Generator, cos: float) -> F64:
    """``v`` plus independent noise so two spread copies have cosine ~``cos``, same norm."""
    t = math.sqrt(max(1.0 / cos - 1.0, 0.0))
    noise = rng.normal(0.0, 1.0, v.shape)
    norm = float(np.linalg.norm(v))
    out = v + noise * (t * norm / max(float(np.linalg.norm(noise)), 1e-12))
    return np.asarray(out * (norm / max(float(np.linalg.norm(out)), 1e-12)))


def honest_mat(view: View) -> F64:
    if view.current is None:
        raise ValueError("this attack is omniscient: it needs view.current")
    if not view.current:  # every honest client is out of the task: nothing left to read
        return np.zeros((1, view.d))
    return np.stack(view.current).astype(np.float64)


def median_public_norm(view: View) -> float:
    """The median norm of the last epoch's updates; own training's norm in epoch 0."""
    if not view.history:
        return float(np.linalg.norm(view.train()))
    return float(
        np.median([np.linalg.norm(u.astype(np.float64)) for u in view.history[-1].values()])
    )


def baruch_z(n: int, m: int) -> float:
    """z_max of Baruch et al. 2019: the most supporters a majority can still be pulled by."""
    from statistics import NormalDist

    s = math.floor(n / 2 + 1) - m
    return NormalDist().inv_cdf(min(max((n - s) / n, 1e-6), 1 - 1e-6))


def alie(view: View) -> F64:
    h = honest_mat(view)
    z = baruch_z(view.n_clients, view.m)
    return spread(h.mean(0) - z * h.std(0), view.rng, collusion_cos(view.rules))


def ipm(eps: float) -> AttackFn:
    def run(view: View) -> F64:
        return spread(-eps * honest_mat(view).mean(0), view.rng, collusion_cos(view.rules))

    return run


def gamma_search(h: F64, ok: Callable[[F64], bool]) -> F64:
    """Shejwalkar & Houmansadr's search: the largest gamma with ``ok(mean - gamma * std)``."""
    mu, dev = h.mean(0), h.std(0)
    gamma, step, good = 10.0, 10.0, 0.0
    while abs(good - gamma) > 1e-5:
        if ok(mu - gamma * dev):
            good = gamma
            gamma += step / 2
        else:
            gamma -= step / 2
        step /= 2
    return np.asarray(mu - good * dev)


def sq_dists(h: F64, v: F64) -> F64:
    return np.asarray(((h - v) ** 2).sum(1))


def pairwise_sq(h: F64) -> F64:
    sq = (h * h).sum(1)
    return np.asarray(np.maximum(sq[:, None] + sq[None, :] - 2 * h @ h.T, 0.0))


def minmax(view: View) -> F64:
    h = honest_mat(view)
    bound = pairwise_sq(h).max()
    v = gamma_search(h, lambda x: bool(sq_dists(h, x).max() <= bound))
    return spread(v, view.rng, collusion_cos(view.rules))


def minsum(view: View) -> F64:
    h = honest_mat(view)
    bound = pairwise_sq(h).sum(1).max()
    v = gamma_search(h, lambda x: bool(sq_dists(h, x).sum() <= bound))
    return spread(v, view.rng, collusion_cos(view.rules))


def krum_pick(rows: F64, f: int) -> int:
    n = rows.shape[0]
    k = max(1, n - f - 2)
    dist = pairwise_sq(rows)
    scores = [np.sort(np.delete(dist[i], i))[:k].sum() for i in range(n)]
    return int(np.argmin(scores))


def fang_krum(view: View) -> F64:
    """Fang et al. 2020's full-knowledge attack on Krum, in update space (w_re = 0)."""
    h = honest_mat(view)
    d, m, f = view.d, view.m, view.rules.f
    s = np.sign(h.mean(0))
    c = h.shape[0]
    k = max(1, c - f - 2)
    dist = np.sqrt(pairwise_sq(h))
    near = min(np.sort(np.delete(dist[i], i))[:k].sum() for i in range(c))
    lam = near / (max(1, c + m - 2 * f - 1) * math.sqrt(d)) + float(
        np.linalg.norm(h, axis=1).max()
    ) / math.sqrt(d)
    while lam > 1e-5:
        crafted = -lam * s
        rows = np.vstack([h, np.tile(crafted, (m, 1))])
        if krum_pick(rows, f) >= c:
            break
        lam /= 2
    return spread(-lam * s, view.rng, collusion_cos(view.rules))


def cartel(view: View) -> F64:
    if not view.prev_globals or not np.any(view.prev_globals[-1]):
        return -view.train()
    g = view.prev_globals[-1]
    v = -g * (median_public_norm(view) / float(np.linalg.norm(g)))
    return spread(v, view.rng, collusion_cos(view.rules))


def backdoor(norm_cap: float) -> AttackFn:
    """Trained on half-triggered data, boosted by n / m up to ``norm_cap`` x the public median
    norm (2: the model-replacement boost; 1: matched to an honest norm, under every norm test)."""

    def run(view: View) -> F64:
        delta = view.train(backdoor=0.5)
        boost = view.n_clients / max(1, view.m)
        if view.history:
            cap = norm_cap * median_public_norm(view) / max(float(np.linalg.norm(delta)), 1e-12)
            boost = max(1.0, min(boost, cap))
        return np.asarray(boost * delta)

    return run


def turned_toward(prev: F64, target: F64, max_deg: float = 60.0) -> F64:
    """The unit vector ``target``'s direction, or ``prev``'s turned towards it by ``max_deg``:
    a client that turns slowly keeps a cosine >= 0.5 to its own last update, which excuses it
    from UNCORRELATED whatever the others send."""
    p = prev / max(float(np.linalg.norm(prev)), 1e-12)
    t = target / max(float(np.linalg.norm(target)), 1e-12)
    c = float(p @ t)
    if c >= math.cos(math.radians(max_deg)):
        return t
    o = t - c * p
    if float(np.linalg.norm(o)) < 1e-9:  # exactly opposite: any orthogonal way round
        o = np.roll(p, 1) - float(np.roll(p, 1) @ p) * p
    o /= np.linalg.norm(o)
    a = math.radians(max_deg)
    return np.asarray(math.cos(a) * p + math.sin(a) * o)


def under_the_bar(rows: list[F64], mine: list[int], rules: EpochRules) -> bool:
    """Whether none of the rows ``mine`` would be a KRUM_OUTLIER among ``rows``, by the STF's
    own test (so the attack follows whichever outlier rule is in force)."""
    q = np.stack([to_int8(r) for r in rows])
    view, _ = epoch_view(robust.gram(q), krum_f(rules.f, q.shape[0]))
    return not any(outlier_flag(view, i, rules) for i in mine)


def signflip_adaptive(view: View) -> F64:
    """Its honest update negated, turned at most 60 degrees an epoch from its last one, and
    scaled as far as the outlier rule lets it: it replays last epoch's public updates with
    itself and its colluders at the candidate scale, and sends the largest scale (binary
    search, 15% margin) that the STF's own test would not flag."""
    t = view.train()
    if not view.history:
        return t  # nothing public yet: honest once
    last = view.history[-1]
    honest = [u.astype(np.float64) for c, u in last.items() if c not in view.attackers]
    if len(honest) < 3:
        return -t
    unit = -t / max(float(np.linalg.norm(t)), 1e-12)
    prev = last.get(view.client)
    if prev is not None and np.any(prev):
        unit = turned_toward(prev.astype(np.float64), unit)
    med = float(np.median([np.linalg.norm(h) for h in honest]))
    sent = [u.astype(np.float64) for u in view.colluders_now]
    # the colluders still to send: along their own last updates (they flip their own data)
    later = [
        last[c].astype(np.float64) / max(float(np.linalg.norm(last[c])), 1e-12)
        for c in view.attackers
        if c in last and c != view.client
    ][: max(0, len([c for c in view.attackers if c in last]) - len(sent) - 1)]
    mine = list(range(len(honest), len(honest) + len(sent) + 1 + len(later)))
    lo, hi = 0.0, 20.0
    for _ in range(14):
        k = (lo + hi) / 2
        rows = honest + sent + [1.15 * k * med * u for u in (unit, *later)]
        lo, hi = (k, hi) if under_the_bar(rows, mine, view.rules) else (lo, k)
    return np.asarray(max(lo, 0.5) * med * unit)


def turned_from(g: F64, away: F64, cos: float, norm: float) -> F64:
    """``g`` turned towards ``away`` until their cosine is ``cos``, at length ``norm``."""
    gn = max(float(np.linalg.norm(g)), 1e-12)
    ortho = away - (away @ g) / gn**2 * g
    ortho *= math.tan(math.acos(cos)) * gn / np.linalg.norm(ortho)
    return (g + ortho) * (norm / (gn / cos))


def free_rider(kind: str) -> AttackFn:
    """Free riders imitate public data; with nothing public yet (epoch 0) they train once."""

    def run(view: View) -> npt.NDArray[np.generic]:
        if kind == "fr_zero":
            return np.zeros(view.d, dtype=np.int8)
        if kind in ("fr_copy", "fr_scaled_copy"):
            if not view.colluders_now:  # the first of them trains; the others resend it
                return view.train()
            pick = view.colluders_now[0]
            if kind == "fr_copy":
                return pick.copy()
            return np.rint(0.85 * pick.astype(np.float64)).astype(np.int8)  # not byte-equal
        if not view.history or not view.prev_globals:
            return view.train()
        norm = median_public_norm(view)
        g = view.prev_globals[-1]
        noise = view.rng.normal(0.0, 1.0, view.d)
        if kind == "fr_disguised":
            return noise * (norm / np.linalg.norm(noise))
        if kind == "fr_delta":
            return np.clip(np.round(g), -127, 127).astype(np.int8)
        if kind == "fr_mean_noise":
            mean = np.mean([u.astype(np.float64) for u in view.history[-1].values()], axis=0)
            unit = mean / max(float(np.linalg.norm(mean)), 1e-12)
            return norm * unit + noise * (0.5 * norm / np.linalg.norm(noise))
        if kind == "fr_global_cos":
            return turned_from(g, noise, 0.99, norm)
        if kind == "fr_centre":
            last = view.history[-1]
            hon = sorted(
                (u.astype(np.float64) for c, u in last.items() if c not in view.attackers),
                key=lambda u: float(np.linalg.norm(u)),
            )
            small = hon[: max(3, len(hon) // 2)]
            centre = spread(np.mean(small, axis=0), view.rng, 0.97)
            prev = last.get(view.client)
            if prev is not None and np.any(prev):
                centre = turned_toward(prev.astype(np.float64), centre)
            size = float(np.median([np.linalg.norm(u) for u in small]))
            return centre / max(float(np.linalg.norm(centre)), 1e-12) * size
        if kind == "fr_persistent":  # knows the credit rule: a private direction it keeps
            fixed = np.random.default_rng(1_000_003 + view.client).normal(0.0, 1.0, view.d)
            return turned_from(g, fixed, 0.9, norm)
        if kind == "fr_stale_peer":
            peers = [k for k in view.history[-1] if k not in view.attackers]
            return view.history[-1][peers[int(view.rng.integers(len(peers)))]].copy()
        raise ValueError(f"unknown free rider {kind!r}")

    return run


def builtin_attacks() -> dict[str, AttackFn]:
    """Every built-in attack by its command-line name."""
    table: dict[str, AttackFn] = {
        "signflip": lambda v: -4.0 * v.train(),
        "gauss": lambda v: v.rng.normal(0.0, 10.0 * float(np.sqrt(np.mean(v.train() ** 2))), v.d),
        "labelflip": lambda v: v.train(flip_labels=True),
        "alie": alie,
        "ipm0.5": ipm(0.5),
        "ipm10": ipm(10.0),
        "minmax": minmax,
        "minsum": minsum,
        "fang_krum": fang_krum,
        "cartel": cartel,
        "backdoor": backdoor(2.0),
        "backdoor_matched": backdoor(1.0),
        "signflip_adaptive": signflip_adaptive,
    }
    for kind in FREE_RIDERS:
        table[kind] = free_rider(kind)
    return table


ATTACKS = tuple(builtin_attacks())


def load_attack_file(path: str) -> tuple[str, AttackFn]:
    """``(name, attack)`` from a user's file defining ``attack(view)``."""
    fn = load_function(path, "--attack-file", "attack", "attack(view)")
    return f"file:{Path(path).stem}", fn


def to_int8(update: npt.NDArray[np.generic]) -> I8:
    """An attack's result on the wire: int8 as is, anything else rounded and clipped."""
    a = np.asarray(update)
    if a.dtype == np.int8:
        return a.copy()
    return np.clip(np.round(a.astype(np.float64)), -127, 127).astype(np.int8)
