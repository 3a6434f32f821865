"""Fit the ``vllm`` serving model to the ML.ENERGY **v2** measurements; write the constants.

    python -m bench.fit_energy [--data DIR] [--check]

Reads only the v2 flat CSV (A100-40GB, H100). The v3 leaderboard is the held-out test set of
``bench/validate_energy.py`` and is never read here (``tests/bench/test_fit_isolation.py``
checks this file and the package for it).

What is fitted, per GPU class and pooled over both (the pooled fit serves GPUs without their
own, e.g. B200): the continuous-batching model's FLOP utilisations (``prefill_mfu``,
``decode_mfu``), bandwidth utilisation (``mbu``), host time per step and per sequence, and the
power curve (``compute_weight``, ``memory_weight``, ``active_floor``). The loss is the mean
absolute log error of energy per output token plus half that of power (so that time and power
are each right, not only their product). Coordinate descent over a log grid, NumPy-free and
deterministic.

Prediction intervals: leave-one-model-out cross-validation within each class (refit without the
model, predict its rows); the 10th/50th/90th percentiles of measured / predicted energy and time
are stored with the constants. The pooled class adds leave-one-GPU-out residuals (fit on A100,
predict H100 and the reverse), since it serves GPUs that no fit has seen. ``--check`` fits and
prints without writing.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from bench import REPO_ROOT, shared_data_dir
from bench.mlenergy import V2_FILE, Measured, read_v2
from bench.prediction import predict
from policies.footprint import PowerModel
from policies.footprint.runtimes import RuntimeProfile, get_runtime

__all__ = ["Params", "fit", "main"]

_REPO: Final = REPO_ROOT
_OUTPUT: Final = _REPO / "policies" / "footprint" / "_calibrated.py"
_POOLED: Final = "pooled"

# (name, lower, upper): every parameter is searched on a log grid between its bounds.
# The utilisations are bounded to what GEMMs and decode kernels reach on these GPUs in public
# roofline measurements (30-80 % of peak FLOP/s, 50-95 % of peak bandwidth): without bounds the
# fit would explain the V0 engine's host stalls by implausibly slow GPUs, and those would not
# carry over to another engine.
_BOUNDS: Final = (
    ("prefill_mfu", 0.3, 0.8),
    ("decode_mfu", 0.3, 0.8),
    ("mbu", 0.5, 0.95),
    ("per_step_overhead_s", 1e-4, 0.05),
    ("per_sequence_overhead_s", 1e-7, 2e-3),
    ("compute_weight", 0.05, 2.0),
    ("memory_weight", 0.05, 2.0),
    ("active_floor", 0.02, 0.8),
)


@dataclass(frozen=True, slots=True)
class Params:
    """One point of the search space (names as in ``calibration.Calibration``)."""

    prefill_mfu: float = 0.6
    decode_mfu: float = 0.5
    mbu: float = 0.8
    per_step_overhead_s: float = 5e-3
    per_sequence_overhead_s: float = 1e-4
    compute_weight: float = 1.0
    memory_weight: float = 0.7
    active_floor: float = 0.1

    def runtime(self) -> RuntimeProfile:
        """The ``vllm-v0`` profile (the engine v2 measured) with these parameters."""
        return replace(
            get_runtime("vllm-v0"),
            prefill_mfu=self.prefill_mfu,
            decode_mfu=self.decode_mfu,
            mbu=self.mbu,
            per_step_overhead_s=self.per_step_overhead_s,
            per_sequence_overhead_s=self.per_sequence_overhead_s,
        )

    def power(self) -> PowerModel:
        """The power curve with these parameters."""
        return PowerModel(self.compute_weight, self.memory_weight, self.active_floor)


def _loss(params: Params, rows: Sequence[Measured]) -> float:
    runtime, power = params.runtime(), params.power()
    total = 0.0
    for m in rows:
        r = predict(m, runtime, power)
        total += abs(math.log(r.energy_per_token_j / m.energy_per_token_j))
        total += 0.5 * abs(math.log(r.state.power_w / m.power_w))
    return total / len(rows)


def fit(
    rows: Sequence[Measured], start: Params = Params(), sweeps: int = 4, points: int = 9
) -> Params:
    """Minimise the loss over ``rows`` by coordinate descent on log grids.

    Each sweep tries, for every parameter in turn, ``points`` values spread over a window around
    the current value (the window narrows each sweep) and keeps the best.

    Raises:
        ValueError: a row is not from the v2 fit set, or no rows.
    """
    if not rows:
        raise ValueError("no rows to fit")
    foreign = [m.key for m in rows if m.source != "v2"]
    if foreign:
        raise ValueError(f"fit set must be v2 only; got {foreign[:3]}")
    best, best_loss = start, _loss(start, rows)
    for sweep in range(sweeps):
        span = 4.0 / (2.0**sweep)  # log-factor half-width of the window
        for name, low, high in _BOUNDS:
            current = getattr(best, name)
            for k in range(points):
                factor = span ** (2.0 * k / (points - 1) - 1.0)
                value = min(high, max(low, current * factor))
                candidate = replace(best, **{name: value})
                loss = _loss(candidate, rows)
                if loss < best_loss:
                    best, best_loss = candidate, loss
    return best


def _quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(values, n=10, method="inclusive")
    return cuts[0], statistics.median(values), cuts[-1]


def _cross_validate(rows: Sequence[Measured], fitted: Params) -> tuple[list[float], list[float]]:
    """Measured/predicted energy and time ratios, each row predicted by a fit without its model."""
    energy: list[float] = []
    time: list[float] = []
    for model in sorted({m.model for m in rows}):
        train = [m for m in rows if m.model != model]
        params = fit(train, fitted, sweeps=2, points=5) if train else fitted
        runtime, power = params.runtime(), params.power()
        for m in rows:
            if m.model == model:
                r = predict(m, runtime, power)
                energy.append(m.energy_per_token_j / r.energy_per_token_j)
                time.append(1.0 / r.time_ratio)
    return energy, time


def _cross_gpu(rows: Sequence[Measured], pooled: Params) -> tuple[list[float], list[float]]:
    """Ratios for each GPU class predicted by a fit on the other classes only: what a GPU the
    fit has never seen (e.g. B200) should expect."""
    energy: list[float] = []
    time: list[float] = []
    for gpu in sorted({m.gpu for m in rows}):
        train = [m for m in rows if m.gpu != gpu]
        params = fit(train, pooled, sweeps=2, points=5)
        runtime, power = params.runtime(), params.power()
        for m in rows:
            if m.gpu == gpu:
                r = predict(m, runtime, power)
                energy.append(m.energy_per_token_j / r.energy_per_token_j)
                time.append(1.0 / r.time_ratio)
    return energy, time


def _render(fits: dict[str, tuple[Params, int, list[float], list[float]]]) -> str:
    lines = [
        '"""Generated by ``python -m bench.fit_energy``; do not edit by hand.',
        "",
        "Fitted on the ML.ENERGY leaderboard v2 measurements only (A100-40GB, H100); the",
        "``*_ratio_*`` values are leave-one-model-out quantiles of measured / predicted.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Final",
        "",
        '__all__ = ["CALIBRATIONS", "FIT_ROWS", "FIT_SOURCE"]',
        "",
        'FIT_SOURCE: Final = "mlenergy-v2"',
        "FIT_ROWS: Final[dict[str, int]] = {",
    ]
    lines += [f'    "{name}": {count},' for name, (_, count, _, _) in fits.items()]
    lines += ["}", "CALIBRATIONS: Final[dict[str, dict[str, float]]] = {"]
    for name, (params, _, energy, time) in fits.items():
        lines.append(f'    "{name}": {{')
        for field, _, _ in _BOUNDS:
            lines.append(f'        "{field}": {getattr(params, field):.6g},')
        for label, values in (("energy", energy), ("time", time)):
            for tag, value in zip(("p10", "p50", "p90"), _quantiles(values), strict=True):
                lines.append(f'        "{label}_ratio_{tag}": {value:.4f},')
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry (``python -m bench.fit_energy``)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.fit_energy", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--data", type=Path, default=shared_data_dir(),
        help="the shared data folder (default: $CARBOND_SHARED_DATA or ../shared/data)",
    )  # fmt: skip
    parser.add_argument("--check", action="store_true", help="fit and print; do not write")
    args = parser.parse_args(argv)
    rows, _ = read_v2(args.data / V2_FILE)
    pooled = fit(rows)
    fits: dict[str, tuple[Params, int, list[float], list[float]]] = {}
    energy_all: list[float] = []
    time_all: list[float] = []
    for gpu in sorted({m.gpu for m in rows}):
        members = [m for m in rows if m.gpu == gpu]
        params = fit(members, pooled, sweeps=3)
        energy, time = _cross_validate(members, params)
        energy_all += energy
        time_all += time
        fits[gpu] = (params, len(members), energy, time)
        cv_mape = 100.0 * statistics.fmean(abs(1.0 / ratio - 1.0) for ratio in energy)
        print(f"{gpu}: {params} loss {_loss(params, members):.3f}; leave-one-model-out "
              f"MAPE {cv_mape:.1f}% on J/token", flush=True)  # fmt: skip
    # The pooled band serves GPUs without a fit of their own: both within-class model
    # transfer (leave-one-model-out) and hardware transfer (leave-one-GPU-out) residuals.
    energy_gpu, time_gpu = _cross_gpu(rows, pooled)
    fits[_POOLED] = (pooled, len(rows), energy_all + energy_gpu, time_all + time_gpu)
    print(f"pooled: {pooled} loss {_loss(pooled, rows):.3f}")
    text = _render(fits)
    if args.check:
        print(text)
    else:
        _OUTPUT.write_text(text, encoding="utf-8")
        print(f"wrote {_OUTPUT.relative_to(_REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
