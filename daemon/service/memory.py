"""What the service keeps in memory between planning rounds (:class:`PlanMemory`), beside the
ledger: each zone's last forecast, the planner's view of each waiting job and its latest
recorded decision, the planner's devices and the GPUs the recorded run-now counterfactuals
hold. A reload's new service takes part of it over from the one it replaces
(:meth:`PlanMemory.take_over`); a restart starts empty and reads back what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from daemon.busy import BusyDevices
from daemon.planning import Seen
from daemon.queue.job_request import JobRequest
from daemon.run_now_busy import RunNowBusy
from policies import Alternative, JobSpec, ZoneIntensity

__all__ = ["PlanMemory", "SpecEntry"]

SpecEntry = tuple[JobRequest, JobSpec, Alternative | None]
"""The planner's view of a waiting job: its request, its spec and the plan the spec carries."""


@dataclass(slots=True, eq=False)
class PlanMemory:
    """The planning rounds' memory, held by one :class:`~daemon.service.Service` (under its
    lock) and handed to the steps that use it."""

    forecasts: dict[str, ZoneIntensity] = field(default_factory=dict)  # by zone
    last_refresh: datetime | None = None  # of the forecasts (None: due at once)
    # newest point of each zone's too-old history, as logged (intensity_history_stale)
    stale_history_logged: dict[str, datetime] = field(default_factory=dict)
    decided: Seen = field(default_factory=dict)  # latest recorded decision per waiting job
    specs: dict[str, SpecEntry] = field(default_factory=dict)  # by waiting job
    busy: BusyDevices = field(default_factory=BusyDevices)  # the planner's devices
    run_now_busy: RunNowBusy = field(default_factory=RunNowBusy)  # the counterfactuals' GPUs

    def refresh_due(self, now: datetime, refresh_s: float) -> bool:
        """Whether ``refresh_s`` seconds have passed since the last refresh (or none was)."""
        last = self.last_refresh
        return last is None or (now - last).total_seconds() >= refresh_s

    def forget_forecasts(self) -> None:
        """Drop every forecast (new settings: zones or providers may differ); the next plan
        fetches them again."""
        self.forecasts.clear()
        self.last_refresh = None

    def take_over(self, previous: PlanMemory) -> None:
        """After a reload: ``previous``'s (the replaced service's) GPUs its recorded run-now
        counterfactuals hold and which waiting jobs' copies, and each waiting job's latest
        decision recorded: not read back from the ledger job by job in the first plan; and
        the too-old histories it logged (``intensity_history_stale``, not logged again for the
        same newest point, as the overdue runs already reported are not). The forecasts are
        fetched again, the specs built again (the plans of the planned jobs this ledger
        connection did not add read together: :func:`daemon.planning.stored_plans`)."""
        self.run_now_busy, self.decided = previous.run_now_busy, previous.decided
        self.stale_history_logged = previous.stale_history_logged
        self.run_now_busy.known(j for j, e in previous.specs.items() if e[1].run_now_recorded)
