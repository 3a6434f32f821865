"""``carbon-window``, ``wait-awhile`` and ``oracle``: planners that also choose *when*.

- ``carbon-window`` (carbond's policy): joint device x region x start-time choice over the
  forecast horizon, operational + embodied, capacity-aware, deadline-safe, risk-hedged and
  anti-herding (:mod:`policies.planner`), re-planned every tick.
- ``wait-awhile``: temporal shifting only, in each job's first-listed region (Wiesner et al.,
  "Let's Wait Awhile", Middleware'21): the lowest-forecast window before the deadline; no
  risk hedging, no anti-herding.
- ``oracle``: ``carbon-window`` planned on the realised intensity. The policy code is the same;
  :attr:`uses_actuals` tells the replay driver to hand it actuals instead of forecasts.

Parameters are the fields of :class:`~policies.planner.WindowParameters`, given as keywords.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any, ClassVar

from policies.base import register_policy
from policies.footprint.estimator import Estimate
from policies.footprint.recalibration import Recalibration
from policies.incremental import PlanState
from policies.parameters import check_keywords
from policies.planner import WindowParameters, plan_window
from policies.types import Decision, Device, JobSpec, ZoneIntensity

__all__ = ["CarbonLookahead", "CarbonWindow", "Oracle", "WaitAwhile"]


class CarbonWindow:
    """carbond's spatio-temporal planner. Keyword parameters: see :class:`WindowParameters`.

    Raises:
        PoliciesError: an unknown or out-of-range parameter.
    """

    policy_name: ClassVar[str] = "carbon-window"
    uses_actuals: ClassVar[bool] = False
    # A held job moves only for a cell more than 1 % cheaper (docs/policies.md, "Recording").
    defaults: ClassVar[Mapping[str, Any]] = {"replan_margin": 0.01}

    def __init__(self, **params: Any) -> None:
        check_keywords(self.policy_name, params, [f.name for f in fields(WindowParameters)])
        self.params = WindowParameters(**{**self.defaults, **params})
        self.params.validate()
        self._cache: dict[tuple[object, ...], Estimate] = {}  # raw estimates, shared by copies
        self._state = PlanState()  # scored rows kept between ticks, shared by copies
        self.recalibration: Recalibration | None = None  # online factors (with_recalibration)
        self.plan_interval_s: float | None = None  # its caller's rounds (with_plan_interval)

    @property
    def name(self) -> str:
        """The registered name."""
        return self.policy_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    def preload_estimates(self, estimates: Mapping[tuple[object, ...], Estimate]) -> None:
        """Plan from ``estimates`` as if it had made them: raw footprint estimates by the
        scorer's key, as :func:`policies.scoring.score` fills its ``cache`` for the same jobs
        and GPU types. A policy estimates each job on each GPU type once and keeps it (shared
        by its copies), so a running daemon's policy holds its queue's; a benchmark that times
        a new policy's plan in that steady state starts it from them
        (``bench/bench_planner.py``)."""
        self._cache.update(estimates)

    def plan(
        self,
        now: datetime,
        jobs: Sequence[JobSpec],
        devices: Sequence[Device],
        forecasts: Mapping[str, ZoneIntensity],
    ) -> list[Decision]:
        """One decision per job (see :func:`policies.planner.plan_window`)."""
        return plan_window(
            self.name,
            now,
            jobs,
            devices,
            forecasts,
            self.params,
            self._cache,
            self.recalibration,
            self._state,
            self.plan_interval_s,
        )


class WaitAwhile(CarbonWindow):
    """Temporal shifting in the job's home region only, on the point forecast."""

    policy_name = "wait-awhile"
    defaults: ClassVar[Mapping[str, Any]] = {
        "home_only": True,
        "guard_s": 1800.0,  # it herds into the clean hours: keep more room before deadlines
        "risk_aversion": 0.0,
        "herd_penalty": 0.0,
        "min_saving": 0.0,
    }


class CarbonLookahead(CarbonWindow):
    """``carbon-window`` with look-ahead over capacity: the queue's cells assigned jointly by
    an LP each round (:mod:`policies.lookahead`), the same safety rules and rescue path."""

    policy_name = "carbon-lookahead"
    defaults: ClassVar[Mapping[str, Any]] = {"lookahead": True}


class Oracle(CarbonWindow):
    """``carbon-window`` given the realised intensity (replay only), with ``min_saving`` 0: what
    perfect forecasts add to the same greedy planner (a reference, not a bound)."""

    policy_name = "oracle"
    uses_actuals = True
    # Actuals carry no forecast error, so no gain is too small to wait for.
    defaults: ClassVar[Mapping[str, Any]] = {"min_saving": 0.0}


register_policy("carbon-window")(CarbonWindow)
register_policy("wait-awhile")(WaitAwhile)
register_policy("oracle")(Oracle)
register_policy("carbon-lookahead")(CarbonLookahead)
