"""docs/policies.md says which replay summary fields only a cluster with a site adds, as
:mod:`daemon.replay.summary` writes them."""

from __future__ import annotations

import re
from pathlib import Path

from daemon.replay.driver import replay_policy
from daemon.replay.inputs import ReplayInputs, load_setup, parse_duration_s
from daemon.replay.summary import summarise
from tests.daemon.replay.conftest import START
from tests.daemon.replay.site_cluster import BATTERY, SITE_PV, site_cluster

DOCS = Path(__file__).resolve().parents[3] / "docs" / "policies.md"
ON_SITE = ("grid_kwh", "pv_kwh", "battery_kwh", "offset_share", "offset_share_by_day")


def _summary(trace: Path, cluster: Path, intensity: list[Path]) -> dict[str, object]:
    inputs = ReplayInputs((trace,), "azure", cluster, tuple(intensity), START, 0.25, 64, 8.0,
                          "llama-1b", "vllm", 8, 300, "seasonal-24h")  # fmt: skip
    return summarise([replay_policy(load_setup(inputs, parse_duration_s("1h")), "run-now")])[0]


def test_the_docs_name_as_site_only_exactly_the_fields_a_site_adds(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path
) -> None:
    """The docs said regions with a site add grid_kwh, pv_kwh, battery_kwh and offset_share
    to each summary, but every replay --json row carries them (all grid energy without a
    site); only offset_share_by_day comes with a site."""
    plain = _summary(trace, cluster_file, intensity_files)
    sited = _summary(trace, site_cluster(tmp_path, SITE_PV.format(kwp=0.5) + BATTERY),
                     intensity_files)  # fmt: skip
    assert plain["pv_kwh"] == plain["battery_kwh"] == plain["offset_share"] == 0.0
    added = [f for f in ON_SITE if f in sited and f not in plain]
    assert added == ["offset_share_by_day"]
    text = " ".join(DOCS.read_text(encoding="utf-8").split())
    match = re.search(r"Regions with a site \(.*?\) add (.*?)\. ", text)
    assert match is not None
    for field in ON_SITE:
        named = re.search(rf"`?\b{field}\b", match[1]) is not None
        assert named == (field in added), (field, match[1])
