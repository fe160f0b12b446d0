"""The demo federation's figure: accuracy per epoch, and every client's Krum score per epoch.

matplotlib is imported when :func:`plot` runs (the ``demo`` extra: ``pip install -e '.[demo]'``),
so ``examples.demo`` imports and runs without it and only skips the PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: one colour per attack, so a line keeps its colour from run to run
ROLE_COLORS = {
    "signflip": "tab:red",
    "gauss": "tab:orange",
    "labelflip": "tab:purple",
    "fr_replay": "tab:brown",
    "fr_copy": "tab:pink",
    "fr_noise": "tab:olive",
    "stealth": "tab:cyan",
}


@dataclass
class ClientSeries:
    """One client's line in the score panel."""

    label: str  # e.g. "client7 gauss"
    role: str  # "honest", or the attack
    scores: list[int | None]  # Krum score per epoch (None: sent nothing that epoch)
    flagged: list[bool]  # a flag that epoch
    slashed_epoch: int | None = None  # the epoch whose close made it slashable or barred
    trust: list[float | None] = field(default_factory=list)  # its cosine to the reference

    @property
    def honest(self) -> bool:
        return self.role == "honest"


@dataclass
class DemoFigure:
    """What the figure shows, so the plotting needs nothing of the run itself."""

    epochs: list[int]  # the chain's epoch numbers (from 0)
    robust: list[float]  # the chain's model after each epoch (the requester's reported accuracy)
    fedavg: list[float]  # plain FedAvg of every update, the same clients and attacks, locally
    honest_only: list[float] = field(default_factory=list)  # FedAvg of the honest clients alone
    clients: list[ClientSeries] = field(default_factory=list)
    # per epoch: the KRUM_OUTLIER bar, krum_ratio x the largest score inside the selection
    outlier_bar: list[float | None] = field(default_factory=list)
    title: str = "MPS chain demo federation"


def plot(data: DemoFigure, path: str | Path) -> Path:
    """Write the two-panel PNG to ``path``; return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(19, 5.5))
    x = data.epochs

    ax1.plot(x, data.robust, "o-", color="tab:green", lw=2, label="MPS chain (flags, then trust)")
    ax1.plot(x, data.fedavg, "s--", color="tab:red", lw=1.5, label="plain FedAvg of all updates")
    if data.honest_only:
        ax1.plot(
            x, data.honest_only, ":", color="grey", lw=1.5, label="FedAvg, honest clients only"
        )
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("held-out accuracy after the epoch")
    ax1.set_ylim(0.0, 1.0)
    ax1.set_xticks(x)
    ax1.grid(alpha=0.3)
    ax1.legend(loc="lower right")
    ax1.set_title("accuracy of the global model")

    for c in sorted(data.clients, key=lambda c: not c.honest):  # attackers drawn on top
        pts = [(e, s) for e, s in zip(data.epochs, c.scores, strict=False) if s]
        if not pts:
            continue
        xs, ys = zip(*pts, strict=True)
        _line(ax2, c, xs, ys)
        flagged = [
            (e, s) for e, s, f in zip(data.epochs, c.scores, c.flagged, strict=False) if s and f
        ]
        if flagged:
            fx, fy = zip(*flagged, strict=True)
            ax2.scatter(fx, fy, s=110, facecolors="none", edgecolors="red", lw=1.2, zorder=3)
        end = [(e, s) for e, s in pts if e == c.slashed_epoch]
        if end:
            ax2.scatter(*zip(*end, strict=True), s=60, marker="*", color="black", zorder=4)
    bars = [(e, b) for e, b in zip(data.epochs, data.outlier_bar, strict=False) if b]
    if bars:
        bx, by = zip(*bars, strict=True)
        ax2.step(bx, by, where="mid", color="black", lw=1, alpha=0.6, label="KRUM_OUTLIER bar")
    handles, _ = ax2.get_legend_handles_labels()
    extra = [
        Line2D([], [], color="tab:blue", marker=".", lw=1, label="honest clients"),
        Line2D([], [], color="red", marker="o", markerfacecolor="none", lw=0, label="flagged"),
        Line2D([], [], color="black", marker="*", lw=0, label="became slashable or barred"),
    ]
    ax2.legend(handles=[extra[0], *handles, *extra[1:]], fontsize=8, loc="lower left")
    ax2.set_yscale("log")
    ax2.set_xticks(x)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("Krum score (sum of squared distances, int8 units)")
    ax2.grid(alpha=0.3, which="both")
    ax2.set_title("Krum score per client (attackers dashed; none after slashing)")

    for c in sorted(data.clients, key=lambda c: not c.honest):
        tpts = [(e, t) for e, t in zip(data.epochs, c.trust, strict=False) if t is not None]
        if not tpts:
            continue
        xs, ts = zip(*tpts, strict=True)
        _line(ax3, c, xs, ts)
    ax3.set_ylim(-0.05, 1.0)
    ax3.set_xticks(x)
    ax3.set_xlabel("epoch")
    ax3.set_ylabel("trust: max(0, cosine to the requester's reference)")
    ax3.grid(alpha=0.3)
    ax3.set_title("weight in the step (0: left out of the model)")
    if ax3.get_legend_handles_labels()[0]:
        ax3.legend(fontsize=8, loc="upper right")
    fig.suptitle(data.title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _line(ax: Any, c: ClientSeries, xs: Sequence[int], ys: Sequence[float]) -> None:
    """One client's line: honest clients thin and blue, each attacker dashed in its colour."""
    if c.honest:
        ax.plot(xs, ys, "-", marker=".", color="tab:blue", lw=1, alpha=0.55)
    else:
        color = ROLE_COLORS.get(c.role, "black")
        ax.plot(xs, ys, "--", marker="x", ms=7, color=color, lw=1.6, label=c.label)


def have_matplotlib() -> bool:
    """Whether :func:`plot` can run (the demo skips the PNG otherwise)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


__all__ = ["ROLE_COLORS", "ClientSeries", "DemoFigure", "have_matplotlib", "plot"]
