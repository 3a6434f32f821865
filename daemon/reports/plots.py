"""``carbond report --plot FILE.png``: the period's figures in one PNG (matplotlib, headless).

Three panels, all from the ledger:

1. emissions over time: operational and embodied gCO2e stacked per hour (or per day for
   periods over three days), on a linear axis so each part's height is its share;
2. each region's grid intensity (the recorded samples) with the jobs that ran there drawn over
   it as bars at the intensity they saw, from start to end;
3. predicted vs measured energy per job (log-log, with the y = x line); estimated jobs, whose
   energy is derived from the prediction, are left out and counted in the title.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from daemon.errors import UsageError
from daemon.ledger.accounting import Accounting
from daemon.ledger.export import save_figure
from daemon.reports.lines import JobLine, shown
from daemon.reports.render import counted, fixed

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["image_format", "plot_report", "report_figure"]


def _bucket(lines: Sequence[JobLine]) -> timedelta:
    ends = [line.finished_at for line in lines if line.finished_at]
    span = (max(ends) - min(ends)) if ends else timedelta(0)
    return timedelta(days=1) if span > timedelta(days=3) else timedelta(hours=1)


def _floor(at: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((at - epoch) // step) * step


def _days(times: Sequence[datetime]) -> list[float]:
    """Matplotlib's date numbers of ``times`` (days since its default epoch, 1970-01-01 UTC);
    the axis shows them as dates."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [(t - epoch).total_seconds() / 86_400 for t in times]


def _emissions(ax: Axes, lines: Sequence[JobLine]) -> None:
    step = _bucket(lines)
    buckets: dict[datetime, list[float]] = {}
    for line in lines:
        if line.finished_at is None or line.total_g is None:
            continue
        slot = buckets.setdefault(_floor(line.finished_at, step), [0.0, 0.0])
        slot[0] += line.operational_g or 0.0
        slot[1] += line.embodied_g or 0.0
    times = sorted(buckets)
    width = step.total_seconds() / 86_400 * 0.8  # matplotlib dates are in days
    operational = [buckets[t][0] for t in times]
    embodied = [buckets[t][1] for t in times]
    x = _days(times)
    ax.xaxis_date()
    ax.bar(x, operational, width, align="edge", color="#e6550d", label="operational")
    ax.bar(x, embodied, width, bottom=operational, align="edge", color="#636363",
           label="embodied")  # fmt: skip
    total = sum(operational) + sum(embodied)
    share = sum(embodied) / total if total > 0 else 0.0
    per = "day" if step >= timedelta(days=1) else "hour"
    ax.set_title(f"Emissions per {per} by end time: {fixed(total)} gCO2e, {share:.1%} embodied")
    ax.set_ylabel("gCO2e")
    _legend(ax, "best")  # a bar per hour or day
    ax.grid(True, axis="y", alpha=0.3)


def _intensity(ax: Axes, ledger: Accounting, lines: Sequence[JobLine]) -> None:
    runs = [line for line in lines if line.started_at and line.finished_at]
    if not runs:
        ax.set_title("Grid intensity: no job ran in the period")
        return
    start = min(line.started_at for line in runs if line.started_at) - timedelta(hours=1)
    end = max(line.finished_at for line in runs if line.finished_at) + timedelta(hours=1)
    ax.xaxis_date()
    colours = ["#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#dd1c77"]
    regions = sorted({(line.region, line.zone) for line in runs},
                     key=lambda pair: (pair[0] is None, pair[0] or "", pair[1]))  # fmt: skip
    for i, (region, zone) in enumerate(regions):
        colour = colours[i % len(colours)]
        samples = ledger.intensity_samples(zone, start, end)
        if samples:
            ax.step(_days([s[0] for s in samples]), [s[1] for s in samples], where="post",
                    color=colour, alpha=0.6, label=f"{shown(region)} ({zone})")  # fmt: skip
        # the key's jobs (this region, this zone) as one collection of bars: a line each took
        # minutes and gigabytes over 100,000 jobs; a region's jobs in another zone (``unknown``:
        # recorded before outcomes kept one) are drawn under that key, not twice
        here = [r for r in runs if (r.region, r.zone) == (region, zone)]
        ax.hlines([line.intensity_g_per_kwh or 0.0 for line in here],
                  _days([line.started_at for line in here if line.started_at]),
                  _days([line.finished_at for line in here if line.finished_at]),
                  colors=colour, linewidth=6, capstyle="butt")  # fmt: skip
    ax.set_title("Grid intensity per region (line) and the jobs that ran there (bars)")
    ax.set_ylabel("gCO2e/kWh")
    _legend(ax, "upper right")
    ax.grid(True, alpha=0.3)


def _legend(ax: Axes, loc: Literal["best", "upper right", "upper left"]) -> None:
    """The legend of ``ax``'s labelled artists at ``loc`` (a panel with a point or bar per job
    names a corner: ``"best"`` searches every one, slow and warned about over many jobs);
    none without any (no intensity sample recorded: matplotlib warned)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc=loc)


def _energy(ax: Axes, lines: Sequence[JobLine]) -> None:
    measured = [
        line for line in lines if line.measured and line.predicted_energy_j and line.energy_j
    ]
    skipped = sum(1 for line in lines if not line.measured)
    if measured:
        x = [(line.predicted_energy_j or 0.0) / 1000 for line in measured]
        y = [(line.energy_j or 0.0) / 1000 for line in measured]
        ax.scatter(x, y, color="#3182bd", zorder=3)
        lo, hi = min(*x, *y) / 1.5, max(*x, *y) * 1.5
        ax.plot([lo, hi], [lo, hi], "k--", linewidth=1, label="measured = predicted")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _legend(ax, "upper left")  # the points lie along y = x
    ax.set_xlabel("predicted energy (kJ)")
    ax.set_ylabel("measured energy (kJ)")
    ax.set_title(f"Predicted vs measured energy: {counted(len(measured), 'job')} ({skipped} "
                 "estimated, not shown)")  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)


def report_figure(ledger: Accounting, lines: Sequence[JobLine]) -> Figure:
    """The three-panel figure (see the module docstring); the caller closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 12))
    _emissions(axes[0], lines)
    _intensity(axes[1], ledger, lines)
    _energy(axes[2], lines)
    for ax in axes[:2]:
        ax.tick_params(axis="x", labelrotation=20)
    fig.suptitle(f"carbond report: {len(lines)} finished jobs")
    fig.tight_layout()
    return fig


def image_format(path: Path) -> str:
    """The image format ``path``'s suffix names (``png`` when it has none: the figure is
    written to ``path`` itself, matplotlib would add ``.png`` to the name).

    Raises:
        UsageError: a suffix matplotlib cannot write (names the path and the formats).
    """
    from matplotlib.backend_bases import FigureCanvasBase

    suffix = path.suffix.lower().removeprefix(".")
    if not suffix:
        return "png"
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        raise UsageError(
            f"--plot {path}: cannot draw a .{suffix} file (use {', '.join(sorted(formats))})"
        )
    return suffix


def plot_report(ledger: Accounting, lines: Sequence[JobLine], path: Path) -> Path:
    """Write :func:`report_figure` to ``path``, in the format its suffix names
    (:func:`image_format`)."""
    import matplotlib.pyplot as plt

    fmt = image_format(path)
    fig = report_figure(ledger, lines)
    try:
        save_figure(fig, path, dpi=100, fmt=fmt)
    finally:
        plt.close(fig)
    return path
