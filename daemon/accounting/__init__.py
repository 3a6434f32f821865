"""Accounting for every finished job: which energy its grams use (``energy_method``), the
realised intensity from the recorded samples, and estimates where nothing measured."""

from daemon.accounting.methods import (
    ESTIMATED,
    MEASURED_METHODS,
    NVML_COUNTER,
    NVML_POWER_INTEGRAL,
    SLURM_SACCT,
    is_measured,
    meter_method,
)
from daemon.accounting.realised import realised_from_samples
from daemon.accounting.unmetered import (
    EnergySource,
    best_energy,
    predicted_alternative,
    unmetered_columns,
)

__all__ = [
    "ESTIMATED",
    "MEASURED_METHODS",
    "NVML_COUNTER",
    "NVML_POWER_INTEGRAL",
    "SLURM_SACCT",
    "EnergySource",
    "best_energy",
    "is_measured",
    "meter_method",
    "predicted_alternative",
    "realised_from_samples",
    "unmetered_columns",
]
