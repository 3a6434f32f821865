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
from daemon.cli.workload_flags import flags_named
from daemon.errors import DaemonError
from daemon.reports.paper import cell_rows, plot_figure1, plot_figure4, takeaways
from daemon.reports.paper_phases import (
    phase_rows,
    phase_takeaways,
    plot_phase,
    plot_phase_carbon,
)
from policies.footprint import DEFAULT_GPU_CATALOG, GpuCatalog
from policies.footprint.paper import (
    PAPER_GPUS,
    PAPER_INPUT_TOKENS,
    PAPER_OUTPUT_TOKENS,
    PAPER_PRECISION,
    PaperCell,
    PhaseCell,
    characterise,
    phase_cells,
)

__all__ = ["register"]

_Plot = Callable[[Sequence[PaperCell], Sequence[PhaseCell], Path], Path]
# The figures ``--out`` gets, by file name.
_FIGURES: tuple[tuple[str, _Plot], ...] = (
    ("paper_fig1_latency_energy.png", lambda cells, _, path: plot_figure1(cells, path)),
    ("paper_fig2_prefill_throughput_energy.png",
     lambda _, phases, path: plot_phase(phases, "prefill", path)),
    ("paper_fig3_decode_throughput_energy.png",
     lambda _, phases, path: plot_phase(phases, "decode", path)),
    ("paper_fig4_carbon_per_prompt.png", lambda cells, _, path: plot_figure4(cells, path)),
    ("paper_fig5_prefill_carbon_per_token.png",
     lambda _, phases, path: plot_phase_carbon(phases, "prefill", path)),
    ("paper_fig6_decode_carbon_per_token.png",
     lambda _, phases, path: plot_phase_carbon(phases, "decode", path)),
)  # fmt: skip


def register(subparsers: Any) -> None:
    """Add ``paper``."""
    paper = subparsers.add_parser(
        "paper",
        help="reproduce the HotCarbon'24 paper's characterisation (tables + PNG figures)",
        description="Reproduce the HotCarbon'24 characterisation with carbond's model: "
        "per-prompt latency, energy and carbon of the 1B/3B/7B Llama models at batch 1-64 on a "
        "T4 and an RTX 6000 Ada in CA-QC, US-CAL-CISO and US-NW-PACE; the 1B model's prefill "
        "and decode phases per token (tokens/s, J/token, gCO2e/token in CA-QC); and each of "
        "the paper's findings next to carbond's figure. The GPUs are the paper's (its Table 1, "
        "carbond's built-in catalog): a site's [catalog] overrides are not applied (the output "
        "notes those of the T4 or RTX6000-Ada).",
    )
    paper.add_argument("--out", type=Path, default=None, help="write PNG figures to this folder")
    paper.add_argument("--precision", default=None, help="one precision for every model "
                       "(default: the paper's, fp32 for 1B/3B and fp16 for 7B)")  # fmt: skip
    add_common_options(paper)
    paper.set_defaults(func=_paper)


def _paper(args: argparse.Namespace) -> int:
    catalog = DEFAULT_GPU_CATALOG  # the paper's GPUs (its Table 1), whatever the site says
    notes = _setup_notes(gpu_catalog(settings_from(args)))  # a bad config still fails here
    precision = None if args.precision is None else args.precision.lower()  # as estimate's
    with flags_named({"precision": "--precision"}):
        cells = list(characterise(precision=precision, gpu_catalog=catalog))
    phases = phase_cells(cells, gpu_catalog=catalog)
    targets = _figure_targets(args.out)  # after bad input (--precision) fails, before drawing
    found = takeaways(cells) + phase_takeaways(phases)
    own = {c.model: c.precision for c in cells}  # what --precision made of the paper's
    paper_setup = all(PAPER_PRECISION.get(model) == prec for model, prec in own.items())
    if not paper_setup:
        notes.append(_precision_note(own))
    figures = [str(_write_figure(plot, cells, phases, path)) for plot, path in targets]
    if args.json:
        print_json(
            {
                "cells": cell_rows(cells),
                "phases": phase_rows(phases),
                "takeaways": [
                    {"claim": t.claim, "paper": t.paper, "carbond": t.carbond, "holds": t.holds}
                    for t in found
                ],
                "figures": figures,
                "paper_setup": paper_setup,
                "notes": notes,
            }
        )
        return 0
    _print_tables(cell_rows(cells))
    _print_phase_tables(phase_rows(phases))
    outside = "" if paper_setup else f" at --precision {args.precision}, not the paper's setup"
    print_table(
        f"The paper's findings vs carbond's model{outside}",
        ("finding", "paper", "carbond", "same direction"),
        [(t.claim, t.paper, t.carbond, "yes" if t.holds else "NO") for t in found],
    )
    for note in notes:
        print(f"note: {note}")
    for figure in figures:
        print(f"figure: {figure}")
    return 0


def _precision_note(own: dict[str, str]) -> str:
    """What a ``--precision`` run's findings are judged on: another setup than the paper's."""
    theirs = ", ".join(f"{m} {p}" for m, p in PAPER_PRECISION.items())
    ours = ", ".join(f"{m} {p}" for m, p in own.items())
    return (
        f"weights {ours}: not the paper's setup ({theirs}); the findings' "
        "'same direction' compares the paper's measurements with this other setup"
    )


def _setup_notes(site: GpuCatalog) -> list[str]:
    """What the output must say about its setup: the site's ``[catalog]`` overrides of the
    paper's GPUs (``site``: the catalog the daemon charges with) are not applied, since the
    paper's setup is its own Table 1 (a site's T4 at 12 kg would have moved every embodied
    figure and takeaway, unsaid)."""
    changed = [name for name in PAPER_GPUS if site.get(name) != DEFAULT_GPU_CATALOG.get(name)]
    if not changed:
        return []
    return [f"the site's [catalog] overrides of {', '.join(changed)} are not applied: the "
            "paper's setup is its own GPUs (its Table 1, as carbond's built-in catalog has "
            "them)"]  # fmt: skip


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


def _write_figure(
    plot: _Plot, cells: Sequence[PaperCell], phases: Sequence[PhaseCell], path: Path
) -> Path:
    """``plot(cells, phases, path)``, its failure named as ``--out`` names others.

    Raises:
        DaemonError: the figure cannot be written (``<path>: cannot write: <reason>``).
    """
    try:
        return plot(cells, phases, path)
    except OSError as exc:
        raise DaemonError(f"{path}: cannot write: {exc.strerror or exc}") from exc


# One number format per column (print_table's own, 4 significant digits and one decimal from
# 100 on, put "9" above "12.11" and "137.0" under "92.46"): latency 2 decimals, energy per
# prompt 1, mg per prompt 2; tokens/s 1 decimal, J/token 4, µg per token 3.


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
                    f"{per_zone[z]['total_g'] * 1000:,.2f} ({per_zone[z]['embodied_share']:.0%})"
                    for z in zones
                ]
                table.append([gpu, batch, f"{first['latency_s']:,.2f}",
                              f"{first['energy_per_prompt_j']:,.1f}", *grams])  # fmt: skip
        print_table(
            f"{model}: per prompt, {PAPER_INPUT_TOKENS} -> {PAPER_OUTPUT_TOKENS} tokens, hf-eager, "
            f"{next(r['precision'] for r in rows if r['model'] == model)}",
            ("GPU", "batch", "latency s", "energy J", *(f"mg CO2e {z} (embodied)" for z in zones)),
            table,
        )


def _print_phase_tables(rows: list[dict[str, Any]]) -> None:
    """One table per phase (Figures 2/3 and 5/6 as numbers): per token, one row per GPU and
    batch size."""
    for phase in dict.fromkeys(r["phase"] for r in rows):
        mine = [r for r in rows if r["phase"] == phase]
        table: list[list[object]] = []
        for r in mine:
            if not r["fits"]:
                table.append([r["gpu"], r["batch_size"], "OOM", "OOM", "OOM"])
                continue
            grams = f"{r['total_g_per_token'] * 1e6:,.3f} ({r['embodied_share']:.0%})"
            table.append([r["gpu"], r["batch_size"], f"{r['throughput_tokens_per_s']:,.1f}",
                          f"{r['energy_per_token_j']:,.4f}", grams])  # fmt: skip
        tokens = "prompt tokens" if phase == "prefill" else "generated tokens"
        print_table(
            f"{mine[0]['model']} {phase}: per {tokens[:-1]}, {PAPER_INPUT_TOKENS} -> "
            f"{PAPER_OUTPUT_TOKENS} tokens, hf-eager",
            ("GPU", "batch", "tokens/s", "J/token", f"µg CO2e/token {mine[0]['zone']} (embodied)"),
            table,
        )
