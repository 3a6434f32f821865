"""The run-now counterfactual's GPUs across planning rounds.

Each job's run-now counterfactual is recorded with its first decision that has one: where and
when ``run-now`` would have started it. In the run-now world that run then holds its GPUs
until it ends, so a job arriving in a later round cannot have them meanwhile. The policy
cannot know this from the real devices (the real runs are elsewhere, or later), so the daemon
keeps, per GPU, which jobs' recorded counterfactual runs hold it until when, and hands it to
the policy as :attr:`policies.Device.run_now_busy_until`, with the job holding it longest
(:attr:`~policies.Device.run_now_holder`: that job's own counterfactual, rebuilt each round
for its reason, does not wait for its own run; :mod:`policies.run_now_claims`).

Kept in memory from the decisions recorded; a restart learns them again from the ledger
(:meth:`RunNowBusy.learn`): those of the jobs running, those of the jobs that ended in the
last :data:`ENDED_LOOKBACK_S` (their counterfactual run may outlast the real one), and the
daemon those of the jobs still waiting as it first sees them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from policies import Alternative, Device

__all__ = ["ENDED_LOOKBACK_S", "RunNowBusy"]

ENDED_LOOKBACK_S = 2 * 86400.0
"""How far back a restart reads the counterfactuals of ended jobs (by their outcome's end):
a counterfactual run outlasting its job's real run by more is not learned again."""


class _Recorded(Protocol):
    """What :meth:`RunNowBusy.learn` reads from the ledger."""

    def counterfactual(self, job_id: str) -> dict[str, Any] | None: ...

    def ended_counterfactuals(self, since: datetime) -> list[tuple[str, dict[str, Any]]]: ...


class _Run(Protocol):
    @property
    def job_id(self) -> str: ...


# Per device: its holders' (end, job id), and the device built from them.
_Built = tuple[Device, tuple[datetime, str, datetime | None], Device]


class RunNowBusy:
    """When the recorded run-now counterfactuals hold each GPU until (by device id, by job)."""

    def __init__(self) -> None:
        self._until: dict[str, dict[str, datetime]] = {}
        self._built: dict[str, _Built] = {}

    def hold(self, job_id: str, run: Alternative) -> None:
        """Job ``job_id``'s recorded counterfactual ``run`` (on its ``device_ids`` from its
        ``start`` for its ``duration_s``)."""
        self._hold(job_id, run.device_ids, run.start, run.duration_s)

    def learned(self, ledger: _Recorded, job_id: str) -> bool:
        """:meth:`hold` of job ``job_id``'s counterfactual as the ledger stored it (a job
        first seen, as after a restart); False where none is."""
        return self._hold_recorded(job_id, ledger.counterfactual(job_id))

    def _hold_recorded(self, job_id: str, recorded: Mapping[str, Any] | None) -> bool:
        if recorded is None:
            return False
        start = datetime.fromisoformat(recorded["start"])
        self._hold(job_id, recorded["device_ids"], start, float(recorded["duration_s"]))
        return True

    def _hold(
        self, job_id: str, device_ids: Iterable[str], start: datetime, duration_s: float
    ) -> None:
        end = start + timedelta(seconds=duration_s)
        for device_id in device_ids:
            holds = self._until.setdefault(device_id, {})
            before = holds.get(job_id)
            if before is None or end > before:
                holds[job_id] = end

    def learn(self, ledger: _Recorded, runs: Iterable[_Run], now: datetime) -> None:
        """At a restart: the counterfactual runs of the jobs ``runs`` (running) and of those
        that ended in the last :data:`ENDED_LOOKBACK_S` (one bounded query); those ended by
        ``now`` are dropped at the next :meth:`devices`."""
        for run in runs:
            self.learned(ledger, run.job_id)
        since = now - timedelta(seconds=ENDED_LOOKBACK_S)
        for job_id, recorded in ledger.ended_counterfactuals(since):
            self._hold_recorded(job_id, recorded)

    def devices(self, devices: Sequence[Device], now: datetime) -> list[Device]:
        """``devices`` with ``run_now_busy_until`` (and its holder, and when the others hold
        it until) set where a counterfactual run holds the GPU past ``now`` (last round's
        object where those are the same)."""
        until = self._until
        for device_id in list(until):
            kept = until[device_id]
            for job_id in [k for k, end in kept.items() if end <= now]:
                del kept[job_id]
            if not kept:
                del until[device_id]
        if not until:
            self._built.clear()
            return list(devices)
        built: dict[str, _Built] = {}
        out = []
        for device in devices:
            holds = until.get(device.device_id)
            if holds is None:
                out.append(device)
                continue
            key = _holding(holds)
            entry = self._built.get(device.device_id)
            if entry is None or entry[0] is not device or entry[1] != key:
                end, holder, others = key
                held = replace(device, run_now_busy_until=end, run_now_holder=holder,
                               run_now_others_until=others)  # fmt: skip
                entry = (device, key, held)
            built[device.device_id] = entry
            out.append(entry[2])
        self._built = built
        return out


def _holding(holds: Mapping[str, datetime]) -> tuple[datetime, str, datetime | None]:
    """The latest end of ``holds`` (by job id), its job (ties: the first id), and the latest
    end of the other jobs (None: none)."""
    end = max(holds.values())
    holder = min(j for j, e in holds.items() if e == end)
    others = [e for j, e in holds.items() if j != holder]
    return end, holder, max(others) if others else None
