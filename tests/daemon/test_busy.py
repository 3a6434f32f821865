"""The planner's devices kept between rounds: equal at every round to those a fresh
:class:`BusyDevices` (nothing kept) builds, and a GPU whose ``busy_until`` did not change keeps
its object."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from daemon.busy import BusyDevices
from daemon.inventory import build_inventory
from daemon.ledger import RunRecord
from daemon.settings import RegionSettings

NOW = datetime(2024, 6, 1, tzinfo=UTC)
INVENTORY = build_inventory([
    RegionSettings(name="qc", zone="CA-QC", executor="simulated", gpus=("T4", "T4", "A100")),
    RegionSettings(name="ca", zone="US-CAL-CISO", executor="simulated", gpus=("H100",)),
])  # fmt: skip


def _run(job_id: str, devices: tuple[str, ...], started: datetime, duration_s: float) -> RunRecord:
    return RunRecord(job_id, "simulated", "t", devices, tuple(range(len(devices))), duration_s,
                     started, started, None, None, None, None)  # fmt: skip


def test_every_round_equals_a_fresh_view_and_unchanged_gpus_keep_their_device() -> None:
    ids = [gpu.device_id for gpu in INVENTORY]
    rounds = [
        (NOW, []),
        (NOW, [_run("a", (ids[0],), NOW, 600)]),
        (NOW + timedelta(minutes=1), [_run("a", (ids[0],), NOW, 600)]),
        # two runs on one GPU (a re-adopted one): the later end counts
        (NOW + timedelta(minutes=2), [_run("a", (ids[0],), NOW, 600),
                                      _run("b", (ids[0], ids[3]), NOW, 900)]),
        # past its expected end: busy one more overrun from now, moving every round
        (NOW + timedelta(minutes=20), [_run("b", (ids[0], ids[3]), NOW, 900)]),
        (NOW + timedelta(minutes=21), [_run("b", (ids[0], ids[3]), NOW, 900)]),
        (NOW + timedelta(minutes=22), []),
    ]  # fmt: skip
    view, last = BusyDevices(), None
    for now, runs in rounds:
        devices = view.devices(INVENTORY, runs, now, 60.0)
        assert devices == BusyDevices().devices(INVENTORY, runs, now, 60.0)
        if last is not None:
            for before, after in zip(last, devices, strict=True):
                assert (before is after) == (before.busy_until == after.busy_until)
        last = devices


def test_a_new_inventory_entry_is_seen_though_busy_until_is_the_same() -> None:
    view = BusyDevices()
    first = view.devices(INVENTORY, [], NOW, 60.0)
    lost = tuple(replace(g, device=replace(g.device, available=False)) for g in INVENTORY)
    second = view.devices(lost, [], NOW, 60.0)
    assert [d.available for d in first] == [True] * len(INVENTORY)
    assert second == BusyDevices().devices(lost, [], NOW, 60.0)
    assert [d.available for d in second] == [False] * len(INVENTORY)
