"""Validate carbond's energy estimator against the ML.ENERGY measurements (``make validate``).

For every dense-model configuration in the v2 (fit set: A100-40GB, H100) and v3 (held-out set:
H100, B200) leaderboards, predict energy per output token, energy per request and inter-token
latency from what a user would tell carbond (model, GPU, tensor parallelism, maximum batch,
mean prompt and output lengths, the ``vllm`` runtime) and compare with the measurement.

    python -m bench.validate_energy [--data DIR] [--json] [--worst N] [--power-model study]

Prints MAPE and median absolute percentage error per set and GPU type and overall, and the worst
configurations with the reason: the energy error splits exactly into a time error (the step
took longer or shorter than predicted) and a power error (the GPUs drew more or less than
predicted), which tells which half of the model missed. ``--power-model study`` scores the
simulation study's power curve (``P = idle + (tdp - idle) * min(1, (MFU / 0.45) ** 0.7)``) in
place of the calibrated one, with the same calibrated step times (``make validate`` prints
both).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from bench import REPO_ROOT, shared_data_dir
from bench.mlenergy import V2_FILE, Measured, Skipped, read_v2, read_v3
from bench.prediction import Result, predict
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, Workload
from policies.footprint.calibration import estimate_interval
from policies.footprint.runtimes import STUDY_SUFFIX, get_runtime

__all__ = ["HELD_OUT_FILE", "main", "summarise", "validate", "worst"]

HELD_OUT_FILE: Final = "llm_energy/mlenergy_v3/mlenergy_v3_configurations_flat.csv"
_REPO: Final = REPO_ROOT


def _ape(errors: Iterable[float]) -> tuple[float, float]:
    values = [abs(e) * 100.0 for e in errors]
    return statistics.fmean(values), statistics.median(values)


def summarise(results: Sequence[Result]) -> list[dict[str, Any]]:
    """MAPE and median APE (per cent) per (set, GPU) and per set overall."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.measured.source, r.measured.gpu), []).append(r)
        groups.setdefault((r.measured.source, "all"), []).append(r)
    rows = []
    order = sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] == "all", kv[0][1]))
    for (source, gpu), members in order:
        token_mape, token_mdape = _ape(r.token_error for r in members)
        inside = sum(r.in_interval for r in members)
        time_inside = sum(r.time_in_interval for r in members)
        request_mape, request_mdape = _ape(r.request_error for r in members)
        time_mape, _ = _ape(r.time_ratio - 1.0 for r in members)
        rows.append(
            {
                "set": source,
                "role": "fit" if source == "v2" else "held-out",
                "gpu": gpu,
                "configurations": len(members),
                "token_mape_pct": token_mape,
                "token_mdape_pct": token_mdape,
                "request_mape_pct": request_mape,
                "request_mdape_pct": request_mdape,
                "time_mape_pct": time_mape,
                "interval_coverage_pct": 100.0 * inside / len(members),
                "time_interval_coverage_pct": 100.0 * time_inside / len(members),
            }
        )
    return rows


def worst(results: Sequence[Result], count: int = 10) -> list[Result]:
    """The ``count`` configurations with the largest energy-per-token error."""
    return sorted(results, key=lambda r: abs(r.token_error), reverse=True)[:count]


def validate(
    data_dir: Path,
    sets: Sequence[str] = ("v2", "v3"),
    engine: str | None = None,
    power_model: str = "calibrated",
) -> tuple[list[Result], list[Skipped]]:
    """Predict every configuration of ``sets`` found under ``data_dir``.

    ``engine`` replaces each row's runtime profile (ablation: ``vllm-v0`` on v3 shows what
    carrying the 2024 engine's fitted host costs over to the V1 engine would do).
    ``power_model`` ``"study"`` gives every row's engine the study's power curve (``+study``).

    Raises:
        OSError: a file cannot be read.
        ValueError: a malformed row (message names file and line).
    """
    measured: list[Measured] = []
    skipped: list[Skipped] = []
    readers = {"v2": (read_v2, V2_FILE), "v3": (read_v3, HELD_OUT_FILE)}
    for name in sets:
        reader, relative = readers[name]
        rows, skips = reader(data_dir / relative)
        measured += rows
        skipped += skips
    if engine is not None:
        measured = [replace(m, engine=engine) for m in measured]
    if power_model == "study":
        measured = [replace(m, engine=m.engine + STUDY_SUFFIX) for m in measured]
    return [predict(m) for m in measured], skipped


def planner_misfits(results: Sequence[Result]) -> list[Result]:
    """The measured configurations that the planner's own estimate (``estimate_interval``,
    what ``carbond estimate`` and the policies use) says do not fit: the job as a user would
    submit it, ``max_batch`` requests in flight and four waves of them. vLLM ran every one, so
    this should be empty (it admits what its KV cache holds and queues the rest)."""
    misfits = []
    for r in results:
        m = r.measured
        workload = Workload(
            batch_size=m.max_batch, input_tokens=m.input_tokens,
            output_tokens=max(1, round(m.output_tokens)), requests=4 * m.max_batch,
            precision=m.precision, tensor_parallel=m.tensor_parallel,
        )  # fmt: skip
        model, gpu = DEFAULT_MODEL_CATALOG.get(m.model), DEFAULT_GPU_CATALOG.get(m.gpu)
        if not estimate_interval(model, gpu, get_runtime(m.engine), workload).estimate.fits:
            misfits.append(r)
    return misfits


def _report(
    results: Sequence[Result], skipped: Sequence[Skipped], count: int, as_json: bool
) -> None:
    summary = summarise(results)
    misfits = planner_misfits(results)
    if as_json:
        bad = worst(results, count)
        payload = {
            "summary": summary,
            "worst": [
                {
                    "configuration": r.measured.key,
                    "line": r.measured.line,
                    "measured_j_per_token": r.measured.energy_per_token_j,
                    "predicted_j_per_token": r.energy_per_token_j,
                    "error_pct": 100 * r.token_error,
                    "why": r.why(),
                }
                for r in bad
            ],
            "skipped": len(skipped),
            "planner_does_not_fit": [r.measured.key for r in misfits],
        }
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    print(f"{'set':<4} {'role':<9} {'gpu':<10} {'n':>4} {'J/tok MAPE':>11} {'MdAPE':>7} "
          f"{'J/req MAPE':>11} {'MdAPE':>7} {'TPOT MAPE':>10} {'E in band':>9} "
          f"{'t in band':>9}")  # fmt: skip
    for row in summary:
        print(f"{row['set']:<4} {row['role']:<9} {row['gpu']:<10} {row['configurations']:>4} "
              f"{row['token_mape_pct']:>10.1f}% {row['token_mdape_pct']:>6.1f}% "
              f"{row['request_mape_pct']:>10.1f}% {row['request_mdape_pct']:>6.1f}% "
              f"{row['time_mape_pct']:>9.1f}% {row['interval_coverage_pct']:>8.0f}% "
              f"{row['time_interval_coverage_pct']:>8.0f}%")  # fmt: skip
    for source in sorted({r.measured.source for r in results}):
        ranked = worst([r for r in results if r.measured.source == source], count)
        if not ranked:
            continue
        print(f"\nworst {len(ranked)} {source} configurations (energy per output token):")
        for r in ranked:
            print(f"  {r.token_error * 100:+6.0f}%  {r.measured.key}: measured "
                  f"{r.measured.energy_per_token_j:.3f} J, predicted {r.energy_per_token_j:.3f} J; "
                  f"{r.why()}")  # fmt: skip
    print(
        f"\nthe planner's estimate runs {len(results) - len(misfits)} of {len(results)} measured "
        f"configurations" + "".join(f"\n  does not fit: {r.measured.key}" for r in misfits)
    )
    reasons: dict[str, int] = {}
    for s in skipped:
        reasons[s.reason] = reasons.get(s.reason, 0) + 1
    print(
        f"\nskipped {len(skipped)} rows: "
        + "; ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry (``python -m bench.validate_energy``)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.validate_energy", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--data", type=Path, default=shared_data_dir(),
        help="the shared data folder (default: $CARBOND_SHARED_DATA or ../shared/data)",
    )  # fmt: skip
    parser.add_argument("--sets", default="v2,v3", help="comma-separated: v2 (fit), v3 (held out)")
    parser.add_argument("--worst", type=int, default=10, help="how many worst rows to list")
    parser.add_argument("--engine", help="runtime profile for every row (ablation, e.g. vllm-v0)")
    parser.add_argument("--power-model", choices=("calibrated", "study"), default="calibrated",
                        help="the calibrated power curve, or the study's MFU curve")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--plot", type=Path, help="also write predicted-vs-measured PNG here")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"validate_energy: data folder {args.data} not found (use --data)", file=sys.stderr)
        return 2
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    results, skipped = validate(args.data, sets, args.engine, args.power_model)
    if not args.json:
        print(f"power model: {args.power_model}")
    _report(results, skipped, args.worst, args.json)
    if args.plot is not None:
        plot(results, args.plot)
    return 0


def plot(results: Sequence[Result], path: Path) -> None:
    """Predicted vs measured energy per output token, one panel per set, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = sorted({r.measured.source for r in results})
    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 5), squeeze=False)
    for ax, source in zip(axes[0], sets, strict=True):
        members = [r for r in results if r.measured.source == source]
        for gpu in sorted({r.measured.gpu for r in members}):
            xs = [r.measured.energy_per_token_j for r in members if r.measured.gpu == gpu]
            ys = [r.energy_per_token_j for r in members if r.measured.gpu == gpu]
            ax.scatter(xs, ys, s=12, alpha=0.7, label=gpu)
        values = [r.measured.energy_per_token_j for r in members]
        lo, hi = min(values) / 1.5, max(values) * 1.5
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        for factor in (0.75, 1.25):
            ax.plot([lo, hi], [lo * factor, hi * factor], "k:", lw=0.6)
        ax.set(xscale="log", yscale="log", xlabel="measured J per output token",
               ylabel="carbond predicted J per output token",
               title=f"ML.ENERGY {source} ({'fit' if source == 'v2' else 'held out'})")  # fmt: skip
        ax.legend(title="dotted: ±25 %")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
