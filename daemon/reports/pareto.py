"""``carbond tune``'s Pareto front: which settings are on it (:func:`mark_front`) and, with
``--plot FILE.png``, the sweep's carbon vs waiting drawn with it (:func:`plot_pareto`).

Each parameter combination is a point (mean wait on x, total gCO2e on y); the points no other
beats on both are joined as the front, settings that rejected jobs or missed deadlines (kept
off the front) are crosses, and the run-now baseline is a reference line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from daemon.ledger.export import save_figure

__all__ = ["mark_front", "pareto", "plot_pareto"]


def pareto(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which points no other point beats on both coordinates (lower is better). Values within
    a relative 1e-9 (or 1e-9 absolute, near zero) are equal: the grams of two settings that ran
    the same jobs the same way differ in the last bits of their float sums, and until
    2026-12-07 such a setting was on the front beside one that waited 40 % less."""

    def below(a: float, x: float) -> bool:
        return a < x and not math.isclose(a, x, rel_tol=1e-9, abs_tol=1e-9)

    return [
        not any(
            not below(x, a) and not below(y, b) and (below(a, x) or below(b, y))
            for j, (a, b) in enumerate(points)
            if j != i
        )
        for i, (x, y) in enumerate(points)
    ]


def mark_front(rows: Sequence[dict[str, Any]], *, unrunnable: int = 0) -> None:
    """Set each tuning row's ``pareto`` (on the carbon-vs-mean-wait front) and ``excluded``
    (why it cannot be: rejected jobs or missed deadlines, else None). The front is drawn among
    the settings that ran every job by its deadline only: fewer grams bought with a rejected
    job or a missed deadline is no trade-off to offer an operator. ``unrunnable`` jobs (that no
    GPU of the cluster can run: every setting rejects them) are not held against a setting:
    until 2026-12-07 one such job in an operator's ledger left the front empty."""
    for row in rows:
        rejected = row["rejected"] - unrunnable
        why = [f"{rejected} rejected"] if rejected > 0 else []
        if row["deadline_misses"]:
            why.append(f"{row['deadline_misses']} deadline misses")
        row["excluded"] = ", ".join(why) or None
        row["pareto"] = False
    eligible = [r for r in rows if r["excluded"] is None]
    front = pareto([(r["total_g"], r["mean_wait_s"]) for r in eligible])
    for row, on_front in zip(eligible, front, strict=True):
        row["pareto"] = on_front


def _label(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "defaults"


def plot_pareto(
    rows: Sequence[Mapping[str, Any]],
    path: Path,
    *,
    title: str,
    run_now_g: float | None = None,
) -> Path:
    """Write the figure of ``rows`` (each with ``params``, ``total_g``, ``mean_wait_s``,
    ``pareto`` and optionally ``excluded``) to ``path``, in the format its suffix names (PNG
    without one: :func:`daemon.reports.plots.image_format`).

    Raises:
        UsageError: a suffix matplotlib cannot write.
    """
    import matplotlib

    from daemon.reports.plots import image_format

    fmt = image_format(path)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    try:
        wait_h = [float(r["mean_wait_s"]) / 3600 for r in rows]
        grams = [float(r["total_g"]) for r in rows]
        on = [bool(r["pareto"]) for r in rows]
        bad = [bool(r.get("excluded")) for r in rows]
        dominated = [not o and not b for o, b in zip(on, bad, strict=True)]
        ax.scatter([w for w, d in zip(wait_h, dominated, strict=True) if d],
                   [g for g, d in zip(grams, dominated, strict=True) if d],
                   color="#bdbdbd", label="dominated", zorder=2)  # fmt: skip
        if any(bad):
            ax.scatter([w for w, b in zip(wait_h, bad, strict=True) if b],
                       [g for g, b in zip(grams, bad, strict=True) if b], marker="x",
                       color="#756bb1", label="rejected jobs or missed deadlines",
                       zorder=2)  # fmt: skip
        front = sorted((w, g) for w, g, o in zip(wait_h, grams, on, strict=True) if o)
        ax.plot([w for w, _ in front], [g for _, g in front], "o-", color="#e6550d",
                label="Pareto front", zorder=3)  # fmt: skip
        for row, w, g, o in zip(rows, wait_h, grams, on, strict=True):
            if o:
                ax.annotate(_label(row["params"]), (w, g), textcoords="offset points",
                            xytext=(6, 4), fontsize=7)  # fmt: skip
        if run_now_g is not None:
            ax.axhline(run_now_g, color="#3182bd", linestyle="--", label="run-now")
        ax.set_xlabel("mean wait (h)")
        ax.set_ylabel("total gCO2e (operational + embodied)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, path, dpi=110, fmt=fmt)
    finally:
        plt.close(fig)
    return path
