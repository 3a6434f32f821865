"""Cancelling carbond's jobs on the real local Slurm (``make slurm-up``): whatever carbond knew
of a job when its owner cancelled it, Slurm ends up with the job cancelled (never running
untracked) and carbond records what Slurm says happened. A released job Slurm still keeps
pending when its deadline passes is cancelled by carbond itself, and expired.

Partition ``alpha`` (node n1, 2 x T4) is region ``qc``; the jobs are confined to it.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.assemble import Daemon, build_daemon
from daemon.settings import RegionSettings, Settings, SlurmRegionSettings
from tests.slurm.carbond_jobs import (
    CONFIG,
    FINAL,
    CarbondProcess,
    MovableForecast,
    append_queue,
    daemon_cli_cancel,
    ledger_outcomes,
    ledger_states,
    queue_line,
    settled,
    squeue_jobs,
    tick_until,
    unique_ids,
    wait_for,
)
from tests.slurm.carbond_jobs import service as _service
from tests.slurm.cluster import SlurmCluster

service = _service  # the fixture: the same service in-process, against the same real Slurm

pytestmark = pytest.mark.slurm

HOLDING = CONFIG.replace('name = "spatial"', 'name = "carbon-window"')  # plans for later


def _hog(cluster: SlurmCluster, *options: str) -> int:
    """Another user's job filling partition alpha (``options``: what it holds), running."""
    hog = cluster.sbatch("-p", "alpha", "--time=10", *options, wrap="sleep 600",
                         user=cluster.other_user)  # fmt: skip
    wait_for(cluster, "the other user's job running", lambda: cluster.job_state(hog) == "RUNNING")
    return hog


@pytest.mark.parametrize("slurm_started_it", [False, True], ids=["pending", "started"])
def test_a_held_job_whose_token_was_never_recorded_is_cancelled_in_slurm(
    tmp_path: Path, slurm_cluster: SlurmCluster, slurm_started_it: bool
) -> None:
    settled(slurm_cluster)
    hog = _hog(slurm_cluster, "--gres=gpu:2")  # so the job is planned for after it: held
    carbond = CarbondProcess(tmp_path, slurm_cluster, HOLDING)
    carbond.env["CARBOND_KILL_AT"] = "hold_handed"  # sbatch done, the token not recorded
    carbond.start()
    [job] = unique_ids("held")
    append_queue(carbond.state, [queue_line(job, ["sleep", "60"], deadline="+3h", regions=["qc"])])
    try:
        assert carbond.proc is not None and carbond.proc.wait(timeout=30) == -9
    finally:
        if carbond.proc is not None and carbond.proc.poll() is None:
            carbond.kill()
    [row] = squeue_jobs(slurm_cluster, [job])
    assert (row["state"], row["reason"]) == ("PENDING", "BeginTime")
    if slurm_started_it:  # its planned start came while carbond was down
        slurm_cluster.run(["scancel", str(hog)])
        slurm_cluster.run(["scontrol", "update", f"JobId={row['id']}", "StartTime=now"])
        wait_for(slurm_cluster, "Slurm to start it",
                 lambda: squeue_jobs(slurm_cluster, [job], "RUNNING"))  # fmt: skip

    append_queue(carbond.state, [json.dumps({"cancel": job}) + "\n"])
    del carbond.env["CARBOND_KILL_AT"]
    carbond.start()
    try:
        wait_for(
            slurm_cluster, "the job final", lambda: ledger_states(carbond.state).get(job) in FINAL
        )
    finally:
        carbond.kill()
    assert ledger_states(carbond.state)[job] == "cancelled"
    assert [r["id"] for r in squeue_jobs(slurm_cluster, [job])] == [row["id"]]  # never resubmitted
    wait_for(slurm_cluster, "sacct to have the job's end",
             lambda: slurm_cluster.job_state(int(row["id"])).startswith("CANCELLED"))  # fmt: skip
    [run] = slurm_cluster.sacct(int(row["id"]), ("JobID", "Start"))[:1]
    outcome = ledger_outcomes(carbond.state).get(job)
    if slurm_started_it:  # recorded as running, then cancelled, with what Slurm measured
        assert outcome is not None and outcome["energy_method"] == "slurm-sacct"
        assert outcome["measured_energy_j"] > 0
    else:  # withdrawn before it ever started
        assert run["Start"] in ("None", "Unknown") and outcome is None


def test_a_released_job_cancelled_while_slurm_keeps_it_pending_is_charged_nothing(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster
) -> None:
    daemon, _ = service
    _hog(slurm_cluster, "--cpus-per-task=8")  # no GPU taken: carbond releases the job to n1
    [job] = unique_ids("pending")
    append_queue(daemon.settings.state_dir,
                 [queue_line(job, ["sleep", "5"], deadline="+1h", regions=["qc"])])  # fmt: skip
    [row] = tick_until(slurm_cluster, daemon, "the job released, pending for CPUs",
                       lambda: squeue_jobs(slurm_cluster, [job], "PENDING"))  # fmt: skip
    assert daemon.ledger.job(job).state == "running"
    daemon_cli_cancel(daemon, job)
    tick_until(
        slurm_cluster, daemon, "the job final", lambda: daemon.ledger.job(job).state in FINAL
    )
    assert daemon.ledger.job(job).state == "cancelled"
    assert slurm_cluster.job_state(int(row["id"])).startswith("CANCELLED")
    outcome = daemon.ledger.outcome(job)
    assert outcome is not None
    assert (outcome["duration_s"], outcome["energy_j"], outcome["total_g"]) == (0.0, 0.0, 0.0)


def test_a_released_job_slurm_keeps_pending_past_its_deadline_is_expired_never_run(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster
) -> None:
    daemon, _ = service  # pending_grace_s = 60: the deadline comes first
    hog = _hog(slurm_cluster, "--cpus-per-task=8")  # no GPU taken: carbond releases the job
    [job] = unique_ids("late")
    append_queue(daemon.settings.state_dir,
                 [queue_line(job, ["sleep", "5"], deadline="+15s", regions=["qc"])])  # fmt: skip
    [row] = tick_until(slurm_cluster, daemon, "the job released, pending for CPUs",
                       lambda: squeue_jobs(slurm_cluster, [job], "PENDING"))  # fmt: skip
    assert daemon.ledger.job(job).state == "running"
    deadline = daemon.ledger.job(job).deadline
    assert deadline is not None
    tick_until(
        slurm_cluster, daemon, "the job final", lambda: daemon.ledger.job(job).state in FINAL
    )
    assert daemon.ledger.job(job).state == "expired"
    assert daemon.ledger.outcome(job) is None
    *_, requeued, expired = daemon.ledger.transitions(job)
    ended = expired.at  # at its deadline, not after the grace
    assert ended - deadline < timedelta(seconds=10), (ended, deadline)
    assert requeued.at == ended  # expired in the round that took it back, never queued meanwhile
    slurm_cluster.run(["scancel", str(hog)])  # the CPUs free: a job left pending would start
    wait_for(slurm_cluster, "sacct to have the job's end",
             lambda: slurm_cluster.job_state(int(row["id"])).startswith("CANCELLED"))  # fmt: skip
    [run] = slurm_cluster.sacct(int(row["id"]), ("JobID", "Start"))[:1]
    assert run["Start"] in ("None", "Unknown")  # never ran, late or at all


def test_a_job_that_failed_on_its_own_before_its_owners_cancel_is_recorded_failed(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster
) -> None:
    daemon, _ = service
    [job] = unique_ids("exit3")
    append_queue(daemon.settings.state_dir,
                 [queue_line(job, ["sh", "-c", "sleep 1; exit 3"], deadline="+1h")])  # fmt: skip
    [row] = tick_until(slurm_cluster, daemon, "the job running",
                       lambda: squeue_jobs(slurm_cluster, [job], "RUNNING"))  # fmt: skip
    slurm_cluster.wait_for_job_end(int(row["id"]))  # carbond has not looked since
    time.sleep(1.1)  # past the second sacct's whole-second End may hide
    daemon_cli_cancel(daemon, job)
    tick_until(
        slurm_cluster, daemon, "the job final", lambda: daemon.ledger.job(job).state in FINAL
    )
    assert daemon.ledger.job(job).state == "failed"
    assert daemon.ledger.transitions(job)[-1].reason == "exit code 3"
    outcome = daemon.ledger.outcome(job)
    assert outcome is not None and outcome["energy_method"] == "slurm-sacct"


def test_a_running_job_its_owner_scancels_in_slurm_is_cancelled_not_failed(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster
) -> None:
    daemon, _ = service
    [job] = unique_ids("ownscancel")
    append_queue(daemon.settings.state_dir,
                 [queue_line(job, ["sleep", "60"], deadline="+20m", regions=["qc"])])  # fmt: skip
    [row] = tick_until(slurm_cluster, daemon, "the job running in Slurm",
                       lambda: squeue_jobs(slurm_cluster, [job], "RUNNING"))  # fmt: skip
    assert daemon.ledger.job(job).state == "running"

    slurm_cluster.run(["scancel", row["id"]])  # its owner (root, who wrote the queue line)
    tick_until(slurm_cluster, daemon, "the job final",
               lambda: daemon.ledger.job(job).state != "running")  # fmt: skip

    assert daemon.ledger.job(job).state == "cancelled"
    assert daemon.ledger.transitions(job)[-1].reason == (
        "cancelled by its owner in its executor (slurm CANCELLED by uid 0)"
    )


def test_a_running_job_whose_run_token_is_unreadable_is_cancelled_by_name(
    service: tuple[Daemon, MovableForecast], slurm_cluster: SlurmCluster
) -> None:
    """``carbond cancel`` of a job whose ledger run token cannot be read (hand-edited) failed
    every reconcile (``job_cancel_failed``); its Slurm job is now found by name among its
    owner's jobs and cancelled, and the job ends ``cancelled`` once squeue has it no more."""
    daemon, _ = service
    [job] = unique_ids("badtoken")
    append_queue(daemon.settings.state_dir,
                 [queue_line(job, ["sleep", "60"], deadline="+20m", regions=["qc"])])  # fmt: skip
    [row] = tick_until(slurm_cluster, daemon, "the job running in Slurm",
                       lambda: squeue_jobs(slurm_cluster, [job], "RUNNING"))  # fmt: skip
    with daemon.ledger.transaction():
        daemon.ledger.set_run_token(job, '{"slurm_id": ')  # cut short

    daemon_cli_cancel(daemon, job)
    tick_until(
        slurm_cluster, daemon, "the job final", lambda: daemon.ledger.job(job).state in FINAL
    )

    assert daemon.ledger.job(job).state == "cancelled"
    wait_for(slurm_cluster, "sacct to have the job's end",
             lambda: slurm_cluster.job_state(int(row["id"])).startswith("CANCELLED"))  # fmt: skip


def _cutting_bin(where: Path) -> tuple[Path, Path]:
    """A ``bin_dir`` of the real Slurm commands whose ``squeue`` prints the row of each Slurm id
    listed in the returned file cut short after its second field (an answer truncated
    mid-line); the other commands are Slurm's own."""
    where.mkdir()
    cut = where / "cut"
    cut.write_text("")
    for name in ("sbatch", "sacct", "scancel", "scontrol"):
        (where / name).symlink_to(shutil.which(name) or f"/usr/bin/{name}")
    squeue = shutil.which("squeue") or "/usr/bin/squeue"
    (where / "squeue").write_text(
        "#!/bin/sh\n"
        f'out=$({squeue} "$@") || exit $?\n'
        f"printf '%s\\n' \"$out\" | awk -F'|' -v OFS='|' "
        f'\'FILENAME != "-" {{ cut[$1]; next }} $0 == "" {{ next }} '
        f"($1 in cut) {{ print $1, $2; next }} {{ print }}' {cut} -\n"
    )
    (where / "squeue").chmod(0o755)
    return where, cut


def test_a_cancel_by_name_whose_squeue_row_is_cut_short_is_sent_once_the_row_reads_whole(
    tmp_path: Path, slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service with its Slurm commands in a ``bin_dir`` whose ``squeue`` cuts one row
    short: a running job whose run token is unreadable is cancelled by name, but its row is
    cut, so which Slurm job is its newest is not known. Nothing is cancelled nor taken as
    gone (the job stays ``running``, its Slurm job runs on) and the cancel is tried again
    each reconcile; once the row reads whole the Slurm job is cancelled and the job ends
    ``cancelled``."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    settled(slurm_cluster)
    bin_dir, cut = _cutting_bin(tmp_path / "bin")
    regions = (RegionSettings(name="qc", zone="CA-QC", executor="slurm",
                              slurm=SlurmRegionSettings(partition="alpha")),)  # fmt: skip
    settings = Settings(
        state_dir=tmp_path / "state", regions=regions, policy={"name": "carbon-window"},
        intensity={"source": "static", "horizon_s": 4 * 3600, "step_s": 600},
        intervals={"refresh_s": 0.01},
        executors={"slurm": {"pending_grace_s": 60, "bin_dir": str(bin_dir)}},
    )  # fmt: skip
    daemon = build_daemon(settings, intensity=MovableForecast({"CA-QC": 100.0}))
    daemon.service.start(datetime.now(UTC))
    try:
        [job] = unique_ids("cutcancel")
        append_queue(
            daemon.settings.state_dir,
            [queue_line(job, ["sleep", "300"], deadline="+20m", regions=["qc"])],
        )
        [row] = tick_until(slurm_cluster, daemon, "the job running in Slurm",
                           lambda: squeue_jobs(slurm_cluster, [job], "RUNNING"))  # fmt: skip
        with daemon.ledger.transaction():
            daemon.ledger.set_run_token(job, '{"slurm_id": ')  # cut short
        cut.write_text(row["id"] + "\n")

        with capture_logs() as logs:
            daemon_cli_cancel(daemon, job)
            for _ in range(5):
                daemon.service.tick(datetime.now(UTC))
                time.sleep(0.3)
            assert daemon.ledger.job(job).state == "running"  # not taken as gone
            assert [r["state"] for r in squeue_jobs(slurm_cluster, [job])] == ["RUNNING"]
            cut.write_text("")
            tick_until(slurm_cluster, daemon, "the job final",
                       lambda: daemon.ledger.job(job).state in FINAL)  # fmt: skip
        assert daemon.ledger.job(job).state == "cancelled"
    finally:
        daemon.close()

    wait_for(slurm_cluster, "sacct to have the job's end",
             lambda: slurm_cluster.job_state(int(row["id"])).startswith("CANCELLED"))  # fmt: skip
    failed = [e for e in logs if e["event"] == "job_cancel_failed"]
    assert len(failed) == 1 and "cut short" in failed[0]["error"]  # once, however many rounds
    by_name = [e for e in logs if e["event"] == "slurm_job_cancelled_by_name"]
    assert [e["slurm_id"] for e in by_name] == [row["id"]]
