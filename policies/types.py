"""The values a policy is given and returns: jobs, devices, intensity forecasts, decisions.

Policies are pure: ``plan(now, jobs, devices, forecasts)`` reads nothing else and returns one
:class:`Decision` per job, each with a human-readable ``reason``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, ParamSpec, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from policies.fast_init import fast_init
from policies.footprint.gpus import GpuSpec
from policies.footprint.models import ModelSpec
from policies.footprint.workload import Workload

__all__ = [
    "Action",
    "Alternative",
    "Decision",
    "Device",
    "JobSpec",
    "PlannedStart",
    "ZoneIntensity",
    "new_alternative",
    "new_decision",
]

Action = Literal["start", "hold", "reject"]
P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PlannedStart:
    """Where and when a held job is planned to start: its latest ``hold`` decision's plan."""

    region: str
    gpu: str
    start: datetime


@fast_init
@dataclass(frozen=True, slots=True)
class JobSpec:
    """A queued job as the planner sees it.

    ``deadline`` is the latest acceptable *end* (None: as soon as possible). ``regions`` and
    ``gpu_types`` restrict the candidates (empty: any); the first listed region is the job's home
    region (used by policies that do not shift in space). ``planned`` is the job's current plan
    (None: not held with one); a planner may keep it rather than move the job between cells of
    almost the same cost (``replan_margin``, :mod:`policies.planner`). It is the planner's own
    output handed back, not a property of the job, so it takes no part in equality.
    ``run_now_recorded``: the daemon has recorded the job's run-now counterfactual (an earlier
    round's, whose run holds GPUs through :attr:`Device.run_now_busy_until`), so this round's
    claims no GPU from the jobs that arrive now (:mod:`policies.run_now_claims`); also the
    daemon's, not the job's, and no part of equality.
    """

    job_id: str
    model: ModelSpec
    workload: Workload
    submitted_at: datetime
    deadline: datetime | None = None
    runtime: str = "hf-eager"
    regions: tuple[str, ...] = ()
    gpu_types: tuple[str, ...] = ()
    min_gpu_memory_gb: float = 0.0
    priority: int = 0
    planned: PlannedStart | None = field(default=None, compare=False)
    run_now_recorded: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Device:
    """One GPU the planner may place work on.

    ``busy_until`` is when the GPU is free (None or <= now: free now); ``available`` is False for
    a GPU that is lost or drained. ``run_now_busy_until`` is when it is free in the run-now
    counterfactual: held by the counterfactual runs of the jobs decided in earlier rounds
    (None: none holds it), :mod:`policies.run_now_claims`; ``run_now_holder`` is the job whose
    run holds it that long, ``run_now_others_until`` when the other jobs' runs hold it until
    (None: none), so that the job's own counterfactual, rebuilt for its reason, does not wait
    for itself.
    """

    device_id: str
    region: str
    zone: str
    gpu: GpuSpec
    pue: float = 1.0
    busy_until: datetime | None = None
    available: bool = True
    run_now_busy_until: datetime | None = None
    run_now_holder: str | None = None
    run_now_others_until: datetime | None = None


class ZoneIntensity(Protocol):
    """Forecast (or realised) intensity of one zone on a regular grid starting at ``start``.

    ``upper_g_per_kwh`` is an optional pessimistic bound of the same shape (None: unknown).
    """

    @property
    def zone(self) -> str: ...

    @property
    def start(self) -> datetime: ...

    @property
    def step_s(self) -> int: ...

    @property
    def values_g_per_kwh(self) -> npt.NDArray[np.float64]: ...


@fast_init
@dataclass(frozen=True, slots=True)
class Alternative:
    """One scored placement: devices, start time and the expected footprint."""

    device_ids: tuple[str, ...]
    region: str
    gpu: str
    start: datetime
    duration_s: float
    energy_j: float
    intensity_g_per_kwh: float
    operational_g: float
    embodied_g: float

    @property
    def total_g(self) -> float:
        """Operational + embodied grams."""
        return self.operational_g + self.embodied_g


@fast_init
@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one job now.

    - ``start``: start on ``chosen.device_ids`` now.
    - ``hold``: keep queued; ``chosen`` is the current plan (start at ``chosen.start``).
    - ``reject``: no device can ever run it (does not fit anywhere, deadline impossible);
      ``reason`` says why and ``chosen`` is None.

    ``run_now`` is the counterfactual: start at once on the fastest free fitting device,
    ignoring carbon. ``alternatives`` are the best other placements considered.
    """

    job_id: str
    action: Action
    reason: str
    policy: str
    chosen: Alternative | None = None
    run_now: Alternative | None = None
    alternatives: tuple[Alternative, ...] = field(default=())


def _unfrozen_init(cls: Callable[P, T]) -> Callable[P, T]:
    """A constructor of the frozen, slotted dataclass ``cls`` that builds the same object
    about three times faster.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (its own
    ``__setattr__`` raises), ~70 ns a field on CPython 3.11. This one fills a twin, a plain
    slotted dataclass with the same fields, defaults and slots (one attribute store a field),
    then makes it an instance of ``cls`` (``__class__`` assignment, which Python allows
    between classes of the same slots and layout). What it returns is ``cls``'s in every way:
    its type, fields, equality, hash and immutability. For the planner's fast path, which
    builds ~20,000 alternatives and ~10,000 decisions a tick (``tests/policies/test_types.py``).
    """
    frozen: Any = cls
    twin: Any = dataclasses.make_dataclass(  # its name is in the errors a bad call raises
        frozen.__name__,
        [
            (f.name, f.type, field(default=f.default, default_factory=f.default_factory))
            for f in dataclasses.fields(frozen)
        ],
        slots=True,
    )
    if twin.__slots__ != getattr(frozen, "__slots__", None):  # else no __class__ assignment
        raise TypeError(f"{frozen.__name__} is not a slotted dataclass")
    if hasattr(frozen, "__post_init__") or not all(f.init for f in dataclasses.fields(frozen)):
        raise TypeError(f"{frozen.__name__}'s __init__ does more than set its fields")

    def build(*args: P.args, **kwargs: P.kwargs) -> T:
        obj = twin(*args, **kwargs)
        obj.__class__ = cls
        return obj  # type: ignore[no-any-return]

    build.__name__ = build.__qualname__ = f"new_{frozen.__name__.lower()}"
    return build


new_alternative = _unfrozen_init(Alternative)
new_decision = _unfrozen_init(Decision)
