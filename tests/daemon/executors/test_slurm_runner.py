"""The real runner (:class:`SubprocessRunner`) under the Slurm executor, its commands small
scripts in a ``bin_dir`` that print what the local cluster printed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from daemon.executors.errors import ExecutorError, ExecutorUnavailableError
from daemon.executors.slurm import SlurmExecutor, SubprocessRunner, Target
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import RECORDED, T0, launch_spec

_PARTITIONS = RECORDED / "states" / "scontrol_show_partition_down.txt"


def _bin_dir(tmp_path: Path, nodes: bytes) -> Path:
    """A ``bin_dir`` whose ``scontrol`` prints ``nodes`` (``show node``) and both partitions
    up (``show partition``), and whose ``squeue`` lists no running job."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "nodes.txt").write_bytes(nodes)
    (tmp_path / "partitions.txt").write_text(_PARTITIONS.read_text().replace("DOWN", "UP"))
    (bin_dir / "scontrol").write_text(
        f'#!/bin/sh\ncase "$*" in *partition*) cat {tmp_path}/partitions.txt ;;\n'
        f"*) cat {tmp_path}/nodes.txt ;; esac\n"
    )
    (bin_dir / "squeue").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def test_a_node_reason_not_in_utf8_is_read_and_planning_goes_on(tmp_path: Path) -> None:
    """An admin drained n1 with a reason typed in Latin-1 (``Wartung für``: byte 0xFC): the
    runner decoded scontrol's answer strictly, ``UnicodeDecodeError`` (a ValueError) escaped
    every executor call, and every planning round failed while the node kept that reason.
    A byte that is no UTF-8 is read as U+FFFD; the drained node's GPUs are unavailable and
    the other node's available, as with any other reason."""
    recorded = (RECORDED / "scontrol_nodes_drained.txt").read_bytes()
    nodes = recorded.replace(b"Reason=disk check by ops", "Reason=Wartung für".encode("latin-1"))
    assert nodes != recorded
    executor = SlurmExecutor(
        {"qc": Target("alpha"), "pace": Target("beta")},
        runner=SubprocessRunner(),
        known_gpus=DEFAULT_GPU_CATALOG.names(),
        bin_dir=_bin_dir(tmp_path, nodes),
    )
    assert executor.discover("qc") == [(0, "T4"), (1, "T4")]
    assert executor.discover("pace") == [(0, "L4"), (1, "L4")]
    devices = [
        Device(f"{region}/{i}", region, "Z", DEFAULT_GPU_CATALOG.get(gpu))
        for region, gpu in (("qc", "T4"), ("pace", "L4"))
        for i in range(2)
    ]
    marked = {d.device_id: d.available for d in executor.available(devices, T0)}
    assert marked == {"qc/0": False, "qc/1": False, "pace/0": True, "pace/1": True}
    answer = SubprocessRunner()([str(tmp_path / "bin" / "scontrol"), "show", "node"])
    assert "Reason=Wartung f\ufffdr" in answer.stdout


def test_a_word_no_command_can_take_fails_that_launch_as_an_executor_error(
    tmp_path: Path,
) -> None:
    """A NUL in a word of sbatch's argv (the job's working directory, ``--chdir``) made
    ``subprocess`` raise ``ValueError: embedded null byte``, none of the executor's errors,
    out of the launch and the round: nothing ran, and nothing would the next time. It is an
    :class:`ExecutorError` naming the command and why, for the service to fail that job."""
    recorded = (RECORDED / "scontrol_nodes_drained.txt").read_bytes()
    bin_dir = _bin_dir(tmp_path, recorded.replace(b"MIXED+DRAIN", b"IDLE"))
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\ntouch {tmp_path}/submitted\necho 7\n")
    (bin_dir / "sbatch").chmod(0o755)
    executor = SlurmExecutor(
        {"qc": Target("alpha")},
        runner=SubprocessRunner(),
        known_gpus=DEFAULT_GPU_CATALOG.names(),
        bin_dir=bin_dir,
    )
    assert executor.discover("qc") == [(0, "T4"), (1, "T4")]
    spec = replace(launch_spec(tmp_path), cwd=f"{tmp_path}/a\0b")
    with pytest.raises(ExecutorError, match=r"sbatch'?: cannot run it .*embedded null byte"):
        executor.launch(spec, T0)
    assert not (tmp_path / "submitted").exists()
    handle = executor.launch(replace(spec, cwd=str(tmp_path)), T0)  # the same job, runnable
    assert '"7"' in handle.token and (tmp_path / "submitted").exists()


@pytest.mark.parametrize("sbatch", ["missing", "not executable"])
def test_an_sbatch_this_host_cannot_run_fails_the_launch_and_starts_no_outage(
    tmp_path: Path, sbatch: str
) -> None:
    """``bin_dir`` without ``sbatch`` (or with one not executable): the runner's OSError was
    taken as the controller being down, so the launch was requeued (``slurm cannot be
    reached``), ``health.json`` said ``controller unreachable``, and the cluster's regions
    were made unavailable (their work planned elsewhere) until the next command that ran
    ended the outage, round after round. It is this host's configuration: the launch fails
    naming the path, and the cluster, whose ``scontrol`` and ``squeue`` answer, stays up;
    health.json names the command (``slurm_command:sbatch``), not an outage."""
    recorded = (RECORDED / "scontrol_nodes_drained.txt").read_bytes()
    bin_dir = _bin_dir(tmp_path, recorded.replace(b"MIXED+DRAIN", b"IDLE"))
    if sbatch == "not executable":
        (bin_dir / "sbatch").write_text("#!/bin/sh\necho 7\n")
        (bin_dir / "sbatch").chmod(0o644)
    executor = SlurmExecutor(
        {"qc": Target("alpha")},
        runner=SubprocessRunner(),
        known_gpus=DEFAULT_GPU_CATALOG.names(),
        bin_dir=bin_dir,
    )
    assert executor.discover("qc") == [(0, "T4"), (1, "T4")]
    with pytest.raises(ExecutorError) as info:
        executor.launch(launch_spec(tmp_path), T0)
    assert not isinstance(info.value, ExecutorUnavailableError)
    why = "No such file or directory" if sbatch == "missing" else "Permission denied"
    assert str(info.value) == (
        f"job j1: cannot run sbatch on this host ({bin_dir}/sbatch: {why}; "
        "executors.slurm.bin_dir): Slurm was not asked"
    )
    assert list(executor.problems()) == ["slurm_command:sbatch"]  # no outage (slurm)
    assert executor.problems()["slurm_command:sbatch"].startswith(
        f"cannot run sbatch on this host ({bin_dir}"
    )
    devices = [Device(f"qc/{i}", "qc", "Z", DEFAULT_GPU_CATALOG.get("T4")) for i in range(2)]
    assert all(d.available for d in executor.available(devices, T0))
