"""SIGHUP with a config the running daemon cannot take: ``reload_rejected`` names why, the
running config goes on (a real ``carbond run`` process and its log)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from daemon.cli.run_cmd import discovery_added, restart_only_changes, slurm_regions_added
from daemon.settings import RegionSettings, Settings, SlurmRegionSettings

pytestmark = pytest.mark.slow

CONFIG = """
state_dir = "{state}"
[policy]
name = "run-now"
[intervals]
ingest_s = 0.1
plan_s = 0.2
reconcile_s = 0.1
[metrics]
port = 0
[log]
format = "json"
[[regions]]
name = "qc"
zone = "CA-QC"
executor = "simulated"
gpus = ["T4"]
"""
SITE_WITH_A_MISSING_CSV = """
[[regions]]
name = "solar"
zone = "DE"
executor = "simulated"
gpus = ["T4"]
[regions.site]
pv_csv = "{csv}"
"""
TWO_LOCAL_REGIONS = """
[[regions]]
name = "a"
zone = "DE"
executor = "local"
gpus = ["T4"]
[[regions]]
name = "b"
zone = "FR"
gpus = ["L4"]
"""
SLURM_REGION = """
[[regions]]
name = "cluster"
zone = "DE"
executor = "slurm"
gpus = ["A100-80GB"]
[regions.slurm]
partition = "gpu"
"""


def _events(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


# A real daemon on a loaded 2-core runner took over 30 s to start: a deadline only a hang reaches.
DEADLINE_S = 300.0


def _wait_for(
    log: Path,
    event: str,
    count: int,
    timeout_s: float = DEADLINE_S,
    *,
    taken_instead: str | None = None,
) -> list[dict[str, Any]]:
    """The first ``count`` ``event`` lines of ``log``, waiting for them; fails at once when
    ``taken_instead`` (the event of what should not happen) is logged."""
    end = time.monotonic() + timeout_s
    while True:
        events = _events(log)
        found = [e for e in events if e["event"] == event]
        if len(found) >= count:
            return found
        if taken_instead is not None and any(e["event"] == taken_instead for e in events):
            raise AssertionError(f"{taken_instead} instead of {event} in {log.read_text()}")
        if time.monotonic() > end:
            raise AssertionError(f"no {count}x {event} in {log.read_text()}")
        time.sleep(0.05)


@contextmanager
def _carbond_run(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``carbond run --config CONFIG`` (no systemd to notify) writing its output to ``log``;
    killed on the way out unless it has ended."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(config)],
            env={**os.environ, "NOTIFY_SOCKET": ""},
            stdout=out,
            stderr=out,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_reload_the_running_daemon_cannot_wire_is_rejected_saying_why(tmp_path: Path) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state"))
    log = tmp_path / "daemon.log"
    with _carbond_run(config, log) as proc:
        _wait_for(log, "daemon_ready", 1)
        missing = tmp_path / "no-such-pv.csv"
        config.write_text(config.read_text() + SITE_WITH_A_MISSING_CSV.format(csv=missing))
        proc.send_signal(signal.SIGHUP)
        (first,) = _wait_for(log, "reload_rejected", 1)
        line = config.read_text().splitlines().index(f'pv_csv = "{missing}"') + 1
        assert first["problems"][0].startswith(f"{config}:{line}: regions.solar.site.pv_csv: ")
        assert str(missing) in first["problems"][0]

        config.write_text(CONFIG.format(state=tmp_path / "state") + SLURM_REGION)
        proc.send_signal(signal.SIGHUP)
        second = _wait_for(log, "reload_rejected", 2)[1]
        assert second["problems"] == [
            "regions cluster: a region on Slurm is set up when carbond starts; "
            "restart carbond to add one"
        ]

        # two local regions on this node's GPU 0 (b's executor the default): a reload took them
        config.write_text(CONFIG.format(state=tmp_path / "state") + TWO_LOCAL_REGIONS)
        proc.send_signal(signal.SIGHUP)
        third = _wait_for(log, "reload_rejected", 3, taken_instead="reload_settings")[2]
        line = config.read_text().splitlines().index('name = "b"')  # b's [[regions]] above
        assert third["problems"] == [
            f"{config}:{line}: regions.b: local regions claim the same GPU of this node (list "
            "position = CUDA index): GPU 0: a, b; each job of either would run on it, two at "
            "once, planned and charged as separate GPUs: give each GPU of this node to one "
            "local region (a region elsewhere runs on slurm)"
        ]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE_S) == 0
    events = [e["event"] for e in _events(log)]
    assert "reload_failed" not in events and "reload_applied" not in events
    assert "reload_settings" not in events
    assert "Traceback" not in log.read_text()


def _slurm_region(name: str, partition: str) -> RegionSettings:
    return RegionSettings(
        name=name,
        zone="DE",
        executor="slurm",
        gpus=["A100-80GB"],
        slurm=SlurmRegionSettings(partition=partition),
    )


def test_a_reload_that_changes_a_slurm_partition_names_it_as_needing_a_restart() -> None:
    started = Settings(regions=(_slurm_region("a", "gpu"), _slurm_region("b", "gpu")))
    moved = Settings(regions=(_slurm_region("a", "gpu"), _slurm_region("b", "big")))
    assert restart_only_changes(started, moved) == ["regions.b.slurm"]
    assert slurm_regions_added(started, moved) is None
    grown = Settings(regions=(*started.regions, _slurm_region("c", "gpu")))
    assert slurm_regions_added(started, grown) == (
        "regions c: a region on Slurm is set up when carbond starts; restart carbond to add one"
    )
    assert restart_only_changes(started, grown) == []


def test_a_reload_that_adds_the_first_discovering_region_is_refused() -> None:
    """NVML is opened at start only when a region declares ``gpus = "discover"``: a reload
    adding the first one built it with no GPU, and its jobs were rejected as fitting none."""
    declared = RegionSettings(name="a", zone="DE", gpus=["A100-80GB"])
    found = RegionSettings(name="b", zone="DE", gpus="discover")
    started = Settings(regions=(declared,))
    assert discovery_added(started, Settings(regions=(declared,))) is None
    assert discovery_added(started, Settings(regions=(declared, found))) == (
        'regions b: gpus = "discover" reads this node\'s GPUs through NVML, which carbond '
        "opens when it starts; restart carbond to add one"
    )
    on_slurm = found.model_copy(  # Slurm's own discovery
        update={"executor": "slurm", "slurm": SlurmRegionSettings(partition="gpu")}
    )
    assert discovery_added(started, Settings(regions=(declared, on_slurm))) is None
    again = Settings(regions=(declared, found))
    assert (
        discovery_added(again, Settings(regions=(found, found.model_copy(update={"name": "c"}))))
        is None
    )


def test_a_reload_that_adds_gpus_carbond_meters_says_they_are_not_metered(
    tmp_path: Path,
) -> None:
    """A reload adding a simulated region was applied without a word, and its jobs ended with
    their energy ``estimated``: the GPU meter, built at start-up, meters only the GPUs the
    daemon started with. The reload now says which GPUs it is not metering until a restart."""
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=tmp_path / "state"))
    log = tmp_path / "daemon.log"
    with _carbond_run(config, log) as proc:
        _wait_for(log, "daemon_ready", 1)
        proc.send_signal(signal.SIGHUP)  # the same GPUs: nothing to say
        _wait_for(log, "reload_applied", 1)
        config.write_text(
            config.read_text() + '[[regions]]\nname = "de"\nzone = "DE"\nexecutor = "simulated"\n'
            'gpus = ["T4", "L4"]\n'
        )
        proc.send_signal(signal.SIGHUP)
        _wait_for(log, "reload_applied", 2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE_S) == 0
    events = _events(log)
    started = next(e for e in events if e["event"] == "gpu_measurement_on")
    assert started["gpus"] == ["qc/0"]
    (unmetered,) = [e for e in events if e["event"] == "reload_gpus_unmetered"]
    assert unmetered["gpus"] == ["de/0", "de/1"]
    assert unmetered["level"] == "warning"
