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


@pytest.mark.parametrize(
    ("option", "line"),
    [
        ("--reservation=later,now", "pass: qc (partition alpha): 2x T4"),
        ("--reservation=elsewhere,now", "pass: qc (partition alpha): 2x T4"),
        ("--reservation=later", "pass: qc (partition alpha): 2x T4 (note: `sbatch --test-only` "
         "cannot judge reservation later, not started yet (\"Invalid time specified\"); its "
         "jobs wait for it)"),
        ("--reservation=nosuch,now", "fail: qc (partition alpha): sbatch refuses its jobs "
         "(`sbatch --test-only` with carbond's options and the region's sbatch_options; every "
         "launch would fail): allocation failure: Requested reservation is invalid"),
    ],
)  # fmt: skip
def test_the_slurm_line_judges_each_reservation_of_a_list(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    option: str, line: str,
) -> None:  # fmt: skip
    """``sbatch --test-only --reservation=A,B`` judges A alone: one not started yet as
    "Invalid time specified", one on another partition's node as "Requested node
    configuration is not available" (sbatch 22.05 on the local cluster), where a real
    submission takes the job and Slurm starts it in B now (or waits for A): doctor failed the
    region. Each reservation of the list is now tried alone; one sbatch takes passes, and one
    not started yet is a note. A name the cluster does not have fails a real submission too,
    wherever it is in the list, and still fails the line. Nothing is submitted."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    state, config = healthy_setup(tmp_path)
    config.write_text(_CONFIG.format(state=state, option=option))
    users = f"Users=root,{slurm_cluster.user}"
    for name, node, start in (("now", "n1", "now"), ("later", "n1", "now+3600"),
                              ("elsewhere", "n2", "now")):  # fmt: skip
        slurm_cluster.run(["scontrol", "create", "reservation", f"ReservationName={name}", users,
                           f"Nodes={node}", f"StartTime={start}", "Duration=10"])  # fmt: skip
    try:
        jobs_before = slurm_cluster.run(["squeue", "-h", "-t", "all", "-o", "%i"]).stdout
        if option.endswith(",now"):  # as sbatch itself answers: its first one alone
            said = slurm_cluster.run(["sbatch", "--test-only", "-p", "alpha", option, "--wrap",
                                      "true"], check=False)  # fmt: skip
            assert said.returncode != 0, said

        code, checks = run_doctor(config)

        assert checks["slurm"] == line
        assert code == (1 if line.startswith("fail") else 0)
        assert slurm_cluster.run(["squeue", "-h", "-t", "all", "-o", "%i"]).stdout == jobs_before
    finally:
        for name in ("now", "later", "elsewhere"):
            slurm_cluster.run(["scontrol", "delete", f"ReservationName={name}"], check=False)
