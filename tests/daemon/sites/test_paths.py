"""Where a site's relative CSV path points: beside the file that names it (``carbond.toml``, a
replay cluster file), not in the working directory (``/`` under systemd)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon.replay.cluster import load_cluster
from daemon.settings import load_settings
from daemon.sites import build_sites

REGION = """
[[regions]]
name = "sf"
zone = "US-CAL-CISO"
executor = "local"
gpus = ["RTX6000-Ada"]

[regions.site]
pv_csv = "pv.csv"
other_load_csv = "logs/load.csv"
"""


def _beside(config_dir: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config naming ``pv.csv`` and ``logs/load.csv`` with both files beside it, and a
    working directory holding other files of those names (the wrong ones, 1 W)."""
    for base, watts in ((config_dir, 500), (elsewhere, 1)):
        (base / "logs").mkdir(parents=True)
        for name in ("pv.csv", "logs/load.csv"):
            rows = "".join(f"2023-06-05T{h:02d}:00:00Z,{watts}\n" for h in range(24))
            (base / name).write_text("datetime,power_w\n" + rows, encoding="utf-8")
    config = config_dir / "carbond.toml"
    config.write_text(f"state_dir = '{config_dir / 'state'}'\n" + REGION, encoding="utf-8")
    monkeypatch.chdir(elsewhere)
    return config


def test_the_daemon_reads_a_relative_site_csv_beside_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _beside(tmp_path / "etc", tmp_path / "cwd", monkeypatch)
    site = load_settings(config).regions[0].site
    assert site is not None
    assert site.pv_csv == tmp_path / "etc" / "pv.csv"
    assert site.other_load_csv == tmp_path / "etc" / "logs" / "load.csv"
    built = build_sites(load_settings(config).regions)["sf"]
    assert built.pv_trace is not None and built.other_trace is not None
    assert np.all(built.pv_trace.values_w == 500.0)
    assert np.all(built.other_trace.values_w == 500.0)


def test_a_replay_reads_a_relative_site_csv_beside_its_cluster_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = load_cluster(_beside(tmp_path / "etc", tmp_path / "cwd", monkeypatch))
    site = cluster.regions[0].site
    assert site is not None and site.pv_csv == tmp_path / "etc" / "pv.csv"
    assert site.other_load_csv == tmp_path / "etc" / "logs" / "load.csv"


def test_an_absolute_site_csv_stays_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _beside(tmp_path / "etc", tmp_path / "cwd", monkeypatch)
    absolute = tmp_path / "cwd" / "pv.csv"
    config.write_text(config.read_text().replace('"pv.csv"', f'"{absolute}"'), encoding="utf-8")
    site = load_settings(config).regions[0].site
    assert site is not None and site.pv_csv == absolute
