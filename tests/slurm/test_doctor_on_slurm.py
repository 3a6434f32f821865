"""``carbond doctor``'s slurm line on the real local Slurm 22.05 (``make slurm-up``): sbatch
itself tries a region's jobs (``sbatch --test-only``), so what only the cluster knows (a
reservation or feature it does not have, an option a newer sbatch has and 22.05 does not)
fails the line in sbatch's words, and nothing is submitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon.doctor.doctor_setup import healthy_setup, run_doctor
from tests.slurm.cluster import SlurmCluster

pytestmark = pytest.mark.slurm

_CONFIG = """
state_dir = "{state}"
[policy]
name = "run-now"
[[regions]]
name = "qc"
zone = "CA-QC"
executor = "slurm"
gpus = "discover"
[regions.slurm]
partition = "alpha"
sbatch_options = ["--time=5", "{option}"]
"""


@pytest.mark.parametrize(
    ("option", "line"),
    [
        ("--reservation=nosuch", "fail: qc (partition alpha): sbatch refuses its jobs (`sbatch "
         "--test-only` with carbond's options and the region's sbatch_options; every launch "
         "would fail): allocation failure: Requested reservation is invalid"),
        ("--constraint=nosuch", "fail: qc (partition alpha): sbatch refuses its jobs (`sbatch "
         "--test-only` with carbond's options and the region's sbatch_options; every launch "
         "would fail): allocation failure: Invalid feature specification"),
        ("--tres-per-task=cpu=1", "fail: qc (partition alpha): sbatch refuses its jobs "
         "(`sbatch --test-only` with carbond's options and the region's sbatch_options; every "
         "launch would fail): sbatch: unrecognized option '--tres-per-task=cpu=1'"),
        ("--mem=100M", "pass: qc (partition alpha): 2x T4"),
    ],
)  # fmt: skip
def test_the_slurm_line_fails_what_sbatch_refuses(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    option: str, line: str,
) -> None:  # fmt: skip
    """A reservation or feature the cluster does not have loaded and passed doctor; every
    launch in the region was then refused. Doctor now asks sbatch, and submits nothing."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    state, config = healthy_setup(tmp_path)
    config.write_text(_CONFIG.format(state=state, option=option))
    jobs_before = slurm_cluster.run(["squeue", "-h", "-t", "all", "-o", "%i"]).stdout

    code, checks = run_doctor(config)

    assert checks["slurm"] == line
    assert code == (1 if line.startswith("fail") else 0)
    assert slurm_cluster.run(["squeue", "-h", "-t", "all", "-o", "%i"]).stdout == jobs_before


def test_the_slurm_line_tries_each_gpu_type_and_names_the_one_refused(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A partition of both nodes (T4s on n1, L4s on n2) and ``--constraint=fast``, a feature
    only n2 has: the trial's untyped ``--gres=gpu:1`` was planned on n2 and the line passed,
    while sbatch refuses every job carbond submits for the T4s (``--gres=gpu:t4:1``:
    "Requested node configuration is not available"). Each type is now tried as the daemon
    submits it; the refused one is named. Nothing is submitted."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    state, config = healthy_setup(tmp_path)
    config.write_text(
        _CONFIG.format(state=state, option="--constraint=fast").replace('"alpha"', '"both"')
    )
    slurm_cluster.run(["scontrol", "create", "PartitionName=both", "Nodes=n1,n2"])
    try:
        slurm_cluster.run(["scontrol", "update", "NodeName=n2", "AvailableFeatures=fast",
                           "ActiveFeatures=fast"])  # fmt: skip
        jobs_before = slurm_cluster.run(["squeue", "-h", "-t", "all", "-o", "%i"]).stdout

        code, checks = run_doctor(config)

        assert checks["slurm"] == (
            "fail: qc (partition both): sbatch refuses its jobs on its t4 GPUs (`sbatch "
            "--test-only` with carbond's options for them, --gres=gpu:t4:1, and the region's "
            "sbatch_options; every launch on them would fail): allocation failure: Requested "
            "node configuration is not available"
        )
        assert code == 1
        assert slurm_cluster.run(["squeue", "-h", "-t", "all", "-o", "%i"]).stdout == jobs_before
    finally:
        slurm_cluster.run(["scontrol", "delete", "PartitionName=both"])
        slurm_cluster.run(["scontrol", "update", "NodeName=n2", "AvailableFeatures=",
                           "ActiveFeatures="])  # fmt: skip
