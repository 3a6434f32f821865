"""``carbond paper``: reproduce the HotCarbon'24 characterisation with carbond's own model."""

from __future__ import annotations

import argparse
import errno
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from daemon.catalog import gpu_catalog
from daemon.cli.context import add_common_options, settings_from
from daemon.cli.output import print_json, print_table, writable
from daemon.errors import DaemonError
from daemon.reports.paper import cell_rows, plot_figure1, plot_figure4, takeaways
from policies.footprint.paper import (
    PAPER_INPUT_TOKENS,
    PAPER_OUTPUT_TOKENS,
    PaperCell,
    characterise,
)

__all__ = ["register"]

_Plot = Callable[[Sequence[PaperCell], Path], Path]
# The figures ``--out`` gets, by file name.
_FIGURES: tuple[tuple[str, _Plot], ...] = (
    ("paper_fig1_latency_energy.png", plot_figure1),
    ("paper_fig4_carbon_per_prompt.png", plot_figure4),
)


def register(subparsers: Any) -> None:
    """Add ``paper``."""
    paper = subparsers.add_parser(
        "paper",
        help="reproduce the HotCarbon'24 paper's characterisation (tables + PNG figures)",
        description="Reproduce the HotCarbon'24 characterisation with carbond's model: "
        "per-prompt latency, energy and carbon of the 1B/3B/7B Llama models at batch 1-64 on a "
        "T4 and an RTX 6000 Ada in CA-QC, US-CAL-CISO and US-NW-PACE, and each of the paper's "
        "findings next to carbond's figure.",
    )
    paper.add_argument("--out", type=Path, default=None, help="write PNG figures to this folder")
    paper.add_argument("--precision", default=None, help="one precision for every model "
                       "(default: the paper's, fp32 for 1B/3B and fp16 for 7B)")  # fmt: skip
    add_common_options(paper)
    paper.set_defaults(func=_paper)


def _paper(args: argparse.Namespace) -> int:
    cells = list(
        characterise(precision=args.precision, gpu_catalog=gpu_catalog(settings_from(args)))
    )
    targets = _figure_targets(args.out)  # after bad input (--precision) fails, before drawing
    found = takeaways(cells)
    figures = [str(_write_figure(plot, cells, path)) for plot, path in targets]
    if args.json:
        print_json(
            {
                "cells": cell_rows(cells),
                "takeaways": [
                    {"claim": t.claim, "paper": t.paper, "carbond": t.carbond, "holds": t.holds}
                    for t in found
                ],
                "figures": figures,
            }
        )
        return 0
    _print_tables(cell_rows(cells))
    print_table(
        "The paper's findings vs carbond's model",
        ("finding", "paper", "carbond", "same direction"),
        [(t.claim, t.paper, t.carbond, "yes" if t.holds else "NO") for t in found],
    )
    for figure in figures:
        print(f"figure: {figure}")
    return 0


def _figure_targets(out: Path | None) -> list[tuple[_Plot, Path]]:
    """The figures to draw into ``out`` (none without ``--out``), checked before any is drawn:
    a figure's name taken by a folder (or anything but a file) would otherwise fail after the
    first figure had replaced the previous run's.

    Raises:
        DaemonError: ``out`` or a figure in it cannot be written (``<path>: cannot write: ...``).
    """
    if out is None:
        return []
    writable(out, make=True)
    targets = []
    for name, plot in _FIGURES:
        path = out / name
        if path.is_dir():
            raise DaemonError(f"{path}: cannot write: {os.strerror(errno.EISDIR)}")
        if path.exists() and not path.is_file():
            raise DaemonError(f"{path}: cannot write: not a regular file")
        targets.append((plot, path))
    return targets


def _write_figure(plot: _Plot, cells: Sequence[PaperCell], path: Path) -> Path:
    """``plot(cells, path)``, its failure named as ``--out`` names others.

    Raises:
        DaemonError: the figure cannot be written (``<path>: cannot write: <reason>``).
    """
    try:
        return plot(cells, path)
    except OSError as exc:
        raise DaemonError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def _print_tables(rows: list[dict[str, Any]]) -> None:
    zones = list(dict.fromkeys(r["zone"] for r in rows))
    for model in dict.fromkeys(r["model"] for r in rows):
        table = []
        for gpu in dict.fromkeys(r["gpu"] for r in rows):
            for batch in sorted({r["batch_size"] for r in rows}):
                per_zone = {
                    r["zone"]: r
                    for r in rows
                    if (r["model"], r["gpu"], r["batch_size"]) == (model, gpu, batch)
                }
                first = per_zone[zones[0]]
                if not first["fits"]:
                    table.append([gpu, batch, "OOM", "OOM", *(["OOM"] * len(zones))])
                    continue
                grams = [
                    f"{per_zone[z]['total_g'] * 1000:.3g} ({per_zone[z]['embodied_share']:.0%})"
                    for z in zones
                ]
                table.append([gpu, batch, first["latency_s"], first["energy_per_prompt_j"], *grams])
        print_table(
            f"{model}: per prompt, {PAPER_INPUT_TOKENS} -> {PAPER_OUTPUT_TOKENS} tokens, hf-eager, "
            f"{next(r['precision'] for r in rows if r['model'] == model)}",
            ("GPU", "batch", "latency s", "energy J", *(f"mg CO2e {z} (embodied)" for z in zones)),
            table,
        )
