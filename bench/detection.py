#!/usr/bin/env python
"""Detection benchmark: the STF's own epoch close on simulated federated clients.

Usage: ``python bench/detection.py [--quick] [--seeds N] [--epochs E] [--model softmax|mlp]
[--f-frac F] [--rules KEY=VALUE ...] [--attacks a,b] [--fractions 0.1,0.2] [--splits iid,noniid]``

Defaults: MLP 64-32-10 (d = 2,410), 20 epochs, 3 seeds, fractions 10/20/30 %, both splits:
about 1.5 minutes on one core. ``--quick``: 20 % only, 1 seed, 12 epochs (under 10 s).

Every epoch, 20 simulated clients (:mod:`fl_sim`: scikit-learn digits, a small numpy
model) train from the current global model, quantize their delta to int8 exactly as the
protocol does, and submit in a fixed order (honest clients first, attackers last). The
int8 updates go through :func:`stf.fl.rules.evaluate_epoch` in process, with the previous
epoch's aggregate as ``prev_global`` and each client's own previous update as
``prev_own``; the flags are folded into verdicts with :func:`stf.fl.rules.next_verdict`.
A client whose verdict becomes slashable is out: it submits nothing in later epochs. The
aggregate (int64, quantized units) is applied as ``global += aggregate / 2**shift``.

Baseline: plain FedAvg with no attack, all 20 clients honest, the float mean of the same
quantized deltas (no rules, no rounding of the mean).

Attacks (fraction 10/20/30 % of the clients, always the last to submit):
``signflip`` (-k x own honest delta, k = 4), ``gauss`` (N(0, sigma^2), sigma = 10 x the
honest RMS coordinate), ``labelflip`` (trains on 9 - y), ``alie`` (Baruch 2019: honest
mean - z x honest std per coordinate, z = 1; every attacker sends the same vector),
``ipm0.1`` / ``ipm2`` (Xie 2019: -eps x honest mean), and free riders: ``fr_zero``,
``fr_copy`` (an update submitted earlier this epoch), ``fr_disguised`` (Fraboni 2021:
Gaussian noise with the median honest norm), ``fr_delta`` (resends the previous global
step; disguised noise in the first epoch) and ``fr_delta_jitter`` (extra, not in the
targets: the previous global step plus noise of 5 % of its norm). ALIE, IPM, the Gaussian
scale and the disguised norm see all honest deltas of the epoch (omniscient attackers).

The rules: :class:`stf.fl.rules.EpochRules` defaults with ``f = floor(f_frac x 20)``
(``--f-frac``, default 0.3: f = 6, the largest attack fraction; a task fixes f once, it
cannot know the real number of attackers), overridable with ``--rules KEY=VALUE``
(fractions as ``num/den``), e.g. ``--rules strikes_to_slash=3 --rules krum_ratio=4/1``.

Per attack x fraction x split over the seeds it prints one table row: precision and recall
of the slashable verdicts against the true attackers (pooled over the seeds; ``-`` when
nobody was slashed), honest clients slashed (max over seeds), final test accuracy (mean),
its difference to no-attack FedAvg (points, mean of per-seed differences), the mean epoch
at which attackers became slashable and the flags that made them so; then the target
lines with PASS/FAIL. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from fl_sim import (  # noqa: E402
    ATTACKS,
    FREE_RIDERS,
    AttackParams,
    SimConfig,
    Task,
    craft,
    make_task,
    quantize,
)

from stf.fl.rules import (  # noqa: E402
    CLEAN,
    EpochRules,
    evaluate_epoch,
    flag_names,
    next_verdict,
)

FRACTIONS = (0.1, 0.2, 0.3)
SPLITS = ("iid", "noniid")
TARGET_FR = ("fr_zero", "fr_copy", "fr_disguised", "fr_delta")
TARGET_PR = ("gauss", "labelflip", "signflip", *TARGET_FR)
TARGET_STEALTH = ("alie", "ipm0.1", "ipm2")


@dataclass
class RunResult:
    acc: float
    tp: int
    fp: int
    fn: int
    slash_epochs: list[int] = field(default_factory=list)  # attackers'
    reasons: Counter[str] = field(default_factory=Counter)  # attackers' slashing flags
    honest_reasons: Counter[str] = field(default_factory=Counter)  # honest clients' slashings
    honest_flagged: Counter[str] = field(default_factory=Counter)  # honest flags, all epochs


def parse_rules(items: list[str], base: EpochRules) -> EpochRules:
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


def run_fedavg(task: Task, epochs: int) -> float:
    """Plain FedAvg, no attack: the float mean of all clients' quantized deltas."""
    w = task.init.copy()
    scale = float(2**task.shift)
    for e in range(epochs):
        q = np.stack(
            [quantize(task.local_delta(w, c, e), task.shift) for c in range(task.cfg.n_clients)]
        )
        w = w + q.astype(np.float64).mean(axis=0) / scale
    return task.accuracy(w)


def run_stf(
    task: Task,
    attack: str,
    n_att: int,
    rules: EpochRules,
    ap: AttackParams,
    epochs: int,
    on_epoch: Callable[..., None] | None = None,
) -> RunResult:
    """One STF run; ``on_epoch(epoch, ids, attackers, q, out, prev_global)`` sees each close."""
    n = task.cfg.n_clients
    attackers = set(range(n - n_att, n)) if attack != "none" else set()
    w = task.init.copy()
    scale = float(2**task.shift)
    verdicts = [CLEAN] * n
    prev_own: list[Any] = [None] * n
    prev_global: np.ndarray | None = None
    res = RunResult(0.0, 0, 0, 0)
    for e in range(epochs):
        ids = [i for i in range(n) if not verdicts[i].slashable]
        if not ids:
            break  # everyone slashed: the model stays where it is
        honest_ids = [i for i in ids if i not in attackers]
        honest = {i: task.local_delta(w, i, e) for i in honest_ids}
        honest_list = list(honest.values())
        rows: list[np.ndarray] = []
        for i in ids:
            if i in attackers:
                rows.append(craft(attack, task, w, e, i, honest_list, rows, prev_global, ap))
            else:
                rows.append(quantize(honest[i], task.shift))
        q = np.stack(rows)
        out = evaluate_epoch(q, rules, prev_global, [prev_own[i] for i in ids])
        if on_epoch is not None:
            on_epoch(e, ids, attackers, q, out, prev_global)
        for k, i in enumerate(ids):
            flags = out.clients[k].flags
            if i not in attackers:
                for name in flag_names(flags):
                    res.honest_flagged[name] += 1
            v = next_verdict(verdicts[i], flags, e, rules)
            if v.slashable:
                (res.reasons if i in attackers else res.honest_reasons).update(flag_names(v.reason))
                if i in attackers:
                    res.slash_epochs.append(e)
            verdicts[i] = v
            prev_own[i] = q[k]
        w = w + out.aggregate.astype(np.float64) / scale
        # The aggregate of int8 rows stays in [-127, 127]; the STF's cross-Gram takes int8/16.
        prev_global = out.aggregate.astype(np.int16)
    res.acc = task.accuracy(w)
    for i in range(n):
        s = verdicts[i].slashable
        if i in attackers:
            res.tp += s
            res.fn += not s
        else:
            res.fp += s
    return res


def fmt_ratio(num: int, den: int) -> str:
    return "-" if den == 0 else f"{num / den:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap_ = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap_.add_argument("--quick", action="store_true", help="20%% only, 1 seed, fewer epochs")
    ap_.add_argument("--seeds", type=int, default=None, help="seeds per configuration (3)")
    ap_.add_argument("--epochs", type=int, default=None, help="FL epochs (20; quick: 12)")
    ap_.add_argument("--model", choices=("softmax", "mlp"), default="mlp")
    ap_.add_argument("--local-steps", type=int, default=20, help="local SGD steps per epoch")
    ap_.add_argument("--lr", type=float, default=0.3, help="local SGD learning rate")
    ap_.add_argument("--f-frac", type=float, default=0.3, help="EpochRules.f = floor(F x n)")
    ap_.add_argument("--rules", action="append", default=[], metavar="KEY=VALUE")
    ap_.add_argument("--attacks", default=None, help="comma-separated subset of attacks")
    ap_.add_argument("--fractions", default=None, help="comma-separated attacker fractions")
    ap_.add_argument("--splits", default=None, help="iid,noniid")
    args = ap_.parse_args(argv)

    seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    epochs = args.epochs if args.epochs is not None else (12 if args.quick else 20)
    fractions = (
        tuple(float(x) for x in args.fractions.split(","))
        if args.fractions
        else ((0.2,) if args.quick else FRACTIONS)
    )
    splits = tuple(args.splits.split(",")) if args.splits else SPLITS
    attacks = tuple(args.attacks.split(",")) if args.attacks else ATTACKS
    for a in attacks:
        if a not in ATTACKS:
            raise SystemExit(f"unknown attack {a!r}; known: {', '.join(ATTACKS)}")
    cfg = SimConfig(model=args.model, epochs=epochs, lr=args.lr, local_steps=args.local_steps)
    n = cfg.n_clients
    rules = parse_rules(args.rules, EpochRules(f=int(args.f_frac * n)))
    rules.validate(n)
    ap = AttackParams()

    t_start = time.perf_counter()
    print(
        f"# detection bench: {args.model} model, {n} clients, {epochs} epochs, "
        f"{seeds} seed(s), local {cfg.local_steps} SGD steps (batch {cfg.batch}, lr {cfg.lr}), "
        f"non-IID Dirichlet alpha {cfg.alpha}",
        flush=True,
    )
    print(f"# rules: {rules}", flush=True)

    # (attack, frac, split) -> list of (RunResult, fedavg acc)
    results: dict[tuple[str, float, str], list[tuple[RunResult, float]]] = {}
    fedavg: dict[tuple[str, int], tuple[float, int, float]] = {}
    configs = [("none", 0.0)] + [(a, f) for a in attacks for f in fractions]
    for split in splits:
        for seed in range(seeds):
            task = make_task(cfg, split, seed)
            fa = run_fedavg(task, epochs)
            fedavg[(split, seed)] = (fa, task.shift, task.p999)
            print(
                f"[{time.perf_counter() - t_start:6.1f}s] {split} seed {seed}: d={task.model.d}"
                f" shift={task.shift} (p99.9 |delta| {task.p999:.4f}) FedAvg acc {fa:.4f}",
                file=sys.stderr,
                flush=True,
            )
            for attack, frac in configs:
                n_att = round(frac * n)
                r = run_stf(task, attack, n_att, rules, ap, epochs)
                results.setdefault((attack, frac, split), []).append((r, fa))
                print(
                    f"[{time.perf_counter() - t_start:6.1f}s] {split} seed {seed} {attack} "
                    f"{frac:.0%}: tp {r.tp} fp {r.fp} fn {r.fn} acc {r.acc:.4f}",
                    file=sys.stderr,
                    flush=True,
                )

    print("# per split and seed: quantization shift (p99.9 of epoch-0 |delta|), FedAvg accuracy")
    for (split, seed), (fa, shift, p999) in sorted(fedavg.items()):
        print(f"#   {split:6s} seed {seed}: shift {shift} ({p999:.4f})  FedAvg {fa:.4f}")

    header = (
        f"{'attack':16s} {'frac':>4s} {'split':6s} {'prec':>6s} {'recall':>6s} "
        f"{'hon.sl':>6s} {'acc':>6s} {'dFedAvg':>7s} {'ep':>4s}  reasons (attackers) "
        "| honest flags (all epochs, all seeds)"
    )
    print()
    print(header)
    print("-" * len(header))
    summary: dict[tuple[str, float, str], dict[str, Any]] = {}
    for (attack, frac, split), runs in results.items():
        tp = sum(r.tp for r, _ in runs)
        fp = sum(r.fp for r, _ in runs)
        fn = sum(r.fn for r, _ in runs)
        hon_max = max(r.fp for r, _ in runs)
        acc = float(np.mean([r.acc for r, _ in runs]))
        acc_min = min(r.acc for r, _ in runs)
        dacc = float(np.mean([100 * (r.acc - fa) for r, fa in runs]))
        eps = [e for r, _ in runs for e in r.slash_epochs]
        reasons: Counter[str] = Counter()
        hflags: Counter[str] = Counter()
        hreasons: Counter[str] = Counter()
        for r, _ in runs:
            reasons.update(r.reasons)
            hflags.update(r.honest_flagged)
            hreasons.update(r.honest_reasons)
        summary[(attack, frac, split)] = {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "hon_max": hon_max,
            "acc": acc,
            "acc_min": acc_min,
            "dacc": dacc,
        }
        rs = ",".join(f"{k}:{v}" for k, v in reasons.most_common()) or "-"
        hs = ",".join(f"{k}:{v}" for k, v in hflags.most_common()) or "-"
        if hreasons:
            hs += " slashed-by " + ",".join(f"{k}:{v}" for k, v in hreasons.most_common())
        print(
            f"{attack:16s} {frac:4.0%} {split:6s} {fmt_ratio(tp, tp + fp):>6s} "
            f"{fmt_ratio(tp, tp + fn):>6s} {hon_max:6d} {acc:6.4f} {dacc:+7.2f} "
            f"{(f'{np.mean(eps):.1f}' if eps else '-'):>4s}  {rs} | {hs}"
        )

    print()
    print("# targets")
    all_ok = True

    def line(ok: bool, text: str) -> None:
        nonlocal all_ok
        all_ok &= ok
        print(f"{'PASS' if ok else 'FAIL'}  {text}")

    for split in splits:
        s = summary[("none", 0.0, split)]
        line(
            s["hon_max"] == 0,
            f"no attack, {split}: honest slashed in any seed = {s['hon_max']} (want 0)",
        )
        line(
            s["dacc"] >= -0.5,
            f"no attack, {split}: accuracy vs FedAvg {s['dacc']:+.2f} points (want >= -0.5)",
        )
    if 0.2 in fractions:
        for attack in (a for a in TARGET_PR if a in attacks):
            for split in splits:
                s = summary[(attack, 0.2, split)]
                prec = s["tp"] / (s["tp"] + s["fp"]) if s["tp"] + s["fp"] else 0.0
                rec = s["tp"] / (s["tp"] + s["fn"])
                line(
                    prec >= 0.95 and rec >= 0.95,
                    f"{attack} 20% {split}: precision {prec:.3f} recall {rec:.3f} (want >= 0.95)",
                )
        for attack in (a for a in TARGET_STEALTH if a in attacks):
            for split in splits:
                s = summary[(attack, 0.2, split)]
                tol = 1.0 if split == "iid" else 3.0
                no_att = summary[("none", 0.0, split)]
                line(
                    s["fp"] == 0,
                    f"{attack} 20% {split}: honest slashed {s['fp']} over the seeds (want 0)",
                )
                line(
                    s["dacc"] >= -tol,
                    f"{attack} 20% {split}: accuracy vs no-attack FedAvg {s['dacc']:+.2f} points "
                    f"(want >= -{tol:g}; STF with no attack: {no_att['dacc']:+.2f})",
                )
    if 0.3 in fractions:
        for attack in (a for a in TARGET_FR if a in attacks):
            worst = min(summary[(attack, 0.3, sp)]["acc_min"] for sp in splits)
            line(worst >= 0.90, f"{attack} 30%: lowest accuracy {worst:.4f} (want >= 0.90)")
    extra = [a for a in attacks if a in FREE_RIDERS and a not in TARGET_FR]
    for attack in extra:
        for frac in fractions:
            for split in splits:
                s = summary[(attack, frac, split)]
                print(
                    f"info  {attack} {frac:.0%} {split} (not a target): precision "
                    f"{fmt_ratio(s['tp'], s['tp'] + s['fp'])} recall "
                    f"{fmt_ratio(s['tp'], s['tp'] + s['fn'])} lowest acc {s['acc_min']:.4f}"
                )
    elapsed = time.perf_counter() - t_start
    print(f"# {'all targets PASS' if all_ok else 'some targets FAIL'}; {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
