"""The paper's prefill and decode phases (Section 2.3 and 3.3): rows, takeaways 2 and 4, and
Figures 2, 3 (throughput and J/token vs batch size) and 5, 6 (gCO2e/token, stacked)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.reports.paper import Takeaway, places, save_png
from policies.footprint.paper import PAPER_INPUT_TOKENS, PAPER_OUTPUT_TOKENS, PhaseCell

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "phase_carbon_figure",
    "phase_figure",
    "phase_rows",
    "phase_takeaways",
    "plot_phase",
    "plot_phase_carbon",
]

# Values this close count as one (a compute-bound phase's per-token figures are flat past the
# batch that fills the GPU, equal up to rounding): the smallest such batch is the best.
_TIE: float = 1e-6
# Decode's knee: the smallest batch within this of a GPU's lowest J/token.
_KNEE: float = 0.05


def phase_rows(phases: Sequence[PhaseCell]) -> list[dict[str, Any]]:
    """One JSON-ready row per phase cell (OOM cells carry ``fits: false`` and nulls)."""
    rows = []
    for c in phases:
        grams = c.per_token
        rows.append(
            {
                "model": c.model,
                "gpu": c.gpu,
                "batch_size": c.batch_size,
                "phase": c.phase,
                "zone": c.zone,
                "intensity_g_per_kwh": c.intensity_g_per_kwh,
                "fits": c.fits,
                "tokens": c.tokens,
                "throughput_tokens_per_s": c.throughput_tokens_per_s if c.fits else None,
                "energy_per_token_j": c.energy_per_token_j if c.fits else None,
                "operational_g_per_token": grams.operational_g if grams else None,
                "embodied_g_per_token": grams.embodied_g if grams else None,
                "total_g_per_token": grams.total_g if grams else None,
                "embodied_share": grams.embodied_share if grams else None,
            }
        )
    return rows


def _series(phases: Sequence[PhaseCell], phase: str, gpu: str) -> list[PhaseCell]:
    return [c for c in phases if (c.phase, c.gpu) == (phase, gpu) and c.per_token is not None]


def _best(cells: Sequence[PhaseCell], value: Callable[[PhaseCell], float], low: bool) -> int:
    """The smallest batch whose ``value`` is the lowest (``low``) or highest, ties within
    :data:`_TIE` included."""
    sign = 1.0 if low else -1.0
    top = min(sign * value(c) for c in cells)
    return min(c.batch_size for c in cells if sign * value(c) <= top + abs(top) * _TIE)


def _j(c: PhaseCell) -> float:
    return c.energy_per_token_j


def _g(c: PhaseCell) -> float:
    return c.per_token.total_g if c.per_token else float("inf")


def _rate(c: PhaseCell) -> float:
    return c.throughput_tokens_per_s


def phase_takeaways(phases: Sequence[PhaseCell]) -> list[Takeaway]:
    """Takeaways 2 and 4 judged from ``phases`` (the 1B model on the T4 and RTX6000-Ada)."""
    t4, rtx = "T4", "RTX6000-Ada"
    pre = {g: {c.batch_size: c for c in _series(phases, "prefill", g)} for g in (t4, rtx)}
    dec = {g: {c.batch_size: c for c in _series(phases, "decode", g)} for g in (t4, rtx)}
    both = sorted(set(pre[t4]) & set(pre[rtx]) & set(dec[t4]) & set(dec[rtx]))
    if not both:  # a catalog override can leave a GPU no batch that fits
        return [Takeaway("prefill and decode phases: T4 and RTX6000-Ada", "both run",
                         "no batch size both run", False)]  # fmt: skip
    out = []
    # Section 2.3, prefill: the RTX6000-Ada is more efficient in throughput and energy.
    ratios = [_j(pre[rtx][b]) / _j(pre[t4][b]) for b in both]
    faster = all(_rate(pre[rtx][b]) > _rate(pre[t4][b]) for b in both)
    n = places([(max(ratios), 1.0)], 2)
    out.append(Takeaway(
        "prefill: RTX6000-Ada J/token vs T4, every batch", "lower, and higher tokens/s",
        f"{min(ratios):.{n}f}x to {max(ratios):.{n}f}x the T4's",
        faster and max(ratios) < 1))  # fmt: skip
    # Takeaway 2, prefill: the batch of highest throughput is not the batch of lowest J/token.
    best = {g: (_best(list(pre[g].values()), _rate, low=False),
                _best(list(pre[g].values()), _j, low=True)) for g in (t4, rtx)}  # fmt: skip
    out.append(Takeaway(
        "prefill: batch of highest tokens/s vs of lowest J/token (T4; RTX6000-Ada)",
        "8 vs 8; 32 vs 16", "; ".join(f"{r} vs {j}" for r, j in best.values()),
        any(r != j for r, j in best.values())))  # fmt: skip
    # Section 2.3, decode at batch 1: the T4 uses 27.1 % less energy per token, at 9.5 % less
    # throughput; at batch 16 the RTX6000-Ada uses 57.5 % less.
    if 1 in dec[t4] and 1 in dec[rtx]:
        saving = 1 - _j(dec[t4][1]) / _j(dec[rtx][1])
        slower = 1 - _rate(dec[t4][1]) / _rate(dec[rtx][1])
        n = places([(100 * saving, 0.0), (100 * slower, 0.0)], 1)
        less = f"{saving:.{n}%} {'less' if saving > 0 else 'more'}"
        out.append(Takeaway(
            "decode, batch 1: T4 J/token vs RTX6000-Ada (tokens/s)", "27.1 % less (9.5 % lower)",
            f"{less} ({slower:.{n}%} lower)", saving > 0 and slower > 0))  # fmt: skip
    if 16 in dec[t4] and 16 in dec[rtx]:
        ratio = _j(dec[rtx][16]) / _j(dec[t4][16])
        n = places([(100 * (1 - ratio), 0.0)], 1)
        ours = f"{1 - ratio:.{n}%} lower" if ratio < 1 else f"{ratio - 1:.{n}%} higher"
        out.append(Takeaway("decode, batch 16: RTX6000-Ada J/token vs T4", "57.5 % lower",
                            ours, ratio < 1))  # fmt: skip
    # Takeaway 2, decode: the best batch for energy differs between the GPUs.
    lowest = {g: _best(list(dec[g].values()), _j, low=True) for g in (t4, rtx)}
    out.append(Takeaway(
        "decode: batch of lowest J/token (T4; RTX6000-Ada)", "differs between GPUs",
        f"{lowest[t4]}; {lowest[rtx]}", lowest[t4] != lowest[rtx]))  # fmt: skip
    knee = {g: _knee(list(dec[g].values())) for g in (t4, rtx)}
    out.append(Takeaway(
        f"decode: smallest batch within {_KNEE:.0%} of the lowest J/token (T4; RTX6000-Ada)",
        "differs between GPUs", f"{knee[t4]}; {knee[rtx]}", knee[t4] != knee[rtx]))  # fmt: skip
    # Takeaway 4: with embodied carbon the best configuration (GPU, batch) changes.
    for phase in ("prefill", "decode"):
        cells = [c for g in (t4, rtx) for c in _series(phases, phase, g)]
        by_j = _best_config(cells, _j)
        by_g = _best_config(cells, _g)
        zone = cells[0].zone if cells else ""
        out.append(Takeaway(
            f"{phase}: lowest J/token vs lowest gCO2e/token (GPU batch, {zone})",
            "different configurations", f"{by_j} vs {by_g}", by_j != by_g))  # fmt: skip
    # Section 3.3, Figure 6: embodied carbon narrows the gap in the T4's favour (its lower
    # embodied carbon), i.e. the RTX6000-Ada/T4 ratio is higher in grams than in joules.
    shifts = [(_g(dec[rtx][b]) / _g(dec[t4][b])) / (_j(dec[rtx][b]) / _j(dec[t4][b]))
              for b in both]  # fmt: skip
    n = places([(min(shifts), 1.0)], 3)
    out.append(Takeaway(
        "decode: RTX6000-Ada/T4 ratio, gCO2e/token over J/token, every batch",
        "above 1 (T4's lower embodied)", f"{min(shifts):.{n}f} to {max(shifts):.{n}f}",
        min(shifts) > 1))  # fmt: skip
    return out


def _knee(cells: Sequence[PhaseCell]) -> int:
    lowest = min(_j(c) for c in cells)
    return min(c.batch_size for c in cells if _j(c) <= lowest * (1 + _KNEE))


def _best_config(cells: Sequence[PhaseCell], value: Callable[[PhaseCell], float]) -> str:
    """``GPU batch`` of the lowest ``value``, ties within :data:`_TIE` to the first cell."""
    top = min(value(c) for c in cells)
    best = next(c for c in cells if value(c) <= top + abs(top) * _TIE)
    return f"{best.gpu} {best.batch_size}"


def _log2_batches(ax: Any, batches: Sequence[int]) -> None:
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(batches))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("batch size")


def phase_figure(phases: Sequence[PhaseCell], phase: str) -> Figure:
    """Figure 2 (prefill) or 3 (decode): throughput (tokens/s) and energy (J/token, log axis)
    vs batch size, one line per GPU. The caller closes the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for c in phases if c.phase == phase]
    batches = sorted({c.batch_size for c in cells})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for gpu in dict.fromkeys(c.gpu for c in cells):
        pts = _series(cells, phase, gpu)
        x = [c.batch_size for c in pts]
        style = "o--" if gpu == "T4" else "s-"
        axes[0].plot(x, [_rate(c) for c in pts], style, label=gpu)
        axes[1].plot(x, [_j(c) for c in pts], style, label=gpu)
    for ax, label in zip(axes, ("throughput (tokens/s)", "energy per token (J/token)"),
                         strict=True):  # fmt: skip
        _log2_batches(ax, batches)
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    from matplotlib.ticker import LogFormatter

    axes[1].set_yscale("log")
    axes[1].yaxis.set_major_formatter(LogFormatter())
    axes[1].yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    model = cells[0].model if cells else ""
    tokens = (f"{PAPER_INPUT_TOKENS} prompt tokens" if phase == "prefill"
              else f"{PAPER_OUTPUT_TOKENS - 1} generated tokens")  # fmt: skip
    number = 2 if phase == "prefill" else 3
    fig.suptitle(f"{phase} phase, {model}, hf-eager, per request {tokens} (carbond's model; "
                 f"cf. the paper's Figure {number}); missing = OOM")  # fmt: skip
    fig.tight_layout()
    return fig


def phase_carbon_figure(phases: Sequence[PhaseCell], phase: str) -> Figure:
    """Figure 5 (prefill) or 6 (decode): gCO2e per token, embodied (bottom) and operational
    (top) stacked on a linear axis, per batch size and GPU. The caller closes the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cells = [c for c in phases if c.phase == phase]
    gpus = list(dict.fromkeys(c.gpu for c in cells))
    batches = sorted({c.batch_size for c in cells})
    fig, ax = plt.subplots(figsize=(8, 4.6))
    width = 0.8 / max(1, len(gpus))
    colours = {"T4": ("#9ecae1", "#3182bd"), "RTX6000-Ada": ("#fdae6b", "#e6550d")}
    for i, gpu in enumerate(gpus):
        pts = {c.batch_size: c.per_token for c in cells if c.gpu == gpu}
        grams = [pts.get(b) for b in batches]
        x = np.arange(len(batches)) + i * width
        emb = [g.embodied_g * 1e6 if g else 0.0 for g in grams]
        op = [g.operational_g * 1e6 if g else 0.0 for g in grams]
        light, dark = colours.get(gpu, ("#cccccc", "#636363"))
        ax.bar(x, emb, width, color=dark, label=f"{gpu} embodied")
        ax.bar(x, op, width, bottom=emb, color=light, label=f"{gpu} operational")
        for xi, g in zip(x, grams, strict=True):
            if g is not None and g.total_g > 0:
                ax.annotate(f"{g.embodied_share:.0%}", (xi, g.total_g * 1e6), ha="center",
                            va="bottom", fontsize=6)  # fmt: skip
    ax.set_xticks(np.arange(len(batches)) + width * (len(gpus) - 1) / 2, map(str, batches))
    ax.set_xlabel("batch size (label: embodied share)")
    ax.set_ylabel("µg CO2e per token")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4)
    zone = f"{cells[0].zone} ({cells[0].intensity_g_per_kwh:g} g/kWh)" if cells else ""
    number = 5 if phase == "prefill" else 6
    model = cells[0].model if cells else ""
    fig.suptitle(f"Per-token carbon, {phase}, {model}, {zone}\n(carbond's model; cf. the "
                 f"paper's Figure {number}); linear axis", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


def plot_phase(phases: Sequence[PhaseCell], phase: str, path: Path) -> Path:
    """Write :func:`phase_figure` to ``path`` (PNG, through a temporary file renamed over it)."""

    return save_png(phase_figure(phases, phase), path)


def plot_phase_carbon(phases: Sequence[PhaseCell], phase: str, path: Path) -> Path:
    """Write :func:`phase_carbon_figure` to ``path`` (PNG, as :func:`plot_phase`)."""

    return save_png(phase_carbon_figure(phases, phase), path)
