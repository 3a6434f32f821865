"""A site problem found when the sites are built (a CSV that cannot be read, a zone another
region shares) names the file, the line and the field, as a bad value of the config does:
``carbond run``, a reload and ``carbond doctor`` through :func:`sites_of`, a replay's
cluster file through :func:`load_cluster`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.doctor.checks import run_checks
from daemon.replay.cluster import load_cluster
from daemon.replay.errors import ReplayInputError
from daemon.settings import load_settings
from daemon.sites import SiteConfigError, sites_of

# sf simulated: two local regions would share this node's GPU 0, which `carbond run` refuses
CONFIG = """state_dir = "{state}"

[[regions]]
name = "north"
zone = "{north_zone}"
gpus = ["T4"]

[[regions]]
name = "sf"
zone = "US-CAL-CISO"
gpus = ["T4"]
executor = "simulated"

[regions.site]
other_load_w = 100.0
{site}
"""


def _config(tmp_path: Path, *, north_zone: str = "SE", site: str = "") -> tuple[Path, str]:
    config = tmp_path / "carbond.toml"
    text = CONFIG.format(state=tmp_path / "state", north_zone=north_zone, site=site)
    config.write_text(text, encoding="utf-8")
    return config, text


def _line(text: str, starts: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(starts))


@pytest.mark.parametrize("field", ["pv_csv", "other_load_csv"])
def test_a_site_csv_that_cannot_be_read_names_its_line(tmp_path: Path, field: str) -> None:
    missing = tmp_path / "missing.csv"
    config, text = _config(tmp_path, site=f'{field} = "{missing}"')
    if field == "other_load_csv":  # other_load_w and other_load_csv both set is refused
        text = text.replace("other_load_w = 100.0\n", "")
        config.write_text(text, encoding="utf-8")
    with pytest.raises(SiteConfigError) as caught:
        sites_of(load_settings(config))
    line = _line(text, f"{field} =")
    assert str(caught.value).startswith(f"{config}:{line}: regions.sf.site.{field}: ")
    assert str(missing) in str(caught.value)


def test_a_zone_shared_with_a_site_names_the_zone_line(tmp_path: Path) -> None:
    config, text = _config(tmp_path, north_zone="US-CAL-CISO")
    with pytest.raises(SiteConfigError) as caught:
        sites_of(load_settings(config))
    zones = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith("zone =")]
    assert str(caught.value) == (  # the zone of the region with the site: sf's, not north's
        f"{config}:{zones[1]}: regions.sf.zone: "
        "zone US-CAL-CISO is shared with north; a region with a site needs a zone of its own"
    )


def test_doctor_names_the_line_of_a_site_it_cannot_build(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    config, text = _config(tmp_path, site=f'pv_csv = "{missing}"')
    (check,) = [c for c in run_checks(config, datetime.now(UTC)) if c.name == "config"]
    assert check.status == "fail"
    line = _line(text, "pv_csv =")
    assert check.detail.startswith(f"{config}:{line}: regions.sf.site.pv_csv: ")
    assert check.detail.endswith("(`carbond run` refuses it)")


def test_a_replay_cluster_file_names_the_line_of_a_site_it_cannot_build(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    config, text = _config(tmp_path, site=f'pv_csv = "{missing}"')
    with pytest.raises(ReplayInputError) as caught:
        load_cluster(config)
    line = _line(text, "pv_csv =")
    assert str(caught.value).startswith(f"{config}:{line}: regions.sf.site.pv_csv: ")
    config, text = _config(tmp_path, north_zone="US-CAL-CISO")
    with pytest.raises(ReplayInputError, match=r"toml:10: regions\.sf\.zone: zone US-CAL-CISO"):
        load_cluster(config)
