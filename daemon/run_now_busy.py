"""The run-now counterfactual's GPUs across planning rounds.

Each job's run-now counterfactual is recorded with its first decision that has one: where and
when ``run-now`` would have started it. In the run-now world that run then holds its GPUs
until it ends, so a job arriving in a later round cannot have them meanwhile. The policy
cannot know this from the real devices (the real runs are elsewhere, or later), so the daemon
keeps, per GPU, when the counterfactual runs it recorded hold it until, and hands it to the
policy as :attr:`policies.Device.run_now_busy_until` (:mod:`policies.run_now_claims`).

Kept in memory from the decisions recorded; a restart learns again those of the jobs still
waiting or running (their counterfactual read back from the ledger), not those of the jobs
that ended while their counterfactual run would still hold its GPUs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from policies import Device

__all__ = ["RunNowBusy"]


class RunNowBusy:
    """When the recorded run-now counterfactuals hold each GPU until (by device id)."""

    def __init__(self) -> None:
        self._until: dict[str, datetime] = {}
        # By device id: the device handed in, the time set, and the device built from them.
        self._built: dict[str, tuple[Device, datetime, Device]] = {}

    def hold(self, device_ids: Iterable[str], start: datetime, duration_s: float) -> None:
        """A recorded counterfactual run on ``device_ids`` from ``start`` for ``duration_s``."""
        end = start + timedelta(seconds=duration_s)
        for device_id in device_ids:
            before = self._until.get(device_id)
            if before is None or end > before:
                self._until[device_id] = end

    def hold_recorded(self, recorded: Mapping[str, Any] | None) -> bool:
        """:meth:`hold` of a counterfactual as the ledger stored it (its JSON object: a
        restart learns the runs of the jobs still waiting or running); False for None."""
        if recorded is None:
            return False
        start = datetime.fromisoformat(recorded["start"])
        self.hold(recorded["device_ids"], start, float(recorded["duration_s"]))
        return True

    def devices(self, devices: Sequence[Device], now: datetime) -> list[Device]:
        """``devices`` with ``run_now_busy_until`` set where a counterfactual run holds the
        GPU past ``now`` (last round's object where that time is the same)."""
        until = self._until
        for device_id in [k for k, end in until.items() if end <= now]:
            del until[device_id]
        if not until:
            self._built.clear()
            return list(devices)
        built: dict[str, tuple[Device, datetime, Device]] = {}
        out = []
        for device in devices:
            end = until.get(device.device_id)
            if end is None:
                out.append(device)
                continue
            entry = self._built.get(device.device_id)
            if entry is None or entry[0] is not device or entry[1] != end:
                entry = (device, end, replace(device, run_now_busy_until=end))
            built[device.device_id] = entry
            out.append(entry[2])
        self._built = built
        return out
