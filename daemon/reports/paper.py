"""The paper's characterisation as tables, takeaways and PNG figures (Figures 1 and 4; the
phases' Figures 2, 3, 5 and 6 are in :mod:`daemon.reports.paper_phases`)."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.ledger.export import file_mode
from policies.footprint.paper import (
    PAPER_INPUT_TOKENS,
    PAPER_OUTPUT_TOKENS,
    PAPER_ZONES,
    PaperCell,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "Takeaway",
    "cell_rows",
    "figure1",
    "figure4",
    "places",
    "plot_figure1",
    "plot_figure4",
    "save_png",
    "takeaways",
]


def precisions(cells: Sequence[PaperCell]) -> str:
    """The weight precision of each model in ``cells``, e.g. ``llama-1b fp32, llama-7b fp16``
    (the paper's setup or a ``--precision`` override: a figure must say which it shows)."""
    found = dict.fromkeys((c.model, c.precision) for c in cells)
    return ", ".join(f"{model} {precision}" for model, precision in found)


def cell_rows(cells: Sequence[PaperCell]) -> list[dict[str, Any]]:
    """One JSON-ready row per cell (OOM cells carry ``fits: false`` and nulls)."""
    rows = []
    for c in cells:
        grams = c.per_prompt
        rows.append(
            {
                "model": c.model,
                "gpu": c.gpu,
                "batch_size": c.batch_size,
                "precision": c.precision,
                "zone": c.zone,
                "intensity_g_per_kwh": c.intensity_g_per_kwh,
                "fits": c.fits,
                "reason": c.estimate.reason or None,
                "latency_s": c.latency_s if c.fits else None,
                "energy_per_prompt_j": c.energy_per_prompt_j if c.fits else None,
                "operational_g": grams.operational_g if grams else None,
                "embodied_g": grams.embodied_g if grams else None,
                "total_g": grams.total_g if grams else None,
                "embodied_share": grams.embodied_share if grams else None,
            }
        )
    return rows


def places(pairs: Iterable[tuple[float, float]], fewest: int, most: int = 6) -> int:
    """The fewest decimal places, from ``fewest`` up to ``most``, at which the two values of
    every pair that differ print apart (in the units printed: pass percentages x 100). A
    finding is judged on the values themselves: a ratio of 1.003 judged "more" than 1 and
    printed "1.00x" read as equal, and the same "1.00x" said NO at 0.997; each pair is a value
    and what the finding compares it with (a threshold, or another value printed beside it)."""
    for n in range(fewest, most + 1):
        if all(a == b or round(a, n) != round(b, n) for a, b in pairs):
            return n
    return most


@dataclass(frozen=True, slots=True)
class Takeaway:
    """A finding of the paper next to what carbond's model gives."""

    claim: str
    paper: str
    carbond: str
    holds: bool


def _cell(cells: Sequence[PaperCell], model: str, gpu: str, batch: int, zone: str) -> PaperCell:
    return next(
        c for c in cells if (c.model, c.gpu, c.batch_size, c.zone) == (model, gpu, batch, zone)
    )


def _max_share(cells: Sequence[PaperCell], gpu: str, zone: str) -> float:
    return max(
        c.per_prompt.embodied_share
        for c in cells
        if c.gpu == gpu and c.zone == zone and c.model == "llama-1b" and c.per_prompt
    )


def takeaways(cells: Sequence[PaperCell]) -> list[Takeaway]:
    """The paper's headline comparisons, computed from ``cells`` (the full characterisation)."""
    qc = "CA-QC"
    out = []
    # Section 2.2, batch 1: T4 energy 28 % lower (1B) and 20 % lower (7B) but 1.4x higher (3B);
    # T4 1.1x, 1.4x and 2.2x slower.
    for model, paper_energy, t4_less, paper_slow in (
        ("llama-1b", "28 % less", True, "1.1x"),
        ("llama-3b", "1.4x more", False, "1.4x"),
        ("llama-7b", "20 % less", True, "2.2x"),
    ):
        t4 = _cell(cells, model, "T4", 1, qc)
        rtx = _cell(cells, model, "RTX6000-Ada", 1, qc)
        ratio = t4.energy_per_prompt_j / rtx.energy_per_prompt_j
        if ratio < 1:
            ours = f"{1 - ratio:.{places([(100 * (1 - ratio), 0.0)], 0)}%} less"
        else:
            ours = f"{ratio:.{places([(ratio, 1.0)], 2)}f}x more"
        out.append(Takeaway(
            f"{model}, batch 1: T4 energy per prompt vs RTX6000-Ada", paper_energy, ours,
            (ratio < 1) == t4_less))  # fmt: skip
        slow = t4.latency_s / rtx.latency_s
        out.append(Takeaway(
            f"{model}, batch 1: T4 latency vs RTX6000-Ada", f"{paper_slow} slower",
            f"{slow:.{places([(slow, 1.0)], 2)}f}x slower", slow > 1))  # fmt: skip
    t4 = _cell(cells, "llama-1b", "T4", 64, qc)
    rtx = _cell(cells, "llama-1b", "RTX6000-Ada", 64, qc)
    ratio = t4.energy_per_prompt_j / rtx.energy_per_prompt_j
    out.append(Takeaway("llama-1b, batch 64: T4 energy per prompt vs RTX6000-Ada",
                        "more (up to 2.9x)", f"{ratio:.{places([(ratio, 1.0)], 2)}f}x",
                        ratio > 1))  # fmt: skip
    # Section 2.2: the T4 ran 7B at batch 4 ("up to 11.4x slower ... with a batch size of 4")
    # and ran out of memory at larger batches.
    oom = [c.batch_size for c in cells if c.model == "llama-7b" and c.gpu == "T4" and not c.fits]
    out.append(Takeaway("llama-7b on T4 at large batch", "OOM (batch 4 runs)",
                        f"OOM from batch {min(oom)}" if oom else "fits",
                        bool(oom) and min(oom) > 4))  # fmt: skip
    # Section 3.2: the share falls as the grid gets dirtier (true of any GPU under Eq. 4, so it
    # cannot fail alone) and is larger for the RTX6000-Ada than for the T4 in every region
    # (its higher embodied carbon), which the model could get wrong.
    shares = {
        g: [_max_share(cells, g, zone) for zone in PAPER_ZONES] for g in ("T4", "RTX6000-Ada")
    }
    rtx_above = all(r > t for t, r in zip(shares["T4"], shares["RTX6000-Ada"], strict=True))
    # the shares compared (each zone's with the next, each GPU's with the other's) print apart
    pct = {gpu: [100 * s for s in own] for gpu, own in shares.items()}
    compared = [*zip(pct["T4"], pct["RTX6000-Ada"], strict=True),
                *(pair for own in pct.values() for pair in itertools.pairwise(own))]  # fmt: skip
    digits = places(compared, 1)
    for gpu, paper_shares in (("T4", "19.7 / 2.8 / 1.2 %"), ("RTX6000-Ada", "30.7 / 5.0 / 2.1 %")):
        own = shares[gpu]
        falls = own[0] > own[1] > own[2]
        out.append(Takeaway(
            f"{gpu}: max embodied share, QC / CISO / PACE (1B)", paper_shares,
            " / ".join(f"{s:.{digits}%}" for s in own), falls and rtx_above))  # fmt: skip
    return out


def figure1(cells: Sequence[PaperCell]) -> Figure:
    """Latency and energy per prompt vs batch size, per model and GPU, on log axes labelled
    in plain numbers (batch 1 to 64 as the paper's Figure 1, not powers of two). The caller
    closes the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, LogFormatter, NullLocator, ScalarFormatter

    zone = next(iter(PAPER_ZONES))
    batches = sorted({c.batch_size for c in cells})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for (model, gpu), style in _series_styles(cells).items():
        pts = [c for c in cells if c.model == model and c.gpu == gpu and c.zone == zone and c.fits]
        x = [c.batch_size for c in pts]
        axes[0].plot(x, [c.latency_s for c in pts], style, label=f"{model} {gpu}")
        axes[1].plot(x, [c.energy_per_prompt_j for c in pts], style, label=f"{model} {gpu}")
    for ax, label in zip(axes, ("latency per prompt (s)", "energy per prompt (J)"), strict=True):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(batches))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        ax.set_xlabel("batch size")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"carbond estimate, hf-eager, {PAPER_INPUT_TOKENS} -> {PAPER_OUTPUT_TOKENS} "
                 f"tokens, weights {precisions(cells)}; missing = OOM")  # fmt: skip
    fig.tight_layout()
    return fig


def plot_figure1(cells: Sequence[PaperCell], path: Path) -> Path:
    """Write :func:`figure1` to ``path`` (PNG, through a temporary file renamed over it)."""

    return save_png(figure1(cells), path)


def save_png(fig: Figure, path: Path) -> Path:
    """``fig`` as a PNG in a temporary file beside ``path``, renamed over it (a failed write
    leaves the previous figure whole, never part of a new one), then closed; ``path``.

    Raises:
        OSError: ``path`` cannot be written (the temporary file is removed).
    """
    import matplotlib.pyplot as plt

    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, file_mode(path))
            with os.fdopen(fd, "wb") as out:
                fig.savefig(out, dpi=120, format="png")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        plt.close(fig)
    return path


def _series_styles(cells: Sequence[PaperCell]) -> dict[tuple[str, str], str]:
    markers = {"llama-1b": "o", "llama-3b": "s", "llama-7b": "^"}
    lines = {"T4": "--", "RTX6000-Ada": "-"}
    keys = dict.fromkeys((c.model, c.gpu) for c in cells)
    return {k: f"{markers.get(k[0], 'x')}{lines.get(k[1], ':')}" for k in keys}


def figure4(cells: Sequence[PaperCell], model: str = "llama-1b") -> Figure:
    """Per-prompt carbon, embodied (bottom) and operational (top), per zone and batch size.

    Each zone has its own *linear* axis, so a bar's parts are in proportion (on a log axis a
    2 % embodied share stacked under the operational part looks like half the bar); the
    embodied share is written over each bar. The caller closes the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    zones = list(PAPER_ZONES)
    gpus = list(dict.fromkeys(c.gpu for c in cells))
    batches = sorted({c.batch_size for c in cells})
    fig, axes = plt.subplots(1, len(zones), figsize=(4.6 * len(zones), 4.2))
    width = 0.8 / len(gpus)
    colours = {"T4": ("#9ecae1", "#3182bd"), "RTX6000-Ada": ("#fdae6b", "#e6550d")}
    for ax, zone in zip(np.atleast_1d(axes), zones, strict=True):
        for i, gpu in enumerate(gpus):
            pts = {c.batch_size: c for c in cells if (c.model, c.gpu, c.zone) == (model, gpu, zone)}
            x = np.arange(len(batches)) + i * width
            grams = [pts[b].per_prompt if b in pts else None for b in batches]
            emb = [g.embodied_g if g else 0.0 for g in grams]
            op = [g.operational_g if g else 0.0 for g in grams]
            light, dark = colours.get(gpu, ("#cccccc", "#636363"))
            ax.bar(x, emb, width, color=dark, label=f"{gpu} embodied")
            ax.bar(x, op, width, bottom=emb, color=light, label=f"{gpu} operational")
            for xi, g in zip(x, grams, strict=True):
                if g is not None and g.total_g > 0:
                    ax.annotate(f"{g.embodied_share:.0%}", (xi, g.total_g), ha="center",
                                va="bottom", fontsize=6)  # fmt: skip
        ax.set_xticks(np.arange(len(batches)) + width * (len(gpus) - 1) / 2, batches)
        ax.set_xlabel("batch size (label: embodied share)")
        ax.set_title(f"{zone} ({PAPER_ZONES[zone]:g} g/kWh)")
        ax.set_ylabel("gCO2e per prompt")
        ax.grid(True, axis="y", alpha=0.3)
    np.atleast_1d(axes)[-1].legend(fontsize=7)
    weights = "/".join(dict.fromkeys(c.precision for c in cells if c.model == model))
    fig.suptitle(f"Per-prompt carbon, {model} at {weights} (carbond's model; cf. the paper's "
                 "Figure 4); linear axes, one per zone")  # fmt: skip
    fig.tight_layout()
    return fig


def plot_figure4(cells: Sequence[PaperCell], path: Path, model: str = "llama-1b") -> Path:
    """Write :func:`figure4` to ``path`` (PNG, through a temporary file renamed over it)."""

    return save_png(figure4(cells, model), path)
