"""carbond's prediction for one measured ML.ENERGY configuration, and how far off it is.

Shared by the fitting script (v2 rows only) and the validation harness (both sets).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench.mlenergy import Measured
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, PowerCurve, Workload
from policies.footprint.calibration import Calibration, band_for, calibrated
from policies.footprint.runtimes import RuntimeProfile, get_runtime
from policies.footprint.serving import SteadyState, admitted_batch, steady_state

__all__ = ["Result", "predict"]


@dataclass(frozen=True, slots=True)
class Result:
    """A measured configuration and carbond's prediction for it."""

    measured: Measured
    batch: int
    state: SteadyState

    @property
    def energy_per_token_j(self) -> float:
        """Predicted joules per output token."""
        return self.state.energy_per_output_token_j

    @property
    def energy_per_request_j(self) -> float:
        """Predicted joules per request (measured mean output length)."""
        return self.state.energy_per_output_token_j * self.measured.output_tokens

    @property
    def token_error(self) -> float:
        """Signed relative error of energy per token: predicted / measured - 1."""
        return self.energy_per_token_j / self.measured.energy_per_token_j - 1.0

    @property
    def request_error(self) -> float:
        """Signed relative error of energy per request."""
        return self.energy_per_request_j / self.measured.energy_per_request_j - 1.0

    @property
    def time_ratio(self) -> float:
        """Predicted / measured time per output token of the whole batch (step / batch)."""
        measured = self.measured.energy_per_token_j / self.measured.power_w
        return (self.state.step_s / self.batch) / measured

    @property
    def power_ratio(self) -> float:
        """Predicted / measured power of all GPUs (energy ratio = time ratio x power ratio)."""
        return self.state.power_w / self.measured.power_w

    @property
    def in_interval(self) -> bool:
        """The measured energy lies within the 10-90 % band carbond gives for this prediction."""
        ratio = self.measured.energy_per_token_j / self.energy_per_token_j
        return self._band.energy_ratio_p10 <= ratio <= self._band.energy_ratio_p90

    @property
    def time_in_interval(self) -> bool:
        """The measured time per token lies within the 10-90 % duration band."""
        return self._band.time_ratio_p10 <= 1.0 / self.time_ratio <= self._band.time_ratio_p90

    @property
    def _band(self) -> Calibration:
        gpu = DEFAULT_GPU_CATALOG.get(self.measured.gpu)
        return band_for(get_runtime(self.measured.engine), gpu)

    def why(self) -> str:
        """One line on where the error comes from."""
        t, p = self.time_ratio, self.power_ratio
        half = "time" if abs(t - 1.0) >= abs(p - 1.0) else "power"
        note = (
            f"{half} dominates: time x{t:.2f}, power x{p:.2f} "
            f"({self.state.power_w:.0f} W predicted vs {self.measured.power_w:.0f} W); "
            f"step {self.state.bound}-bound"
        )
        if self.batch < self.measured.max_batch:
            note += f"; batch capped {self.measured.max_batch}->{self.batch} by KV memory"
        if abs(self.measured.avg_batch - self.batch) > 0.2 * self.batch:
            note += f"; measured mean batch {self.measured.avg_batch:.0f}"
        return note


def predict(
    measured: Measured,
    runtime: RuntimeProfile | None = None,
    power: PowerCurve | None = None,
) -> Result:
    """carbond's prediction for ``measured``'s configuration.

    ``runtime``/``power`` default to the calibrated profile of the engine that measured the row
    (``measured.engine``) for the row's GPU. The
    batch in flight is the configured maximum, capped by how many requests' KV cache fits.
    """
    model = DEFAULT_MODEL_CATALOG.get(measured.model)
    gpu = DEFAULT_GPU_CATALOG.get(measured.gpu)
    if runtime is None or power is None:
        runtime, power = calibrated(get_runtime(measured.engine), gpu)
    workload = Workload(
        batch_size=1,
        input_tokens=measured.input_tokens,
        output_tokens=max(1, round(measured.output_tokens)),
        precision=measured.precision,
        tensor_parallel=measured.tensor_parallel,
    )
    capped = replace(workload, batch_size=measured.max_batch)
    batch = max(1, admitted_batch(model, gpu, runtime, capped))  # the planner's own cap
    state = steady_state(model, gpu, runtime, replace(workload, batch_size=batch), power)
    return Result(measured, batch, state)
