"""Helper for tests of regions with a site: a service whose one region (or the regions given)
runs on a recording executor (``site_service``)."""

from __future__ import annotations

from pathlib import Path

from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import RegionSettings, Settings, SiteSettings
from daemon.sites import SiteView, build_sites
from daemon.testing import RecordingExecutor
from policies import get_policy


def site_service(
    tmp_path: Path,
    site: SiteSettings | None,
    regions: tuple[RegionSettings, ...] = (),
    policy: str = "run-now",
) -> tuple[Service, RecordingExecutor]:
    """A service over a fresh ledger in ``tmp_path``, ``policy`` (run-now by default),
    embedded intensity and a recording ``local`` executor (returned with it); ``regions``, or
    by default one region ``node`` (CA-QC, one A100-80GB) at ``site``."""
    regions = regions or (
        RegionSettings(name="node", zone="CA-QC", executor="local", gpus=("A100-80GB",), site=site),
    )
    settings = Settings(state_dir=tmp_path, regions=regions, policy={"name": policy})
    ledger = Ledger.open(tmp_path / "ledger.db")
    executor = RecordingExecutor("local")
    service = Service(
        settings=settings, ledger=ledger,
        queue=Queue(tmp_path, ledger, known_regions=[r.name for r in regions]),
        executors={"local": executor}, inventory=build_inventory(regions),
        intensity=EmbeddedIntensity(), policy=get_policy(policy),
        sites=SiteView(build_sites(regions)),
    )  # fmt: skip
    return service, executor
