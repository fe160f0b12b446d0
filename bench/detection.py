#!/usr/bin/env python
"""Detection benchmark: the STF's own epoch close on heterogeneous simulated federations.

Usage: ``python bench/detection.py [--quick | --long] [--datasets digits,mnist1d]
[--alphas 0.1,0.5,10] [--clients 20,50] [--seeds N] [--epochs E] [--attack-epochs E]
[--attacks a,b] [--fractions 0.2] [--attack-alphas 0.1] [--attack-clients 20] [--sigma S]
[--local-steps K] [--rules KEY=VALUE ...] [--attack-file PATH [--omniscient]] [--split-file PATH]
[--no-flower]``

What it runs (modules: :mod:`fl_sim` data and training, :mod:`splits` the client splits,
:mod:`attacks` the attackers, :mod:`baselines` FedAvg, FLTrust and Flower's aggregators,
:mod:`fl_run` one run through the public STF functions):

1. **Honest-only long runs** (the most important rows): no attacker, ``--epochs`` (100)
   epochs per (dataset, Dirichlet alpha, n) and seed, clients of log-normal data sizes
   (sigma ``--sigma`` = 1.0, ``size = max(8, round(N x lognormal weight))``) and
   Dirichlet(alpha) label mixes, one local epoch of minibatch SGD (steps scale with the
   data, as in FedAvg). Per row: honest clients slashed (max over seeds), honest
   flagged-epochs per flag (summed over seeds), who was slashed for what, and final
   accuracy against FedAvg of the same clients, beside the ``reftrust`` baseline's (what a
   requester's reference update would cost honest non-IID clients).
2. **Attacks** at ``--fractions`` (20 %) for ``--attack-epochs`` (30) epochs: every attack of
   :mod:`attacks` (its docstring says which are omniscient) plus ``--attack-file``. Per row:
   detection recall (attackers slashed), honest slashed, the STF's accuracy gap to FedAvg
   over the honest clients alone (the reference), the gaps of plain FedAvg of everyone and
   of FLTrust and ``reftrust`` (the requester's root-data reference, :mod:`baselines`) and
   of Flower's Krum / Multi-Krum / median / trimmed mean (``flwr``, the ``bench`` extra;
   skipped with a note when missing), backdoor success rates and the attackers' reward
   relative to an honest client's (``rwd``: the reward leaf's rule, see :mod:`fl_run`).
   ``--reference``: the requester sends its reference update every epoch (its root data, as
   FLTrust's; :mod:`stf.fl.reference`), and the STF rows weigh the aggregate by it.
3. **Targets**, each PASS/FAIL with its figure: no honest client slashed in any run;
   accuracy within 2 points of honest-only FedAvg for every attack at 20 %; every attacker's
   reward (free rider or poisoner) at most 10 % of an honest client's; backdoor success at most
   10 %; provable offences (zero, copy, exact replay of the global step) slashed with recall 1.

Defaults: digits and mnist1d, alpha 0.1/0.5/10, n 20/50, 3 seeds, attacks at n = 20 and alpha
0.1 (the expected run time is printed first). ``--quick`` (the CI smoke test): digits, alpha
0.1, n 20, 1 seed, 20 + 8 epochs, under ~30 s on one core. ``--long``: also fractions
10/20/30 % and attacks at every alpha and n. The rules: :class:`stf.fl.rules.EpochRules`
defaults with ``f = floor(--f-frac x n)`` (0.3), overridable with ``--rules KEY=VALUE``
(fractions as ``num/den``). Progress goes to stderr, tables to stdout; exit status 0.

Bring your own attack (``--attack-file``, documented in :mod:`attacks`, example
``bench/attacks_example.py``) or split (``--split-file``, documented in :mod:`splits`).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy: spinning BLAS threads cost 340x here

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from attacks import (  # noqa: E402
    ATTACKS,
    BACKDOORS,
    EXACT_OFFENCES,
    FREE_RIDERS,
    OMNISCIENT,
    PROVABLE_OFFENCES,
    AttackFn,
    builtin_attacks,
    load_attack_file,
)
from baselines import FLTrust, aggregators, fedavg, have_flwr  # noqa: E402
from fl_run import RunResult, run  # noqa: E402
from fl_sim import SimConfig, SplitFn, Task, have_mnist1d, make_task  # noqa: E402
from splits import load_split_file  # noqa: E402

from stf.fl.rules import EpochRules  # noqa: E402

MS_PER_CLIENT_EPOCH = {"digits": 0.5, "mnist1d": 1.6}  # measured, one core, MLP


def pin_blas() -> None:
    """Belt and braces: also cap any BLAS pool numpy already opened (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


def floats(s: str) -> tuple[float, ...]:
    return tuple(float(x) for x in s.split(","))


def ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(","))


def parse_rules(items: list[str], base: EpochRules) -> EpochRules:
    """``KEY=VALUE`` overrides of the rules; fractions as ``num/den``."""
    changes: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(EpochRules)}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--rules {item!r}: expected KEY=VALUE with KEY in {sorted(fields)}")
        current = getattr(base, key)
        if isinstance(current, tuple):
            num, _, den = value.replace(",", "/").partition("/")
            changes[key] = (int(num), int(den or 1))
        elif isinstance(current, int):
            changes[key] = int(value)
        else:
            changes[key] = value
    return dataclasses.replace(base, **changes)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    a = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    a.add_argument("--quick", action="store_true", help="CI size: digits, a=0.1, n=20, 1 seed")
    a.add_argument("--long", action="store_true", help="all fractions, attacks at every a, n")
    a.add_argument("--datasets", default=None, help="digits,mnist1d")
    a.add_argument("--alphas", default=None, help="Dirichlet alphas of the honest rows")
    a.add_argument("--clients", default=None, help="client counts of the honest rows")
    a.add_argument("--seeds", type=int, default=None)
    a.add_argument("--epochs", type=int, default=None, help="honest-only epochs (100)")
    a.add_argument("--attack-epochs", type=int, default=None, help="attack epochs (30)")
    a.add_argument("--attacks", default=None, help="comma-separated subset, or 'none'")
    a.add_argument("--fractions", default=None, help="attacker fractions (0.2)")
    a.add_argument("--attack-alphas", default=None, help="alphas of the attack rows (0.1)")
    a.add_argument("--attack-clients", default=None, help="client counts of attack rows (20)")
    a.add_argument("--sigma", type=float, default=1.0, help="log-normal sigma of the sizes")
    a.add_argument("--model", choices=("softmax", "mlp"), default="mlp")
    a.add_argument("--lr", type=float, default=0.1, help="local SGD learning rate")
    a.add_argument("--batch", type=int, default=16, help="local minibatch size")
    a.add_argument(
        "--local-steps", type=int, default=0, help="fixed minibatch steps per round (0: one epoch)"
    )
    a.add_argument("--f-frac", type=float, default=0.3, help="EpochRules.f = floor(F x n)")
    a.add_argument("--rules", action="append", default=[], metavar="KEY=VALUE")
    a.add_argument("--attack-file", default=None, help="a file defining attack(view)")
    a.add_argument("--omniscient", action="store_true", help="--attack-file sees view.current")
    a.add_argument("--split-file", default=None, help="a file defining split(y, n, rng)")
    a.add_argument("--no-flower", action="store_true", help="skip Flower's aggregators")
    a.add_argument("--no-honest", action="store_true", help="skip the honest-only rows")
    a.add_argument(
        "--reference",
        action="store_true",
        help="the requester sends its reference update every epoch (stf.fl.reference)",
    )
    return a.parse_args(argv)


@dataclass(frozen=True)
class Setup:
    """Everything the command line decides, resolved once."""

    datasets: tuple[str, ...]
    alphas: tuple[float, ...]
    clients: tuple[int, ...]
    seeds: int
    epochs: int
    attack_epochs: int
    attacks: tuple[str, ...]
    fractions: tuple[float, ...]
    attack_alphas: tuple[float, ...]
    attack_clients: tuple[int, ...]
    base: SimConfig
    rule_items: tuple[str, ...]
    f_frac: float
    table: dict[str, AttackFn]
    omniscient: frozenset[str]
    split_fn: SplitFn | None
    flower: bool
    honest: bool
    reference: bool = False  # the STF runs get the requester's reference update
    notes: tuple[str, ...] = ()

    def rules(self, n: int) -> EpochRules:
        r = parse_rules(list(self.rule_items), EpochRules(f=int(self.f_frac * n)))
        r.validate(n)
        return r

    def cfg(self, dataset: str, alpha: float, n: int) -> SimConfig:
        return dataclasses.replace(self.base, dataset=dataset, alpha=alpha, n_clients=n)


def pick(value: str | None, quick: Any, default: Any, conv: Any, is_quick: bool) -> Any:
    """An explicit option wins; else the quick or the full default."""
    if value is not None:
        return conv(value)
    return quick if is_quick else default


def resolve_datasets(arg: str | None, quick: bool) -> tuple[tuple[str, ...], list[str]]:
    """digits always; mnist1d only when its package is installed (said in a note)."""
    wanted = tuple(arg.split(",")) if arg else (("digits",) if quick else ("digits", "mnist1d"))
    notes = []
    if "mnist1d" in wanted and not have_mnist1d():
        notes.append("mnist1d is not installed (pip install -e '.[bench]'): digits only")
        wanted = tuple(d for d in wanted if d != "mnist1d") or ("digits",)
    return wanted, notes


def resolve_attacks(
    args: argparse.Namespace,
) -> tuple[tuple[str, ...], dict[str, AttackFn], frozenset[str]]:
    table = builtin_attacks()
    omni = set(OMNISCIENT)
    names = list(ATTACKS)
    if args.attacks:
        names = [] if args.attacks == "none" else args.attacks.split(",")
    for a in names:
        if a not in table:
            raise SystemExit(f"unknown attack {a!r}; known: {', '.join(ATTACKS)}")
    if args.attack_file:
        name, fn = load_attack_file(args.attack_file)
        table[name] = fn
        names.append(name)
        if args.omniscient:
            omni.add(name)
    return tuple(names), table, frozenset(omni)


def make_setup(args: argparse.Namespace) -> Setup:
    q, lg = args.quick, args.long
    datasets, notes = resolve_datasets(args.datasets, q)
    alphas = pick(args.alphas, (0.1,), (0.1, 0.5, 10.0), floats, q)
    clients = pick(args.clients, (20,), (20, 50), ints, q)
    attacks, table, omni = resolve_attacks(args)
    flower = not args.no_flower
    if flower and not have_flwr():
        notes.append("flwr is not installed (pip install -e '.[bench]'): Flower columns skipped")
        flower = False
    split_fn = load_split_file(args.split_file) if args.split_file else None
    if split_fn is not None:
        notes.append(f"split from {args.split_file} (alpha and sigma unused)")
    base = SimConfig(
        model=args.model,
        lr=args.lr,
        batch=args.batch,
        sigma=args.sigma,
        local_steps=args.local_steps,
    )
    return Setup(
        datasets=datasets,
        alphas=alphas,
        clients=clients,
        seeds=args.seeds if args.seeds is not None else (1 if q else 3),
        epochs=args.epochs if args.epochs is not None else (20 if q else 100),
        attack_epochs=args.attack_epochs or (8 if q else 30),
        attacks=attacks,
        fractions=pick(args.fractions, (0.2,), (0.1, 0.2, 0.3) if lg else (0.2,), floats, q),
        attack_alphas=pick(args.attack_alphas, (0.1,), alphas if lg else (0.1,), floats, q),
        attack_clients=pick(args.attack_clients, (20,), clients if lg else (20,), ints, q),
        base=base,
        rule_items=tuple(args.rules),
        f_frac=args.f_frac,
        table=table,
        omniscient=omni,
        split_fn=split_fn,
        flower=flower,
        honest=not args.no_honest,
        reference=args.reference,
        notes=tuple(notes),
    )


def expected_seconds(s: Setup) -> float:
    """A rough forecast from measured per-client-epoch costs (local training dominates)."""
    total = 0.0
    n_agg = 4 + (4 if s.flower else 0)  # STF, FedAvg-all, two FLTrusts, Flower's four
    for ds in s.datasets:
        ms = MS_PER_CLIENT_EPOCH.get(ds, 1.0) / 1000
        if s.honest:
            total += ms * s.seeds * s.epochs * 3 * sum(s.clients) * len(s.alphas)
        per_attack = n_agg * sum(s.attack_clients) * len(s.attack_alphas) * len(s.fractions)
        total += ms * s.seeds * s.attack_epochs * (len(s.attacks) * per_attack + 1)
    return total


def progress(t0: float, text: str) -> None:
    """Progress goes to stderr so that stdout holds only the tables."""
    print(f"[{time.perf_counter() - t0:7.1f}s] {text}", file=sys.stderr, flush=True)


def fmt_counts(c: Counter[str]) -> str:
    return ",".join(f"{k}:{v}" for k, v in c.most_common()) or "-"


# ----------------------------------------------------------------------------- honest rows


@dataclass
class HonestRow:
    """One (dataset, alpha, n): pooled over seeds."""

    slashed: list[int] = field(default_factory=list)
    barred: list[int] = field(default_factory=list)
    flagged: Counter[str] = field(default_factory=Counter)
    slash_reasons: Counter[str] = field(default_factory=Counter)
    bar_reasons: Counter[str] = field(default_factory=Counter)
    acc: list[float] = field(default_factory=list)
    ref: list[float] = field(default_factory=list)
    reftrust: list[float] = field(default_factory=list)  # the reference-trust baseline
    reward_low: list[float] = field(default_factory=list)


def task_for(s: Setup, ds: str, alpha: float, n: int, seed: int) -> Task:
    return make_task(s.cfg(ds, alpha, n), seed, s.split_fn)


REFTRUST = FLTrust(to_median_norm=True)


def honest_rows(s: Setup, t0: float) -> dict[tuple[str, float, int], HonestRow]:
    """No attacker: the STF against FedAvg of the same clients, ``epochs`` long."""
    rows: dict[tuple[str, float, int], HonestRow] = {}
    for ds in s.datasets:
        for alpha in s.alphas:
            for n in s.clients:
                row = rows.setdefault((ds, alpha, n), HonestRow())
                for seed in range(s.seeds):
                    task = task_for(s, ds, alpha, n, seed)
                    everyone = list(range(n))
                    r = run(
                        task, everyone, set(), None, False, s.epochs, s.rules(n), None, s.reference
                    )
                    ref = run(task, everyone, set(), None, False, s.epochs, s.rules(n), fedavg)
                    trust = run(task, everyone, set(), None, False, s.epochs, s.rules(n), REFTRUST)
                    row.slashed.append(r.honest_slashed)
                    row.barred.append(r.honest_barred)
                    row.flagged.update(r.honest_flagged)
                    row.slash_reasons.update(r.honest_slash_reasons)
                    row.bar_reasons.update(r.honest_bar_reasons)
                    row.acc.append(r.acc)
                    row.ref.append(ref.acc)
                    row.reftrust.append(trust.acc)
                    row.reward_low.append(r.reward_low)
                    progress(
                        t0,
                        f"honest {ds} a={alpha:g} n={n} seed {seed}: slashed "
                        f"{r.honest_slashed} barred {r.honest_barred} acc {r.acc:.4f} "
                        f"FedAvg {ref.acc:.4f}",
                    )
    return rows


def print_honest(s: Setup, rows: dict[tuple[str, float, int], HonestRow]) -> None:
    print(f"\n## honest only: {s.epochs} epochs, {s.seeds} seed(s), no attacker")
    head = (
        f"{'dataset':8s} {'alpha':>5s} {'n':>3s} {'slashed(max)':>12s} {'barred(max)':>11s} "
        f"{'acc':>6s} {'FedAvg':>6s} {'d(pts)':>7s} {'reftr':>6s} {'low/med':>7s}  "
        "honest flagged-epochs per flag | "
        "slashed by | barred by"
    )
    print(head)
    print("-" * len(head))
    for (ds, alpha, n), r in rows.items():
        d = 100 * float(np.mean(np.array(r.acc) - np.array(r.ref)))
        dt = 100 * float(np.mean(np.array(r.reftrust) - np.array(r.ref)))
        print(
            f"{ds:8s} {alpha:5g} {n:3d} {max(r.slashed):5d} of {n:<4d} "
            f"{max(r.barred):4d} of {n:<4d} "
            f"{np.mean(r.acc):6.4f} {np.mean(r.ref):6.4f} {d:+7.2f} {dt:+6.2f} {min(r.reward_low):7.2f}  "
            f"{fmt_counts(r.flagged)} | {fmt_counts(r.slash_reasons)} | "
            f"{fmt_counts(r.bar_reasons)}"
        )


# ----------------------------------------------------------------------------- attack rows


@dataclass
class AttackRow:
    """One attack at one (dataset, alpha, n, fraction), pooled over seeds."""

    stf: list[RunResult] = field(default_factory=list)
    ref: list[float] = field(default_factory=list)  # honest-only FedAvg accuracy per seed
    base_acc: dict[str, list[float]] = field(default_factory=dict)
    base_asr: dict[str, list[float]] = field(default_factory=dict)

    def gap(self) -> float:
        return 100 * float(np.mean([r.acc - f for r, f in zip(self.stf, self.ref, strict=True)]))

    def base_gap(self, name: str) -> float:
        accs = self.base_acc[name]
        return 100 * float(np.mean(np.array(accs) - np.array(self.ref)))

    def recall(self) -> float:
        """Attackers caught: barred or slashable (out of the task)."""
        tot = sum(r.attackers for r in self.stf)
        return sum(r.att_caught for r in self.stf) / tot if tot else 0.0

    def slashed_recall(self) -> float:
        tot = sum(r.attackers for r in self.stf)
        return sum(r.att_slashed for r in self.stf) / tot if tot else 0.0

    def honest_barred(self) -> int:
        return max(r.honest_barred for r in self.stf)

    def honest_slashed(self) -> int:
        return max(r.honest_slashed for r in self.stf)

    def reward_ratio(self) -> float:
        hon = float(np.mean([r.reward_honest for r in self.stf]))
        att = float(np.mean([r.reward_att for r in self.stf]))
        return att / hon if hon > 0 else float("inf")

    def asr(self) -> float:
        return float(np.mean([r.asr for r in self.stf]))


AKey = tuple[str, str, float, int, float]  # attack, dataset, alpha, n, fraction


def attack_seed(
    s: Setup, key: tuple[str, float, int, float], seed: int, out: dict[AKey, AttackRow], t0: float
) -> None:
    """Every attack on one task: they share its data and its honest-only reference."""
    ds, alpha, n, frac = key
    task = task_for(s, ds, alpha, n, seed)
    rules = s.rules(n)
    m = round(frac * n)
    att = set(range(n - m, n))
    everyone = list(range(n))
    honest = [i for i in everyone if i not in att]
    ref = run(task, honest, set(), None, False, s.attack_epochs, rules, fedavg).acc
    aggs = aggregators(s.flower)
    for name in s.attacks:
        fn, omni = s.table[name], name in s.omniscient
        row = out.setdefault((name, ds, alpha, n, frac), AttackRow())
        r = run(task, everyone, att, fn, omni, s.attack_epochs, rules, None, s.reference)
        row.stf.append(r)
        row.ref.append(ref)
        for bname, agg in aggs.items():
            b = run(task, everyone, att, fn, omni, s.attack_epochs, rules, agg)
            row.base_acc.setdefault(bname, []).append(b.acc)
            row.base_asr.setdefault(bname, []).append(b.asr)
        progress(
            t0,
            f"{name} {ds} a={alpha:g} n={n} {frac:.0%} seed {seed}: acc {r.acc:.4f} "
            f"(ref {ref:.4f}) slashed att {r.att_slashed}/{m} honest {r.honest_slashed}",
        )


def attack_rows(s: Setup, t0: float) -> dict[AKey, AttackRow]:
    out: dict[AKey, AttackRow] = {}
    if not s.attacks:
        return out
    for ds in s.datasets:
        for alpha in s.attack_alphas:
            for n in s.attack_clients:
                for frac in s.fractions:
                    for seed in range(s.seeds):
                        attack_seed(s, (ds, alpha, n, frac), seed, out, t0)
    return out


def print_attacks(s: Setup, rows: dict[AKey, AttackRow]) -> None:
    if not rows:
        return
    names = list(next(iter(rows.values())).base_acc)
    print(
        f"\n## attacks: {s.attack_epochs} epochs, {s.seeds} seed(s); accuracy gaps in points "
        "against FedAvg over the honest clients alone; * = omniscient (sees this epoch's "
        "honest updates)"
    )
    if not s.flower:
        print("# Flower columns skipped (flwr not importable or --no-flower)")
    cols = "".join(f" {nm[:9]:>9s}" for nm in names)
    head = (
        f"{'attack':17s} {'ds':7s} {'a':>4s} {'n':>3s} {'frac':>4s} {'recall':>6s} "
        f"{'hon.sl':>6s} {'ref':>6s} {'STF':>7s}{cols} {'rwd':>6s} {'ASR':>5s}  "
        "attackers slashed by"
    )
    print(head)
    print("-" * len(head))
    for (name, ds, alpha, n, frac), r in rows.items():
        star = "*" if name in s.omniscient else " "
        gaps = "".join(f" {r.base_gap(nm):+9.2f}" for nm in names)
        fr = f"{r.reward_ratio():6.2f}"
        asr = f"{r.asr():5.2f}" if name in BACKDOORS else f"{'':5s}"
        reasons: Counter[str] = Counter()
        for x in r.stf:
            reasons.update(x.att_reasons)
        print(
            f"{name + star:17s} {ds:7s} {alpha:4g} {n:3d} {frac:4.0%} {r.recall():6.2f} "
            f"{r.honest_slashed():6d} {np.mean(r.ref):6.4f} {r.gap():+7.2f}{gaps} {fr} {asr}  "
            f"{fmt_counts(reasons)}"
        )
    for (name, *_), r in rows.items():
        if name in BACKDOORS:
            per = ", ".join(f"{k} {np.mean(v):.2f}" for k, v in r.base_asr.items())
            print(f"# {name} success rate under the baselines: {per}")


# ----------------------------------------------------------------------------- targets


class Targets:
    """Prints each target's verdict with its figure; counts the failures."""

    def __init__(self) -> None:
        self.failed = 0

    def line(self, ok: bool, text: str) -> None:
        self.failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {text}")

    def check(
        self, honest: dict[tuple[str, float, int], HonestRow], attacks: dict[AKey, AttackRow]
    ) -> None:
        worst = max([max(r.slashed) for r in honest.values()] or [0])
        worst_att = max([r.honest_slashed() for r in attacks.values()] or [0])
        self.line(
            worst == 0 and worst_att == 0,
            f"honest clients slashed: at most {worst} in an honest-only run, {worst_att} in an "
            "attack run (want 0 in every run)",
        )
        barred = max([max(r.barred) for r in honest.values()] or [0])
        barred_att = max([r.honest_barred() for r in attacks.values()] or [0])
        print(
            f"info  honest clients barred from a task (stake kept, later reward lost): at most "
            f"{barred} in an honest-only run, {barred_att} in an attack run"
        )
        for (name, ds, alpha, n, frac), r in attacks.items():
            tag = f"{name} {ds} a={alpha:g} n={n} {frac:.0%}"
            if abs(frac - 0.2) < 1e-9:
                self.line(
                    r.gap() >= -2.0,
                    f"{tag}: accuracy {r.gap():+.2f} points vs honest-only FedAvg (want >= -2)",
                )
            who = "free-rider" if name in FREE_RIDERS else "attacker"
            self.line(
                r.reward_ratio() <= 0.10,
                f"{tag}: {who} reward {r.reward_ratio():.2f} of an honest client's "
                "(want <= 0.10: no attack pays)",
            )
            if name in BACKDOORS:
                self.line(r.asr() <= 0.10, f"{tag}: backdoor success {r.asr():.2f} (want <= 0.10)")
            if name in PROVABLE_OFFENCES:
                self.line(
                    r.slashed_recall() == 1.0,
                    f"{tag}: provable offence slashed, recall {r.slashed_recall():.2f} (want 1)",
                )
            if name in EXACT_OFFENCES:
                self.line(
                    r.recall() == 1.0,
                    f"{tag}: exact offence barred, recall {r.recall():.2f} (want 1)",
                )


def print_header(s: Setup) -> None:
    c = s.base
    local = f"{c.local_steps} steps" if c.local_steps > 0 else f"{c.local_epochs} epoch(s)"
    print(
        f"# detection bench: {c.model} model, local {local} of SGD (batch "
        f"{c.batch}, lr {c.lr}), sizes log-normal sigma {c.sigma} (min {c.min_size}), "
        f"Dirichlet label mixes; datasets {','.join(s.datasets)}",
        flush=True,
    )
    print(f"# rules (n=20): {s.rules(20)}")
    ref = "sent every epoch (--reference)" if s.reference else "none (--reference sends one)"
    print(f"# the requester's reference update (stf.fl.reference): {ref}")
    for note in s.notes:
        print(f"# note: {note}")
    print(f"# expected run time: ~{expected_seconds(s):.0f} s on one core", flush=True)


def main(argv: list[str] | None = None) -> int:
    pin_blas()
    s = make_setup(parse_args(argv))
    t0 = time.perf_counter()
    print_header(s)
    honest = honest_rows(s, t0) if s.honest else {}
    if honest:
        print_honest(s, honest)
    attacks = attack_rows(s, t0)
    print_attacks(s, attacks)
    print("\n## targets")
    t = Targets()
    t.check(honest, attacks)
    verdict = "all targets PASS" if not t.failed else f"{t.failed} target(s) FAIL"
    print(f"# {verdict}; {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
