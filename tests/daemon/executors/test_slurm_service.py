"""The service with the Slurm executor over a fake Slurm: a planned job is in Slurm at once,
moves with the forecast, is released at its start, and its outcome takes sacct's energy (or the
estimate, flagged). The same flow runs against the real Slurm in tests/slurm/."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from daemon import killpoints
from daemon.executors.slurm import CommandResult
from daemon.executors.slurm.runner import SlurmNoAnswerError
from daemon.ledger import Ledger
from daemon.supervision.health import HEALTH_NAME, read_health
from tests.daemon.executors.fake_slurm import RECORDED, T0, FakeSlurm
from tests.daemon.executors.slurm_daemon import Dip, slurm_daemon
from tests.daemon.killharness import REPO


@dataclass
class _StopsAtRelease(FakeSlurm):
    """Once armed, slurmctld stops at the first command about one job (a release's)."""

    armed: bool = False

    def __call__(
        self, argv: Sequence[str], *, stdin: str = "", uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:  # fmt: skip
        if self.armed and any(a.startswith("--jobs=") or a.startswith("JobId=") for a in argv):
            self.stopped = True
        return super().__call__(argv, stdin=stdin, uid=uid, gid=gid)


@dataclass
class _SbatchGetsNoAnswer(FakeSlurm):
    """Once armed, the next ``sbatch`` times out against a controller that accepts connections
    but does not answer; ``accepted``: whether the controller got the job all the same."""

    armed: bool = False
    accepted: bool = True

    def __call__(
        self, argv: Sequence[str], *, stdin: str = "", uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:  # fmt: skip
        if not (self.armed and argv[0] == "sbatch"):
            return super().__call__(argv, stdin=stdin, uid=uid, gid=gid)
        self.armed = False
        if self.accepted:
            super().__call__(argv, stdin=stdin, uid=uid, gid=gid)
        else:
            self.calls.append(tuple(argv))
        raise SlurmNoAnswerError(f"{argv[0]}: no answer within 30 s")


def test_a_planned_job_waits_in_slurm_moves_with_the_forecast_and_runs_at_its_start(
    tmp_path: Path,
) -> None:
    slurm, forecast = FakeSlurm(), Dip(T0 + timedelta(hours=2))
    slurm.ran = ("2026-12-05T00:00:01", "2026-12-05T00:00:05")  # when it runs, after the move
    daemon = slurm_daemon(tmp_path, slurm, forecast)
    service, ledger = daemon.service, daemon.ledger
    line = {"id": "j1", "model": "llama-1b", "requests": 4, "command": ["sleep", "1"],
            "deadline": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")
    service.start(T0)
    service.tick(T0)

    [(slurm_id, job)] = slurm.jobs.items()
    assert ledger.job("j1").state == "planned"
    assert (job.name, job.partition, job.state) == ("carbond-j1", "alpha", "PENDING")
    assert job.start == "2026-12-04T23:00:00"  # the dip

    forecast.start = T0 + timedelta(hours=3)
    service.refresh_intensity(T0 + timedelta(minutes=1))
    service.tick(T0 + timedelta(minutes=1))
    assert list(slurm.jobs) == [slurm_id] and job.start == "2026-12-05T00:00:00"  # moved in place

    start = T0 + timedelta(hours=3)
    service.refresh_intensity(start)
    service.tick(start)
    assert (
        ledger.job("j1").state == "running" and job.state == "RUNNING"
    )  # released, not resubmitted
    assert list(slurm.jobs) == [slurm_id]

    job.state, job.energy = "GONE", "600"
    service.tick(start + timedelta(minutes=5))
    assert ledger.job("j1").state == "succeeded"
    outcome = ledger.outcome("j1")
    assert outcome is not None
    assert (outcome["energy_method"], outcome["measured_energy_j"]) == ("slurm-sacct", 600.0)
    assert outcome["realised_intensity_g_per_kwh"] == pytest.approx(20.0)
    assert outcome["operational_g"] == pytest.approx(600.0 / 3.6e6 * 20.0)  # J -> kWh x g/kWh
    daemon.close()


def test_without_slurm_energy_the_outcome_is_the_estimate_flagged_so(tmp_path: Path) -> None:
    slurm, forecast = FakeSlurm(), Dip(T0)  # cleanest now: starts at once
    daemon = slurm_daemon(tmp_path, slurm, forecast)
    (tmp_path / "queue.jsonl").write_text(
        json.dumps({"id": "j2", "model": "llama-1b", "requests": 4, "command": ["true"]}) + "\n"
    )
    daemon.service.start(T0)
    daemon.service.tick(T0)
    [job] = slurm.jobs.values()
    assert job.state == "RUNNING" and daemon.ledger.job("j2").state == "running"
    job.state = "GONE"  # sacct rows without ConsumedEnergyRaw: no energy accounting
    daemon.service.tick(T0 + timedelta(minutes=1))
    outcome = daemon.ledger.outcome("j2")
    assert outcome is not None
    assert outcome["energy_method"] == "estimated"
    assert outcome["measured_energy_j"] is None  # never passed off as measured
    assert outcome["energy_j"] > 0 and outcome["total_g"] > 0
    daemon.close()


def test_a_job_cancelled_while_still_pending_in_slurm_is_charged_no_energy(
    tmp_path: Path,
) -> None:
    slurm, forecast = FakeSlurm(), Dip(T0)  # cleanest now: released at once
    slurm.ran = ("None", "2026-12-04T21:10:00")  # sacct of a job cancelled before it started
    daemon = slurm_daemon(tmp_path, slurm, forecast)
    queue = tmp_path / "queue.jsonl"
    line = {"id": "j3", "model": "llama-1b", "requests": 4, "command": ["sleep", "60"]}
    queue.write_text(json.dumps(line) + "\n")
    daemon.service.start(T0)
    daemon.service.tick(T0)
    [job] = slurm.jobs.values()
    job.state, job.reason = "PENDING", "Resources"  # released, but others hold the GPUs
    with queue.open("a") as out:
        out.write(json.dumps({"cancel": "j3"}) + "\n")
    daemon.service.tick(T0 + timedelta(minutes=10))
    assert job.state == "CANCELLED"
    daemon.service.tick(T0 + timedelta(minutes=10, seconds=1))
    assert daemon.ledger.job("j3").state == "cancelled"
    outcome = daemon.ledger.outcome("j3")
    assert outcome is not None
    assert outcome["duration_s"] == 0.0  # not the ten minutes since it was released
    assert outcome["energy_j"] == 0.0 and outcome["total_g"] == 0.0
    daemon.close()


def test_a_released_job_slurm_keeps_pending_past_its_deadline_expires_and_never_runs(
    tmp_path: Path,
) -> None:
    slurm, forecast = FakeSlurm(), Dip(T0)  # cleanest now: released at once
    daemon = slurm_daemon(tmp_path, slurm, forecast)  # pending_grace_s 300 s
    service, ledger = daemon.service, daemon.ledger
    deadline = T0 + timedelta(minutes=2)
    line = {"id": "j6", "model": "llama-1b", "requests": 4, "command": ["true"],
            "deadline": deadline.isoformat()}  # fmt: skip
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")
    service.start(T0)
    service.tick(T0)
    [job] = slurm.jobs.values()
    job.state, job.reason = "PENDING", "Resources"  # another user's CPU job fills the node
    service.tick(T0 + timedelta(minutes=1))
    assert ledger.job("j6").state == "running"  # released in time: it may still start

    service.tick(deadline)
    assert job.held and job.state == "CANCELLED"  # Slurm can no longer start it late
    assert ledger.job("j6").state == "expired"  # in the round that took it back
    assert ledger.outcome("j6") is None  # never ran
    *_, requeued, expired = ledger.transitions("j6")
    assert "past its deadline" in requeued.reason
    assert expired.reason == f"deadline {deadline.isoformat()} passed before the job started"
    assert requeued.at == expired.at == deadline
    daemon.close()


def test_a_job_waits_while_slurm_cannot_be_reached_or_its_nodes_are_drained(
    tmp_path: Path,
) -> None:
    slurm, forecast = FakeSlurm(), Dip(T0)
    daemon = slurm_daemon(tmp_path, slurm, forecast)
    service, ledger = daemon.service, daemon.ledger
    service.start(T0)  # discovery while Slurm answers: qc has n1's two T4s
    queue = tmp_path / "queue.jsonl"
    line = {"id": "j4", "model": "llama-1b", "requests": 4, "command": ["true"]}
    queue.write_text(json.dumps(line) + "\n")
    slurm.down = True  # slurmctld stopped: every command times out
    service.tick(T0)
    assert ledger.job("j4").state == "queued"  # not failed: Slurm being down passes
    decision = ledger.latest_decision("j4")
    assert decision is not None and decision.action == "hold"
    assert "none of the 2 configured GPU(s) is available" in decision.reason

    slurm.down = False
    slurm.nodes = (RECORDED / "scontrol_nodes_drained.txt").read_text()  # n1 drained
    service.tick(T0 + timedelta(minutes=1))
    assert ledger.job("j4").state == "queued" and not slurm.jobs

    slurm.nodes = FakeSlurm().nodes  # resumed
    service.tick(T0 + timedelta(minutes=2))
    assert ledger.job("j4").state == "running" and len(slurm.jobs) == 1

    with queue.open("a") as out:  # a job no configured GPU can ever run is still refused
        out.write(json.dumps({**line, "id": "j5", "min_gpu_memory_gb": 100}) + "\n")
    service.tick(T0 + timedelta(minutes=3))
    assert ledger.job("j5").state == "failed"
    daemon.close()


def test_slurm_unreachable_is_in_health_json_while_it_lasts_and_asked_once_a_round(
    tmp_path: Path,
) -> None:
    slurm, forecast = FakeSlurm(), Dip(T0)
    daemon = slurm_daemon(tmp_path, slurm, forecast)
    service, ledger = daemon.service, daemon.ledger
    service.start(T0)
    queue = tmp_path / "queue.jsonl"
    line = {"id": "j6", "model": "llama-1b", "requests": 4, "command": ["true"]}
    queue.write_text(json.dumps({**line, "id": "j7"}) + "\n")
    service.tick(T0)  # j7 runs in Slurm
    assert ledger.job("j7").state == "running"

    slurm.stopped, slurm.calls = True, []  # slurmctld stopped
    with queue.open("a") as out:
        out.write(json.dumps(line) + "\n" + json.dumps({"cancel": "j7"}) + "\n")
    service.tick(T0 + timedelta(seconds=30))
    service.after_step("reconcile", None, T0 + timedelta(seconds=30))  # what the loop does
    assert len(slurm.calls) == 1  # one command found it down; plan, poll, cancel skipped it
    assert ledger.job("j6").state == "queued" and ledger.job("j7").state == "running"
    report = read_health(tmp_path / HEALTH_NAME)
    assert report is not None and list(report.problems) == ["slurm"]
    assert "controller unreachable" in report.problems["slurm"]
    assert "Unable to contact slurm controller" in report.problems["slurm"]

    slurm.stopped = False
    service.tick(T0 + timedelta(minutes=2))
    service.after_step("reconcile", None, T0 + timedelta(minutes=2))
    report = read_health(tmp_path / HEALTH_NAME)
    assert report is not None and report.problems == {}
    assert ledger.job("j6").state == "running"  # planned as soon as Slurm answers
    assert [job.state for job in slurm.jobs.values()].count("CANCELLED") == 1  # j7's cancel
    assert [c[0] for c in slurm.calls].count("sbatch") == 1  # j6 once, nothing twice
    daemon.close()


def test_a_held_job_whose_release_finds_slurm_gone_is_released_later_not_submitted_twice(
    tmp_path: Path,
) -> None:
    slurm, forecast = _StopsAtRelease(), Dip(T0 + timedelta(hours=2))
    daemon = slurm_daemon(tmp_path, slurm, forecast)
    service, ledger = daemon.service, daemon.ledger
    line = {"id": "j8", "model": "llama-1b", "requests": 4, "command": ["true"],
            "deadline": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")
    service.start(T0)
    service.tick(T0)
    [(slurm_id, job)] = slurm.jobs.items()
    assert ledger.job("j8").state == "planned" and job.state == "PENDING"  # held until the dip

    start = T0 + timedelta(hours=2)
    service.refresh_intensity(start)
    slurm.armed = True  # the round's capacity check finds Slurm; then slurmctld stops
    service.plan(start)
    assert ledger.job("j8").state == "queued"  # waits; not failed
    assert job.state == "PENDING"  # still held in Slurm, still carbond's

    slurm.stopped = slurm.armed = False
    service.tick(start + timedelta(minutes=1))
    assert ledger.job("j8").state == "running"
    assert list(slurm.jobs) == [slurm_id] and job.state == "RUNNING"  # released, not resubmitted
    daemon.close()


def test_a_region_slurm_did_not_answer_for_at_start_is_discovered_once_it_answers(
    tmp_path: Path,
) -> None:
    slurm, forecast = FakeSlurm(stopped=True), Dip(T0)  # slurmctld down when carbond starts
    daemon = slurm_daemon(tmp_path, slurm, forecast)
    service, ledger = daemon.service, daemon.ledger
    assert service.inventory == ()  # qc's GPUs could not be asked for
    service.start(T0)
    queue = tmp_path / "queue.jsonl"
    line = {"id": "j9", "model": "llama-1b", "requests": 4, "command": ["true"]}
    soon = {**line, "id": "j10", "deadline": (T0 + timedelta(minutes=2)).isoformat()}
    queue.write_text(json.dumps(line) + "\n" + json.dumps(soon) + "\n")
    service.tick(T0)
    service.after_step("plan", None, T0)
    assert ledger.job("j9").state == "queued"  # not failed: only qc could run it
    decision = ledger.latest_decision("j9")
    assert decision is not None and decision.action == "hold"
    assert decision.reason.startswith("waiting for the GPUs of region(s) not discovered yet (qc;")
    report = read_health(tmp_path / HEALTH_NAME)
    assert report is not None and set(report.problems) == {"region:qc", "slurm"}
    assert "GPUs not discovered" in report.problems["region:qc"]

    calls = len(slurm.calls)
    service.tick(T0 + timedelta(seconds=1))  # the outage's retry is not due: Slurm not asked
    assert len(slurm.calls) == calls

    slurm.stopped = False  # slurmctld started; no reload
    service.tick(T0 + timedelta(minutes=5))
    service.after_step("plan", None, T0 + timedelta(minutes=5))
    assert [g.device_id for g in service.inventory] == ["qc/0", "qc/1"]
    assert ledger.job("j9").state == "running"
    assert ledger.job("j10").state == "expired"  # its deadline passed while it waited
    assert [c[0] for c in slurm.calls].count("sbatch") == 1  # j9 once
    report = read_health(tmp_path / HEALTH_NAME)
    assert report is not None and report.problems == {}
    daemon.close()


@pytest.mark.parametrize("accepted", [True, False])
def test_an_sbatch_without_answer_is_looked_up_by_name_never_submitted_twice(
    tmp_path: Path, accepted: bool
) -> None:
    slurm, forecast = _SbatchGetsNoAnswer(armed=True, accepted=accepted), Dip(T0)
    daemon = slurm_daemon(tmp_path, slurm, forecast)
    service, ledger = daemon.service, daemon.ledger
    service.start(T0)
    line = {"id": "j12", "model": "llama-1b", "requests": 4, "command": ["sleep", "60"]}
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")
    service.tick(T0)
    run = ledger.run("j12")
    assert ledger.job("j12").state == "running"  # not requeued: Slurm may have it
    assert run is not None and run.token is None  # its launch is not confirmed

    service.tick(T0 + timedelta(minutes=1))  # Slurm answers again: j12 looked up by name
    service.tick(T0 + timedelta(minutes=2))
    run = ledger.run("j12")
    assert ledger.job("j12").state == "running" and run is not None and run.token
    assert len(slurm.jobs) == 1  # one Slurm job whatever happened
    sbatches = [c[0] for c in slurm.calls].count("sbatch")
    assert sbatches == (1 if accepted else 2)  # submitted again only once Slurm said it had none
    daemon.close()


def test_a_held_job_slurm_started_unconfirmed_is_cancelled_in_slurm_not_left_running(
    tmp_path: Path,
) -> None:
    slurm, forecast = _SbatchGetsNoAnswer(), Dip(T0 + timedelta(hours=2))
    daemon = slurm_daemon(tmp_path, slurm, forecast)
    service, ledger = daemon.service, daemon.ledger
    queue = tmp_path / "queue.jsonl"
    line = {"id": "h1", "model": "llama-1b", "requests": 4, "command": ["sleep", "600"],
            "deadline": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    queue.write_text(json.dumps(line) + "\n")
    service.start(T0)
    slurm.armed = True  # Slurm takes the held job, its sbatch gets no answer: no token kept
    service.tick(T0)
    [job] = slurm.jobs.values()
    run = ledger.run("h1")
    assert ledger.job("h1").state == "planned" and run is not None and run.token is None

    start = T0 + timedelta(hours=2)  # Slurm starts it at its planned start, on its own
    job.state, job.reason, job.start = "RUNNING", "None", "2026-12-04T23:00:00"
    slurm.ran = ("2026-12-04T23:00:00", "2026-12-04T23:00:01")  # sacct: cancelled at once
    with queue.open("a") as out:
        out.write(json.dumps({"cancel": "h1"}) + "\n")
    service.refresh_intensity(start)
    service.tick(start)
    assert job.state == "CANCELLED"  # found by name, recorded as running, then scancelled
    assert [t.to_state for t in ledger.transitions("h1")][-2:] == ["running", "cancelled"]
    assert ledger.transitions("h1")[-1].reason == "cancelled by its owner while running"
    outcome = ledger.outcome("h1")
    assert outcome is not None and outcome["energy_j"] > 0  # the energy it used is charged
    daemon.close()


_ROUND = """
import pickle
import sys
from datetime import timedelta
from pathlib import Path

from tests.daemon.executors.fake_slurm import T0, FakeSlurm
from tests.daemon.executors.slurm_daemon import Dip, slurm_daemon

state, store, minutes = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])


class Kept(FakeSlurm):  # Slurm outlives the daemon: its jobs are kept in a file
    def __call__(self, argv, **kw):
        try:
            return super().__call__(argv, **kw)
        finally:
            store.write_bytes(pickle.dumps((self.jobs, self.calls)))


slurm = Kept()
if store.exists():
    slurm.jobs, slurm.calls = pickle.loads(store.read_bytes())
daemon = slurm_daemon(state, slurm, Dip(T0 + timedelta(hours=2)))
now = T0 + timedelta(minutes=minutes)
daemon.service.start(now)
daemon.service.tick(now)
daemon.close()
"""


@pytest.mark.parametrize("cancel", [False, True])
def test_a_daemon_killed_as_it_hands_a_held_job_to_slurm_finds_it_by_name(
    tmp_path: Path, cancel: bool
) -> None:
    state, store = tmp_path / "state", tmp_path / "slurm.pickle"
    state.mkdir()
    line = {"id": "k1", "model": "llama-1b", "requests": 4, "command": ["true"],
            "deadline": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    (state / "queue.jsonl").write_text(json.dumps(line) + "\n")

    def round_at(minutes: int, kill_at: str = "") -> int:
        env = {k: v for k, v in os.environ.items() if k != killpoints.ENV}
        env |= {killpoints.ENV: kill_at} if kill_at else {}
        argv = [sys.executable, "-c", _ROUND, str(state), str(store), str(minutes)]
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, check=False)
        assert done.returncode in (0, -signal.SIGKILL), done.stderr.decode()[-2000:]
        return done.returncode

    assert round_at(0, "hold_handed") == -signal.SIGKILL  # sbatch ran, its token not recorded
    with Ledger.open_readonly(state / "ledger.db") as ledger:
        run = ledger.run("k1")
        assert ledger.job("k1").state == "planned" and run is not None and run.token is None
    if cancel:
        with (state / "queue.jsonl").open("a") as out:
            out.write(json.dumps({"cancel": "k1"}) + "\n")
    assert round_at(1) == 0
    jobs, calls = pickle.loads(store.read_bytes())
    assert [c[0] for c in calls].count("sbatch") == 1  # found by its name, never resubmitted
    [job] = jobs.values()
    with Ledger.open_readonly(state / "ledger.db") as ledger:
        run = ledger.run("k1")
        if cancel:  # taken back from Slurm: held, then cancelled there
            assert ledger.job("k1").state == "cancelled" and run is None
            assert job.held and job.state == "CANCELLED"
        else:  # moved in place, its token recorded now
            assert ledger.job("k1").state == "planned" and job.state == "PENDING"
            assert run is not None and run.token is not None


@dataclass
class _ScancelRefused(FakeSlurm):
    """``scancel`` refuses the next ``refuse`` jobs (not an outage: Slurm answers)."""

    refuse: int = 0

    def __call__(
        self, argv: Sequence[str], *, stdin: str = "", uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:  # fmt: skip
        if argv[0] != "scancel" or not self.refuse:
            return super().__call__(argv, stdin=stdin, uid=uid, gid=gid)
        self.refuse -= 1
        self.calls.append(tuple(argv))
        return CommandResult(1, "", f"scancel: error: Kill job error on job id {argv[-1]}: "
                             "Access/permission denied")  # fmt: skip


def test_a_held_job_whose_cancel_slurm_refused_is_not_started_meanwhile(tmp_path: Path) -> None:
    slurm, forecast = _ScancelRefused(), Dip(T0 + timedelta(hours=2))
    daemon = slurm_daemon(tmp_path, slurm, forecast)
    service, ledger = daemon.service, daemon.ledger
    queue = tmp_path / "queue.jsonl"
    line = {"id": "b1", "model": "llama-1b", "requests": 4, "command": ["sleep", "600"],
            "deadline": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    queue.write_text(json.dumps(line) + "\n")
    service.start(T0)
    service.tick(T0)
    [job] = slurm.jobs.values()
    assert ledger.job("b1").state == "planned" and job.state == "PENDING"

    start = T0 + timedelta(hours=2)  # its planned start, when its owner cancels it
    with queue.open("a") as out:
        out.write(json.dumps({"cancel": "b1"}) + "\n")
    slurm.refuse, slurm.calls = 1, []
    service.refresh_intensity(start)
    service.tick(start)
    assert ledger.job("b1").state == "planned"  # not given back yet, and not started either
    assert job.state == "PENDING" and not [c for c in slurm.calls if "update" in c]
    service.tick(start + timedelta(minutes=1))
    assert ledger.job("b1").state == "cancelled" and job.state == "CANCELLED"
    assert ledger.run("b1") is None and ledger.outcome("b1") is None  # it never ran
    daemon.close()


@dataclass
class _RefusesFirstSbatch(FakeSlurm):
    """The first ``sbatch`` is refused (nothing submitted); slurmdbd is down throughout."""

    refused: bool = False

    def __call__(
        self, argv: Sequence[str], *, stdin: str = "", uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:  # fmt: skip
        if argv[0] == "sbatch" and not self.refused:
            self.refused = True
            self.calls.append(tuple(argv))
            return CommandResult(1, "", "sbatch: error: Batch job submission failed: "
                                 "Invalid account or account/partition combination "
                                 "specified\n")  # fmt: skip
        return super().__call__(argv, stdin=stdin, uid=uid, gid=gid)


def test_a_held_job_whose_hand_over_failed_is_released_while_slurmdbd_is_down(
    tmp_path: Path,
) -> None:
    """Its run row has no Slurm id, but no hand-over of it reached Slurm: its release looks in
    squeue only and submits it, rather than wait for sacct (slurmdbd down) to say no earlier
    submission of it ran."""
    slurm, forecast = _RefusesFirstSbatch(dbd_down=True), Dip(T0 + timedelta(hours=2))
    daemon = slurm_daemon(tmp_path, slurm, forecast)
    service, ledger = daemon.service, daemon.ledger
    line = {"id": "j9", "model": "llama-1b", "requests": 4, "command": ["true"],
            "deadline": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    (tmp_path / "queue.jsonl").write_text(json.dumps(line) + "\n")
    service.start(T0)
    service.tick(T0)
    run = ledger.run("j9")
    assert slurm.jobs == {} and run is not None and not run.token  # the hand-over failed

    start = T0 + timedelta(hours=2)
    service.refresh_intensity(start)
    service.tick(start)
    assert ledger.job("j9").state == "running", ledger.transitions("j9")[-1].reason
    [job] = slurm.jobs.values()
    assert job.name == "carbond-j9" and job.state == "RUNNING"
    assert not [c for c in slurm.calls if c[0] == "sacct" and "--name=carbond-j9" in c]
    daemon.close()
