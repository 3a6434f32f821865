"""Parts of ``carbond estimate`` beyond the point estimate: the 10-90 % interval and per-prompt
estimates from a JSONL of token counts (``--prompts``).

The interval comes from :func:`policies.footprint.estimate_interval`: the residual quantiles of
the GPU's calibration class (``pooled`` for GPUs without their own fit). Per-prompt figures
price each prompt as one request served among ``--batch-size`` concurrent ones with the
prompt's own token counts; carbon is the accounting module's ``E * CI * PUE`` plus the
embodied share of the GPU time the request occupies.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from daemon.cli.output import print_json, print_table
from daemon.cli.prompts import read_prompts
from daemon.errors import DaemonError
from daemon.ledger.export import write_replacing
from daemon.reports.render import fixed
from policies.footprint import (
    EstimateInterval,
    GpuSpec,
    ModelSpec,
    RuntimeProfile,
    Workload,
    estimate_interval,
    footprint,
)

__all__ = ["Carbon", "estimate_prompts", "interval_payload"]


@dataclass(frozen=True, slots=True)
class Carbon:
    """How energy and GPU time become grams for one estimate."""

    intensity_g_per_kwh: float
    intensity_source: str
    zone: str | None
    pue: float
    lifetime_years: float
    gpu_embodied_g: float

    def total_g(self, energy_j: float, duration_s: float, gpus: int) -> tuple[float, float]:
        """(operational, embodied) grams."""
        grams = footprint(energy_j, duration_s, self.intensity_g_per_kwh, self.gpu_embodied_g,
                          pue=self.pue, lifetime_years=self.lifetime_years, gpus=gpus)  # fmt: skip
        return grams.operational_g, grams.embodied_g


def interval_payload(band: EstimateInterval, carbon: Carbon) -> dict[str, Any]:
    """The interval fields added to ``carbond estimate --json``."""
    if not band.estimate.fits:
        empty = ("energy_j_p10", "energy_j_p90", "duration_s_p10", "duration_s_p90",
                 "total_g_p10", "total_g_p90")  # fmt: skip
        return {"calibration": band.gpu_class, "interval_basis": band.band} | dict.fromkeys(empty)
    gpus = band.estimate.gpus
    low = sum(carbon.total_g(band.energy_j_p10, band.duration_s_p10, gpus))
    high = sum(carbon.total_g(band.energy_j_p90, band.duration_s_p90, gpus))
    return {
        "calibration": band.gpu_class,
        "interval_basis": band.band,
        "energy_j_p10": band.energy_j_p10,
        "energy_j_p90": band.energy_j_p90,
        "duration_s_p10": band.duration_s_p10,
        "duration_s_p90": band.duration_s_p90,
        "total_g_p10": low,
        "total_g_p90": high,
    }


def _prompt_row(ident: str, band: EstimateInterval, batch: int, carbon: Carbon) -> dict[str, Any]:
    est = band.estimate
    work = est.workload
    row: dict[str, Any] = {"id": ident, "input_tokens": work.input_tokens,
                           "output_tokens": work.output_tokens, "fits": est.fits}  # fmt: skip
    if not est.fits:
        row["reason"] = est.reason
        return row
    share = 1.0 / batch
    op, emb = carbon.total_g(est.energy_j * share, est.duration_s * share, est.gpus)
    low = sum(carbon.total_g(band.energy_j_p10 * share, band.duration_s_p10 * share, est.gpus))
    high = sum(carbon.total_g(band.energy_j_p90 * share, band.duration_s_p90 * share, est.gpus))
    row.update(
        latency_s=est.batch_latency_s,
        energy_j=est.energy_j * share,
        energy_j_p10=band.energy_j_p10 * share,
        energy_j_p90=band.energy_j_p90 * share,
        operational_g=op,
        embodied_g=emb,
        total_g=op + emb,
        total_g_p10=low,
        total_g_p90=high,
    )
    return row


def estimate_prompts(
    args: argparse.Namespace,
    model: ModelSpec,
    gpu: GpuSpec,
    runtime: RuntimeProfile,
    workload: Workload,
    carbon: Carbon,
    precision_note: str = "",
) -> int:
    """Print per-prompt energy and carbon for ``args.prompts``; returns the exit code.
    ``precision_note`` says why ``workload``'s precision is not the one asked (else empty).

    Raises:
        UsageError: the prompts file is unreadable or a line is malformed.
        InvalidWorkloadError: a token count out of range.
    """
    prompts = read_prompts(args.prompts)
    batch = workload.batch_size
    rows = []
    for prompt in prompts:
        wl = replace(workload, input_tokens=prompt.input_tokens,
                     output_tokens=prompt.output_tokens, requests=batch)  # fmt: skip
        rows.append(
            _prompt_row(prompt.id, estimate_interval(model, gpu, runtime, wl), batch, carbon)
        )
    fitting = [r for r in rows if r["fits"]]
    keys = ("energy_j", "energy_j_p10", "energy_j_p90", "total_g", "total_g_p10", "total_g_p90")
    total = {key: sum(r[key] for r in fitting) for key in keys}
    payload = {
        "model": model.name, "gpu": gpu.name, "gpus": workload.tensor_parallel,
        "runtime": runtime.name, "precision": workload.precision,
        "precision_note": precision_note or None, "batch_size": batch,
        "zone": carbon.zone, "intensity_g_per_kwh": carbon.intensity_g_per_kwh,
        "intensity_source": carbon.intensity_source, "pue": carbon.pue,
        "prompts": rows, "total": {"prompts": len(fitting), **total},
    }  # fmt: skip
    if args.out is not None:
        _write_jsonl(args.out, rows)
    if args.json:
        print_json(payload)
        return 0
    columns = ("id", "input_tokens", "output_tokens", "latency_s", "energy_j", "energy_j_p10",
               "energy_j_p90", "total_g", "total_g_p90")  # fmt: skip
    title = (f"{model.name} on {gpu.name} x{workload.tensor_parallel} ({runtime.name}), "
             f"batch {batch}, {fixed(carbon.intensity_g_per_kwh, 6)} gCO2e/kWh")  # fmt: skip
    print_table(title, columns, [[r.get(c, "OOM") for c in columns] for r in rows])
    noun = "prompt" if len(fitting) == 1 else "prompts"
    print(f"total over {len(fitting)} {noun}: {total['energy_j']:.1f} J "
          f"({total['energy_j_p10']:.1f}-{total['energy_j_p90']:.1f}), {fixed(total['total_g'])} g "
          f"({fixed(total['total_g_p10'])}-{fixed(total['total_g_p90'])})")  # fmt: skip
    if precision_note:
        print(f"note: {precision_note}")
    return 0


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` as JSON lines through a temporary file renamed into place
    (:func:`write_replacing`: a fresh, unguessable temporary name; the permissions of the file
    it replaces, else the umask's).

    Raises:
        DaemonError: the file cannot be written (names ``path``, never the temporary file), a
            runtime failure worded as ``export``'s and ``report -o``'s (exit 1, not 2).
    """
    try:
        write_replacing(path, lambda out: out.writelines(json.dumps(row) + "\n" for row in rows))
    except OSError as e:
        raise DaemonError(f"{path}: cannot write: {e.strerror or e}") from e
