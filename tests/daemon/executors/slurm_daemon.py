"""Helpers for tests that run the whole daemon over a fake Slurm: a forecast with one low-carbon
hour (``Dip``) and a daemon with one Slurm region, ``qc`` on partition ``alpha``
(``slurm_daemon``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from daemon.assemble import Daemon, build_daemon
from daemon.executors.slurm import SlurmExecutor, Target
from daemon.intensity.providers import IntensityReading, ZoneSeries
from daemon.settings import (
    IntensitySettings,
    PolicySettings,
    RegionSettings,
    Settings,
    SlurmRegionSettings,
)
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import FakeSlurm


class Dip:
    """CA-QC at 300 g/kWh except 20 g/kWh in [start, start + 1 h)."""

    def __init__(self, start: datetime) -> None:
        self.start = start

    def refresh(self, zones: object, now: datetime) -> None:
        return None

    def _at(self, at: datetime) -> float:
        return 20.0 if self.start <= at < self.start + timedelta(hours=1) else 300.0

    def forecast(self, zone: str, now: datetime, horizon_s: int, step_s: int) -> ZoneSeries:
        start = datetime.fromtimestamp(now.timestamp() - now.timestamp() % step_s, UTC)
        values = [
            self._at(start + timedelta(seconds=k * step_s)) for k in range(horizon_s // step_s)
        ]
        return ZoneSeries(zone, start, step_s, np.array(values, dtype=np.float64), "test")

    def current(self, zone: str, now: datetime) -> IntensityReading:
        return IntensityReading(zone, now, self._at(now), "test")


def slurm_daemon(
    tmp_path: Path, slurm: FakeSlurm, forecast: Dip, *, allow_root: bool = True
) -> Daemon:
    """A daemon with state in ``tmp_path``, the carbon-window policy, ``forecast`` as its
    intensity (6 h ahead in 15 min steps) and one region ``qc`` (zone CA-QC) whose executor is
    Slurm partition ``alpha`` over ``slurm``, submitting root's jobs unless not ``allow_root``
    (its ``allow_root_jobs``)."""
    region = RegionSettings(name="qc", zone="CA-QC", executor="slurm",
                            slurm=SlurmRegionSettings(partition="alpha"))  # fmt: skip
    settings = Settings(
        state_dir=tmp_path,
        regions=(region,),
        policy=PolicySettings(name="carbon-window"),
        intensity=IntensitySettings(source="static", horizon_s=6 * 3600, step_s=900),
    )
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=slurm,
                             known_gpus=DEFAULT_GPU_CATALOG.names(),
                             allow_root_jobs=allow_root)  # fmt: skip
    return build_daemon(settings, executors={"slurm": executor}, intensity=forecast)
