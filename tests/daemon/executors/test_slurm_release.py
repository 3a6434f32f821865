"""Releasing a held Slurm job: one whose output files are gone (the real cluster's side is in
tests/slurm/test_logs_on_slurm.py), one whose release is retried each round."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daemon.assemble import Daemon
from daemon.cli import main
from daemon.executors.errors import ExecutorError
from daemon.supervision.health import HEALTH_NAME, read_health
from tests.daemon.executors.fake_slurm import T0, FakeSlurm, launch_spec, slurm_executor
from tests.daemon.executors.slurm_daemon import Dip, slurm_daemon


def test_a_held_job_whose_log_dir_cannot_be_made_again_fails_with_its_slurm_job_cancelled(
    tmp_path: Path,
) -> None:
    """Release makes a held job's removed output files again; where it cannot (the log dir
    replaced by a file), the job fails naming why, and its held Slurm job is cancelled, not
    left to start at its planned time while carbond records it failed."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    held = executor.hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    shutil.rmtree(tmp_path / "logs")
    (tmp_path / "logs").write_text("not a directory\n")

    with pytest.raises(ExecutorError, match=r"cannot prepare .*logs.* Slurm job 100 is cancel"):
        executor.release(launch_spec(tmp_path), held.token, T0)

    [job] = slurm.jobs.values()
    assert job.state == "CANCELLED" and job.start != "now"  # never released


def test_a_release_retried_each_round_shows_its_two_transitions_once_in_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A held job whose release waits for sacct (its Slurm job left squeue, no end recorded
    yet) is dispatched (written ahead) and requeued again each planning round: carbond
    status listed the same two transitions once a round, four pairs in a minute here, each
    saying it was running. They are shown once, then how many more times and until when;
    --json keeps them all."""
    slurm = FakeSlurm()
    daemon = slurm_daemon(tmp_path, slurm, Dip(T0 + timedelta(hours=2)))
    line = {"id": "j8", "model": "llama-1b", "requests": 4, "command": ["true"],
            "deadline": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")
    daemon.service.start(T0)
    daemon.service.tick(T0)
    [job] = slurm.jobs.values()
    job.state, slurm.dbd_down = "CANCELLED", True  # gone from squeue; sacct has no end yet
    start = T0 + timedelta(hours=2)
    for k in range(4):
        daemon.service.refresh_intensity(start + timedelta(seconds=15 * k))
        daemon.service.tick(start + timedelta(seconds=15 * k))
    daemon.close()
    capsys.readouterr()

    assert main(["status", "j8", "--state-dir", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert main(["status", "j8", "--state-dir", str(tmp_path), "--json"]) == 0
    every = json.loads(capsys.readouterr().out)["transitions"]

    assert [t["to"] for t in every] == ["queued", "planned", *["running", "queued"] * 4]
    assert (shown.count("| dispatched:"), shown.count("| requeued: waiting")) == (2, 2)
    assert "the two transitions above, 2 more times until 2026-12-04T23:00:45+00:00" in shown


def test_a_held_job_whose_squeue_row_is_cut_short_at_release_is_requeued_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A held job whose squeue row was cut short at its release was requeued as "requeued:
    slurm cannot be reached (...)", while Slurm had answered. The reason now says what
    happened: Slurm's answer about its job could not be read; the job stays held and its
    release is retried, and goes ahead once the row reads whole."""
    slurm = FakeSlurm()
    daemon = slurm_daemon(tmp_path, slurm, Dip(T0 + timedelta(hours=2)))
    line = {"id": "j8", "model": "llama-1b", "requests": 4, "command": ["true"],
            "deadline": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")
    daemon.service.start(T0)
    daemon.service.tick(T0)
    [job] = slurm.jobs.values()
    job.queue_cut = True
    start = T0 + timedelta(hours=2)
    daemon.service.refresh_intensity(start)
    daemon.service.tick(start)
    job.queue_cut = False
    daemon.service.tick(start + timedelta(seconds=15))
    daemon.close()
    capsys.readouterr()

    assert main(["status", "j8", "--state-dir", str(tmp_path), "--json"]) == 0
    every = json.loads(capsys.readouterr().out)["transitions"]
    assert [t["to"] for t in every] == ["queued", "planned", "running", "queued", "running"]
    requeued = every[3]["reason"]
    assert requeued.startswith("requeued: slurm's answer about its job could not be read (")
    assert "squeue printed its row cut short" in requeued
    assert "cannot be reached" not in requeued
    assert (len(slurm.jobs), job.state) == (1, "RUNNING")


_SAID = "cannot run scontrol on this host (scontrol: No such file or directory; "


def _held_j8(tmp_path: Path, slurm: FakeSlurm) -> Daemon:
    """A daemon over ``slurm`` with job j8 held there, planned two hours ahead."""
    daemon = slurm_daemon(tmp_path, slurm, Dip(T0 + timedelta(hours=2)))
    line = {"id": "j8", "model": "llama-1b", "requests": 4, "command": ["true"],
            "deadline": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")
    daemon.service.start(T0)
    daemon.service.tick(T0)
    return daemon


def _problems(daemon: Daemon, tmp_path: Path, now: datetime) -> dict[str, str]:
    """health.json's problems after a step at ``now`` (what the daemon's loop writes)."""
    daemon.service.after_step("reconcile", None, now)
    report = read_health(tmp_path / HEALTH_NAME)
    assert report is not None
    return report.problems


def test_a_held_job_whose_release_cannot_run_scontrol_waits_saying_so_in_status_and_health(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A held job released while this host could not run ``scontrol`` (gone from
    ``bin_dir`` after the round read the nodes) was requeued "slurm cannot be reached", the
    path only in the detail, and health.json said nothing: Slurm answered all along. It is
    this host's configuration: the job waits held (its release retried), its reason says
    which command cannot run and the field to fix, and health.json names it until it runs."""
    slurm = FakeSlurm()
    daemon = _held_j8(tmp_path, slurm)
    slurm.missing = frozenset({"scontrol update"})
    start = T0 + timedelta(hours=2)
    daemon.service.refresh_intensity(start)
    daemon.service.tick(start)
    problems = _problems(daemon, tmp_path, start)
    assert list(problems) == ["slurm_command:scontrol"]
    assert problems["slurm_command:scontrol"].startswith(_SAID + "executors.slurm.bin_dir): ")
    slurm.missing = frozenset()
    daemon.service.tick(start + timedelta(seconds=15))
    assert _problems(daemon, tmp_path, start + timedelta(seconds=15)) == {}
    daemon.close()
    capsys.readouterr()

    assert main(["status", "j8", "--state-dir", str(tmp_path), "--json"]) == 0
    every = json.loads(capsys.readouterr().out)["transitions"]
    assert [t["to"] for t in every] == ["queued", "planned", "running", "queued", "running"]
    assert every[3]["reason"] == f"requeued: slurm {_SAID}executors.slurm.bin_dir)"
    [job] = slurm.jobs.values()  # released once scontrol ran: the same Slurm job
    assert job.state == "RUNNING"


def test_a_scontrol_this_host_cannot_run_is_named_in_health_not_taken_for_slurm_down(
    tmp_path: Path,
) -> None:
    """Without ``scontrol`` the planning round cannot read the region's nodes, and it was
    logged and shown as Slurm being unreachable (``slurm_unreachable``; health.json said
    nothing, though squeue answered). The region's GPUs are still not planned on (nor its
    held job released), but health.json names the command, its path and the field to fix,
    Slurm is not taken for down (no ``slurm`` outage: squeue keeps being asked), and it
    clears once ``scontrol`` runs again."""
    slurm = FakeSlurm()
    daemon = _held_j8(tmp_path, slurm)
    slurm.missing = frozenset({"scontrol"})
    now = T0 + timedelta(minutes=5)
    daemon.service.tick(now)
    problems = _problems(daemon, tmp_path, now)
    assert list(problems) == ["slurm_command:scontrol"]
    assert problems["slurm_command:scontrol"].startswith(_SAID + "executors.slurm.bin_dir): ")
    calls = len(slurm.calls)
    daemon.service.tick(now + timedelta(seconds=15))
    assert any(c[0] == "squeue" for c in slurm.calls[calls:])  # no outage: Slurm still asked
    slurm.missing = frozenset()
    daemon.service.tick(now + timedelta(seconds=30))
    assert _problems(daemon, tmp_path, now + timedelta(seconds=30)) == {}
    daemon.close()
