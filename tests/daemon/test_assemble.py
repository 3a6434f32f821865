"""The composition root: settings become executors, intervals and a service."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from daemon.assemble import build_daemon, build_executors, intervals_of
from daemon.executors.local import LocalExecutor
from daemon.executors.simulated import SimulatedExecutor
from daemon.loop import Intervals
from daemon.settings import RegionSettings, Settings


def test_executors_and_intervals_follow_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        intervals={"ingest_s": 1.0, "refresh_s": 60.0, "plan_s": 10.0, "reconcile_s": 3.0},
        executors={"simulated": {"truth_factor": 2.0}},
    )

    executors = build_executors(settings)

    assert isinstance(executors["local"], LocalExecutor)
    assert isinstance(executors["simulated"], SimulatedExecutor)
    assert executors["simulated"].duration_s("j", 100.0) == 200.0
    assert intervals_of(settings) == Intervals(1.0, 60.0, 10.0, 3.0)


def test_discovered_gpus_become_devices_and_close_releases_them(tmp_path: Path) -> None:
    released: list[bool] = []
    region = RegionSettings(name="here", zone="CA-QC", executor="local", gpus="discover")
    settings = Settings(state_dir=tmp_path, regions=(region,), policy={"name": "run-now"})

    def discover(r: RegionSettings) -> Sequence[tuple[int, str]]:
        return [(0, "T4"), (3, "RTX6000-Ada")]

    daemon = build_daemon(settings, discover=discover)
    daemon.release = lambda: released.append(True)
    try:
        ids = [gpu.device_id for gpu in daemon.service.inventory]
        indices = [gpu.index for gpu in daemon.service.inventory]
    finally:
        daemon.close()

    assert ids == ["here/0", "here/3"] and indices == [0, 3]
    assert released == [True]
    assert (tmp_path / "ledger.db").is_file()
