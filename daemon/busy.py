"""The planner's devices as carbond's runs hold them, kept between rounds.

Each round the planner needs every GPU as a :class:`~policies.Device` with ``busy_until`` set
from the running jobs; most GPUs read the same from one round to the next (idle, or held by the
same run until the same expected end), so :class:`BusyDevices` hands back last round's object
for those and builds (``dataclasses.replace``) only the ones that changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from daemon.inventory import InventoryGpu
from daemon.ledger import RunRecord
from policies import Device

__all__ = ["BusyDevices"]


class BusyDevices:
    """The inventory's devices as the runs hold them, reusing each GPU's device of the last
    call when its inventory entry and ``busy_until`` are the same (a fresh one keeps nothing)."""

    def __init__(self) -> None:
        # By device id: the inventory's device, the busy_until set, and the device built.
        self._last: dict[str, tuple[Device, datetime | None, Device]] = {}

    def devices(
        self,
        inventory: Sequence[InventoryGpu],
        runs: Sequence[RunRecord],
        now: datetime,
        overrun_s: float,
    ) -> list[Device]:
        """The inventory's devices with ``busy_until`` set from the running jobs (a job
        running past its expected end keeps its GPUs another ``overrun_s`` seconds)."""
        busy: dict[str, datetime] = {}
        overrun = now + timedelta(seconds=overrun_s)
        for run in runs:
            started = run.started_at or run.launched_at
            end = max(started + timedelta(seconds=run.expected_duration_s), overrun)
            for device_id in run.device_ids:
                busy[device_id] = max(end, busy.get(device_id, end))
        last, kept, devices = self._last, {}, []
        for gpu in inventory:
            until = busy.get(gpu.device_id)
            entry = last.get(gpu.device_id)
            if entry is None or entry[0] is not gpu.device or entry[1] != until:
                entry = (gpu.device, until, replace(gpu.device, busy_until=until))
            kept[gpu.device_id] = entry
            devices.append(entry[2])
        self._last = kept
        return devices
