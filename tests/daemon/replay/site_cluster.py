"""A replay cluster file with an on-site PV array or battery (``[regions.site]``), shared by the
site tests: :func:`site_cluster` adds a site to the conftest cluster's California region."""

from __future__ import annotations

from pathlib import Path

from tests.daemon.replay.conftest import CLUSTER

SITE_PV = """
[regions.site]
pv_kwp = {kwp}
latitude = 37.77
longitude = -122.42
"""
BATTERY = """
[regions.site.battery]
capacity_kwh = 1.0
charge_power_w = 500
discharge_power_w = 500
round_trip_efficiency = 0.9
min_soc = 0.2
initial_soc = 0.8
"""


def site_cluster(tmp_path: Path, site: str) -> Path:
    """The conftest cluster with ``site`` added to its California region (the last one)."""
    path = tmp_path / "site-cluster.toml"
    path.write_text(CLUSTER + site, encoding="utf-8")
    return path
