"""What the demo prints and writes: its tables, the closing summary, demo.png and demo.json.

Every line goes through :func:`log`, flushed, so ``scripts/dev.sh`` and the tests see the run's
progress through a pipe as it happens. This module only formats: the run's state is read from
the members and the federation (imported for types only; they import :func:`log` from here).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stf.fl.checks import krum_f
from stf.fl.flags import flag_names

from .attacks import ATTACKS
from .plot import ClientSeries, DemoFigure, have_matplotlib, plot

if TYPE_CHECKING:
    from .data import Data
    from .federation import Federation
    from .members import Member


def log(msg: str = "") -> None:
    """Print one line of the demo's output, flushed."""
    print(msg, flush=True)


def fmt_flags(flags: int) -> str:
    """An epoch's flag bits as names (``ZERO|COPY``), ``-`` for none."""
    return "|".join(flag_names(flags)) or "-"


def print_clients(members: list[Member], data: Data) -> None:
    """One line per client: its key, its share of the non-IID split, its role."""
    for m in members:
        idx = data.parts[m.index]
        classes = np.bincount(data.y_train[idx], minlength=10)
        top = ", ".join(f"{c}:{classes[c]}" for c in np.argsort(-classes)[:3])
        what = "" if m.honest else ATTACKS[m.role]
        log(f"  {m.name:9s} {m.key.hex()[:12]}  {len(idx):3d} samples (most {top:14s})"
            f"  {m.role:9s} {what}")  # fmt: skip


def print_epoch(
    e: int,
    summary: dict[str, Any],
    seconds: float,
    accuracies: tuple[float, float, float],
    members: list[Member],
    note: str,
) -> None:
    """The epoch's line (the chain's accuracy, then plain FedAvg's and the honest clients'),
    and every client's Krum score, trust (its cosine to the requester's reference, the weight
    the step gave it if unflagged), flags and verdict in it."""
    acc, fa, ho = accuracies
    log(
        f"epoch {e}: {len(summary['records'])} updates, closed in block {summary['closedAt']}"
        f" ({seconds:.1f} s), step weighed by the requester's reference"
        f" {'yes' if summary['reference'] is not None else 'NO'}; accuracy {acc:.3f}"
        f"  (plain FedAvg of all updates {fa:.3f}; honest clients alone {ho:.3f})"
    )
    for m in members:
        score = m.scores[-1]
        if score is None:
            why = m.lost or m.missed or ("out of the task: sends nothing" if m.out else "-")
            log(f"    {m.name:9s} {m.role:9s} {'':>9s}  {why}")
            continue
        flags = m.flags[-1]
        verdict = ""
        if flags and m.out and m.out_epoch == e:
            what = "SLASHABLE" if m.slashable else "BARRED"
            verdict = f"{what} ({', '.join(m.reason_names)})"
        elif flags:
            verdict = f"strike {m.strikes}"
        t = m.trust[-1] if m.trust else None
        trust = "" if t is None else f"trust {t:4.2f}"
        log(
            f"    {m.name:9s} {m.role:9s} {score:9.3g}  {trust:10s} {fmt_flags(flags):26s} "
            f"{verdict}"
        )
    if note:
        log(f"    ({note})")


def print_summary(fed: Federation) -> None:
    """The three accuracy curves side by side."""
    log("\n## summary")
    log("  epoch            " + " ".join(f"{e:6d}" for e in fed.epochs))
    log("  MPS chain        " + " ".join(f"{a:6.3f}" for a in fed.acc_chain))
    log("  FedAvg, all      " + " ".join(f"{a:6.3f}" for a in fed.baselines.acc_fedavg))
    log("  FedAvg, honest   " + " ".join(f"{a:6.3f}" for a in fed.baselines.acc_honest))


def outlier_bar(fed: Federation, k: int) -> float | None:
    """The k-th epoch's KRUM_OUTLIER bar, as the chain computed it from the scores it recorded:
    ``krum_ratio`` x the largest score inside the Multi-Krum selection (the ``n - f`` lowest)."""
    scores = sorted(
        s for m in fed.members if k < len(m.scores) and (s := m.scores[k]) is not None and s > 0
    )  # a commitment never revealed is recorded with score 0 and is not in the selection
    if len(scores) < 3:
        return None
    rules = fed.p.rules
    inside = scores[len(scores) - krum_f(rules.f, len(scores)) - 1]
    return float(inside) * rules.krum_ratio[0] / rules.krum_ratio[1]


def figure(fed: Federation) -> DemoFigure:
    """The run as :mod:`.plot` draws it."""
    return DemoFigure(
        epochs=fed.epochs,
        robust=fed.acc_chain,
        fedavg=fed.baselines.acc_fedavg,
        honest_only=fed.baselines.acc_honest,
        clients=[
            ClientSeries(
                m.label, m.role, m.scores, [bool(f) for f in m.flags], m.out_epoch, m.trust
            )
            for m in fed.members
        ],
        outlier_bar=[outlier_bar(fed, k) for k in range(len(fed.epochs))],
        title=(
            f"MPS chain demo: {len(fed.members)} clients on non-IID digits,"
            f" {sum(not m.honest for m in fed.members)} of them cheating"
        ),
    )


def write_outputs(
    fed: Federation, results: dict[str, Any], out: Path, t_start: float, t_fl: float
) -> None:
    """``<out>/demo.png`` (when matplotlib is installed) and ``<out>/demo.json`` (``results``
    with the timings: ``t_start`` the run's start, ``t_fl`` the federation's seconds)."""
    out.mkdir(parents=True, exist_ok=True)
    if have_matplotlib():
        png = plot(figure(fed), out / "demo.png")
        log(f"  wrote {png}")
        results["png"] = str(png)
    else:
        log("  matplotlib is not installed (pip install -e '.[demo]'): no PNG")
    results["seconds_federation"] = round(t_fl, 1)
    results["seconds_total"] = round(time.monotonic() - t_start, 1)
    (out / "demo.json").write_text(json.dumps(results, indent=1) + "\n")
    log(f"  wrote {out / 'demo.json'}")
    log(
        f"# done in {results['seconds_total']:.0f} s ({results['seconds_federation']:.0f} s of"
        " federation, the rest waiting for L1 finality and settlement)"
    )
