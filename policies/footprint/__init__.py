"""The carbon model: "how are grams computed".

- :mod:`.gpus` and :mod:`.embodied`: GPU catalog and embodied carbon (paper anchors + ACT).
- :mod:`.models`: LLM shapes and weight precisions.
- :mod:`.runtimes`: serving-runtime profiles (``hf-eager``, ``vllm``).
- :mod:`.workload`: what a job asks for, and its bounds.
- :mod:`.estimator`: energy and time of a job on a GPU before it runs; :mod:`.power`: power curves.
- :mod:`.serving`: the continuous-batching (vLLM) steady state.
- :mod:`.calibration`: fitted serving parameters and 10-90 % intervals per GPU class.
- :mod:`.accounting`: ``C = E * CI * PUE + (t / LT) * C_em``.
"""

from policies.footprint.accounting import (
    DEFAULT_LIFETIME_YEARS,
    J_PER_KWH,
    MAX_LIFETIME_YEARS,
    MIN_LIFETIME_YEARS,
    SECONDS_PER_YEAR,
    CarbonFootprint,
    embodied_g,
    footprint,
    operational_g,
)
from policies.footprint.calibration import (
    Calibration,
    EstimateInterval,
    calibrated,
    calibration_for,
    estimate_interval,
)
from policies.footprint.embodied import DEFAULT_ACT, ActParameters, act_embodied_g
from policies.footprint.estimator import Estimate, estimate
from policies.footprint.gpus import DEFAULT_GPU_CATALOG, GpuCatalog, GpuSpec
from policies.footprint.models import (
    DEFAULT_MODEL_CATALOG,
    MAX_PARAMS_B,
    PRECISION_BYTES,
    ModelCatalog,
    ModelSpec,
    precision_bytes,
)
from policies.footprint.power import DEFAULT_POWER, PowerCurve, PowerModel, StudyPowerModel
from policies.footprint.runtimes import DEFAULT_RUNTIMES, RuntimeProfile, get_runtime
from policies.footprint.serving import SteadyState, estimate_continuous, steady_state
from policies.footprint.workload import (
    MAX_BATCH_SIZE,
    MAX_REQUESTS,
    MAX_TENSOR_PARALLEL,
    MAX_TOKENS,
    Workload,
)

__all__ = [
    "DEFAULT_ACT",
    "DEFAULT_GPU_CATALOG",
    "DEFAULT_LIFETIME_YEARS",
    "DEFAULT_MODEL_CATALOG",
    "DEFAULT_POWER",
    "DEFAULT_RUNTIMES",
    "J_PER_KWH",
    "MAX_BATCH_SIZE",
    "MAX_LIFETIME_YEARS",
    "MAX_PARAMS_B",
    "MAX_REQUESTS",
    "MAX_TENSOR_PARALLEL",
    "MAX_TOKENS",
    "MIN_LIFETIME_YEARS",
    "PRECISION_BYTES",
    "SECONDS_PER_YEAR",
    "ActParameters",
    "Calibration",
    "CarbonFootprint",
    "Estimate",
    "EstimateInterval",
    "GpuCatalog",
    "GpuSpec",
    "ModelCatalog",
    "ModelSpec",
    "PowerCurve",
    "PowerModel",
    "RuntimeProfile",
    "SteadyState",
    "StudyPowerModel",
    "Workload",
    "act_embodied_g",
    "calibrated",
    "calibration_for",
    "embodied_g",
    "estimate",
    "estimate_continuous",
    "estimate_interval",
    "footprint",
    "get_runtime",
    "operational_g",
    "precision_bytes",
    "steady_state",
]
