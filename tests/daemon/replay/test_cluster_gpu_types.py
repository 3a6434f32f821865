"""A cluster file (or the operator's ``carbond.toml`` read as one) whose regions have a GPU
type of its own ``[catalog.gpus.NAME]``: the replay refused it (``unknown GPU``); now it
replays on the type as the daemon would plan on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.replay.cluster import load_cluster
from daemon.replay.errors import ReplayInputError
from policies.footprint.gpus import DEFAULT_GPU_CATALOG, GPU_SPEC_FIELDS
from tests.daemon.replay.conftest import CLUSTER
from tests.daemon.replay.replay_argv import input_options

_T4 = DEFAULT_GPU_CATALOG.get("T4")
# the T4's figures under another name, its paper figure with its method
_CLONE = (
    "[catalog.gpus.T4-clone]\n"
    + "".join(f"{name} = {json.dumps(getattr(_T4, name))}\n" for name in GPU_SPEC_FIELDS)
    + f'embodied_kg = {_T4.embodied_kg}\nembodied_method = "{_T4.embodied_method}"\n'
)


def test_a_cluster_of_a_new_type_replays_as_the_built_in_it_copies(
    tmp_path: Path, trace: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    results = []
    for text in (CLUSTER, CLUSTER.replace('type = "T4"', 'type = "t4 clone"') + _CLONE):
        cluster = tmp_path / "cluster.toml"
        cluster.write_text(text, encoding="utf-8")
        argv = ["replay", *input_options(trace, cluster, intensity_files), "--days", "0.25",
                "--policy", "run-now", "--model", "llama-1b", "--requests-per-job", "64",
                "--tick", "300", "--json"]  # fmt: skip
        assert main(argv) == 0
        [row] = json.loads(capsys.readouterr().out)
        results.append(row)
    built_in, clone = results
    assert clone["jobs"] == built_in["jobs"] > 0
    assert clone["total_g"] == pytest.approx(built_in["total_g"])
    assert clone["embodied_g"] == pytest.approx(built_in["embodied_g"]) and clone["embodied_g"] > 0
    assert load_cluster(cluster).regions[0].gpus[0][0].name == "T4-clone"


def test_a_new_type_lacking_a_field_is_refused_at_its_line(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.toml"
    cluster.write_text(CLUSTER + _CLONE.replace("tdp_w", "tdp_W"), encoding="utf-8")
    with pytest.raises(ReplayInputError, match=r"catalog.gpus.T4-clone.tdp_W: Extra inputs"):
        load_cluster(cluster)
