"""Where a site's relative CSV path points: beside the file that names it (``carbond.toml``, a
replay cluster file), not in the working directory (``/`` under systemd)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon.replay.cluster import load_cluster
from daemon.settings import ConfigError, load_settings
from daemon.sites import SiteConfigError, build_sites

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


BAD = """state_dir = "{state}"

[[regions]]
name = "sf"
zone = "US-CAL-CISO"
pue = {pue}
gpus = ["RTX6000-Ada"]

[regions.site]
{site}
"""


def _line(text: str, starts: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(starts))


def test_a_bad_site_setting_names_its_region_as_a_bad_csv_does(tmp_path: Path) -> None:
    """Settings errors named a site by list index (``regions.0.site.battery``) while a CSV it
    could not read named it by region (``regions.sf.site``); both name the region now, with
    the file's line. Other region fields are named by the region's name too."""
    config = tmp_path / "carbond.toml"
    battery = "[regions.site.battery]\ncapacity_kwh = -1\ncharge_power_w = 1\ndischarge_power_w = 1"
    text = BAD.format(state=tmp_path, pue=9.0, site=battery)
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.problems == [
        f"{config}:{_line(text, 'pue')}: regions.sf.pue: Input should be less than or equal to 3",
        f"{config}:{_line(text, 'capacity_kwh')}: regions.sf.site.battery.capacity_kwh: "
        "Input should be greater than 0",
    ]
    text = BAD.format(state=tmp_path, pue=1.0, site="pv_kwp = 1.0")
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:  # at pv_kwp's line, not [regions.site]'s
        load_settings(config)
    assert caught.value.problems == [
        f"{config}:{_line(text, 'pv_kwp')}: regions.sf.site.pv_kwp: pv_kwp needs latitude and "
        "longitude (or a measured pv_csv instead)"
    ]
    config.write_text(BAD.format(state=tmp_path, pue=1.0, site="pv_csv = 'missing.csv'"))
    with pytest.raises(SiteConfigError, match=r"^regions\.sf\.site\.pv_csv: .*missing\.csv"):
        build_sites(load_settings(config).regions)
