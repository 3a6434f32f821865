"""Service.tick with a fake clock and a recording executor: the whole life of a job."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.assemble_service import build_service
from daemon.cli import main
from daemon.errors import DaemonError
from daemon.executors.base import ExitStatus
from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.planning import build_policy, job_spec
from daemon.queue import submit_target
from daemon.settings import PolicySettings, RegionSettings, Settings
from daemon.testing import FakeClock, RecordingExecutor
from forecasts import SignalChain
from policies import Decision, PlannedStart, UnknownPolicyError
from policies.builtin.run_now import RunNow
from tests.daemon.helpers import append, job_line, make_service
from tests.daemon.users import user_with_uid

ONE_T4 = (RegionSettings(name="qc", zone="CA-QC", gpus=("T4",)),)


def _states(ledger: Ledger) -> dict[str, str]:
    return {job.job_id: job.state for job in ledger.jobs()}


def test_a_job_goes_from_queue_line_to_succeeded(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor()
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a", gpu_types=["T4"]) + "garbage\n")
    report = service.tick(clock())
    assert (report.ingested, report.rejected, report.started) == (1, 1, ("a",))
    [launch] = executor.launches
    assert (launch.argv, launch.gpu_indices) == (("true",), (0,))
    assert launch.uid == service.queue.path.stat().st_uid  # the file owner, not a claimed user
    decision = service.ledger.latest_decision("a")
    assert decision is not None
    assert (decision.action, decision.gpu, decision.region) == ("start", "T4", "qc")
    assert decision.expected_total_g == pytest.approx(decision.run_now_total_g)
    clock.advance(3600)
    assert service.tick(clock()).finished == ("a",)
    assert _states(service.ledger) == {"a": "succeeded"}
    outcome = service.ledger.outcome("a")
    assert outcome is not None
    assert outcome["predicted_total_g"] == decision.expected_total_g
    assert outcome["measured_energy_j"] is None  # filled by the NVML part
    assert [t.to_state for t in service.ledger.transitions("a")] == [
        "queued", "running", "succeeded",
    ]  # fmt: skip


def test_a_waiting_job_records_a_decision_only_when_it_changes(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4)
    service.start(clock())
    append(service.queue.path, job_line(id="long") + job_line(id="next", deadline="+6h"))
    for _ in range(3):
        service.tick(clock())
        clock.advance(60)
    decisions = [row["job_id"] for row in service.ledger.rows("decisions")]
    assert decisions.count("next") == 1  # the same hold, planned three times
    service.ledger.close()
    restarted = make_service(tmp_path, executor, regions=ONE_T4)  # nothing remembered
    restarted.start(clock())
    restarted.tick(clock())
    decisions = [row["job_id"] for row in restarted.ledger.rows("decisions")]
    assert decisions.count("next") == 1  # read back from the ledger, not repeated


def test_intensity_samples_are_recorded_per_zone(tmp_path: Path) -> None:
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor())
    service.start(clock())
    service.tick(clock())
    zones = {row["zone"] for row in service.ledger.rows("intensity_samples")}
    assert zones == {"CA-QC", "US-CAL-CISO", "US-NW-PACE"}
    clock.advance(60)
    service.tick(clock())  # not due yet: 300 s
    assert len(service.ledger.rows("intensity_samples")) == 3


def test_a_job_waits_for_its_gpu_then_expires(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4)
    service.start(clock())
    append(service.queue.path, job_line(id="long") + job_line(id="next", deadline="+1h"))
    service.tick(clock())
    assert _states(service.ledger) == {"long": "running", "next": "queued"}
    assert service.ledger.latest_decision("next").action == "hold"  # type: ignore[union-attr]
    clock.advance(3601)
    service.tick(clock())
    assert _states(service.ledger)["next"] == "expired"
    assert "deadline" in service.ledger.transitions("next")[-1].reason


def test_a_job_that_fits_nowhere_fails_with_the_policy_reason(tmp_path: Path) -> None:
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(), regions=ONE_T4)
    service.start(clock())
    append(service.queue.path, job_line(id="big", model="llama-70b"))
    service.tick(clock())
    assert _states(service.ledger) == {"big": "failed"}
    reason = service.ledger.transitions("big")[-1].reason
    assert reason.startswith(
        "rejected: fits no admissible device: llama-3.1-70b at fp16, batch 1, "
    )
    assert re.search(
        r"needs [\d.]+ GB per GPU, the largest offers [\d.]+ GB usable \(T4\)$", reason
    )


def test_cancel_before_and_while_running(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4)
    service.start(clock())
    append(service.queue.path, job_line(id="run") + job_line(id="wait"))
    service.tick(clock())
    append(service.queue.path, '{"cancel": "run"}\n{"cancel": "wait"}\n')
    service.tick(clock())
    assert executor.cancels == ["run"]
    assert _states(service.ledger) == {"run": "cancelled", "wait": "cancelled"}
    assert len(executor.launches) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown a spool file to another uid")
def test_a_cancel_by_root_is_recorded_as_roots_not_the_owners(tmp_path: Path) -> None:
    """Root may cancel any user's job (queue.jsonl); the ledger recorded every cancel as
    ``cancelled by its owner``, so the audit trail named the wrong person."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4)
    service.start(clock())
    user_with_uid(14242)  # a real submitter (an owner without one is not read)
    spool = submit_target(tmp_path, 14242)
    append(spool, job_line(id="run"))
    os.chown(spool, 14242, 14242)
    service.tick(clock())
    append(spool, job_line(id="wait") + job_line(id="own"))  # the one T4 is busy: they wait
    service.tick(clock.advance(5))
    assert {job.job_id: job.uid for job in service.ledger.jobs()} == dict.fromkeys(
        ("run", "wait", "own"), 14242
    )
    append(service.queue.path, '{"cancel": "run"}\n{"cancel": "wait"}\n')  # root's
    append(spool, '{"cancel": "own"}\n')  # the owner's
    service.tick(clock.advance(5))
    assert _states(service.ledger) == dict.fromkeys(("run", "wait", "own"), "cancelled")
    reasons = {job: service.ledger.transitions(job)[-1].reason for job in ("run", "wait", "own")}
    assert reasons == {
        "run": "cancelled by root while running",
        "wait": "cancelled by root before start",
        "own": "cancelled by its owner before start",
    }


def test_jobs_running_on_an_executor_the_daemon_no_longer_has_are_reported(
    tmp_path: Path,
) -> None:
    """A daemon restarted with a config that no longer uses the executor some jobs run on
    (the Slurm regions removed): those jobs stayed ``running`` for ever, never polled nor
    cancelled, said by one ``executor_missing`` line at start. ``health.json`` (``carbond
    doctor``) names them until they are gone."""
    clock = FakeClock()
    on_slurm = (RegionSettings(name="hpc", zone="CA-QC", executor="slurm", gpus=("T4",),
                               slurm={"partition": "gpu"}),)  # fmt: skip
    first = make_service(tmp_path, RecordingExecutor("slurm", auto_finish=False), regions=on_slurm)
    first.start(clock())
    append(first.queue.path, job_line(id="hpc-1"))
    first.tick(clock())
    assert first.ledger.job("hpc-1").state == "running"
    first.ledger.close()

    service = make_service(tmp_path, RecordingExecutor(), regions=ONE_T4)
    service.start(clock.advance(60))
    service.tick(clock())
    service.after_step("reconcile", None, clock())
    health = json.loads((tmp_path / "health.json").read_text())
    message = health["problems"]["executor:slurm"]["message"]
    assert "hpc-1" in message and "not polled" in message


def test_runs_being_stopped_on_an_executor_the_daemon_no_longer_has_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lost GPU's job ended ``failed`` while its run on Slurm was still being stopped; a
    daemon restarted without that executor neither polled nor stopped the run, and said
    nothing of it (health.json named only running jobs; ``carbond status`` showed a failed
    job). Both name it now."""
    clock = FakeClock()
    on_slurm = (RegionSettings(name="hpc", zone="CA-QC", executor="slurm", gpus=("T4",),
                               slurm={"partition": "gpu"}),)  # fmt: skip
    first = make_service(tmp_path, RecordingExecutor("slurm", auto_finish=False), regions=on_slurm)
    first.start(clock())
    append(first.queue.path, job_line(id="hpc-1"))
    first.tick(clock())
    with first.ledger.transaction():  # as Endings.stop, then the job's end, record them
        first.ledger.set_stopping("hpc-1", "gpu 0 lost")
        first.ledger.transition("hpc-1", "failed", clock(), "gpu 0 lost")
    first.ledger.close()

    service = make_service(tmp_path, RecordingExecutor(), regions=ONE_T4)
    service.start(clock.advance(60))
    service.tick(clock())
    service.after_step("reconcile", None, clock())
    health = json.loads((tmp_path / "health.json").read_text())
    message = health["problems"]["executor:slurm"]["message"]
    assert message.startswith("1 run(s) being stopped, their jobs ended (hpc-1) run on")
    assert "not polled" in message
    assert main(["status", "hpc-1", "--state-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["stopping"] == "gpu 0 lost"
    assert main(["status", "hpc-1", "--state-dir", str(tmp_path)]) == 0
    assert "; still being stopped (gpu 0 lost)" in capsys.readouterr().out


def test_a_job_that_failed_before_its_owner_asked_to_cancel_it_is_failed(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4)
    service.start(clock())
    append(service.queue.path, job_line(id="a"))
    service.tick(clock())
    executor.finish("a", clock.advance(10), exit_code=3)  # not polled yet: still running
    append(service.queue.path, '{"cancel": "a"}\n')  # `carbond cancel` saw it running
    service.tick(clock.advance(5))
    assert _states(service.ledger) == {"a": "failed"}
    assert service.ledger.transitions("a")[-1].reason == "exit code 3"


@pytest.mark.parametrize(("exit_code", "state"), [(0, "succeeded"), (3, "failed")])
def test_exit_status_decides_the_final_state(tmp_path: Path, exit_code: int, state: str) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a"))
    service.tick(clock())
    executor.finish("a", clock.advance(10), exit_code)
    service.tick(clock())
    assert _states(service.ledger) == {"a": state}
    run = service.ledger.run("a")
    assert run is not None and run.exit_code == exit_code


def test_a_launch_failure_fails_the_job(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor()
    executor.fail_launch = True
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a"))
    service.tick(clock())
    assert _states(service.ledger) == {"a": "failed"}
    assert "launch failed" in service.ledger.transitions("a")[-1].reason


def test_running_jobs_are_adopted_after_a_restart(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    first = make_service(tmp_path, executor)
    first.start(clock())
    append(first.queue.path, job_line(id="a") + job_line(id="b"))
    first.tick(clock())
    executor.finish("b", clock.advance(5))
    first.ledger.close()  # the daemon dies; its jobs keep running
    second = make_service(tmp_path, executor)
    second.start(clock.advance(5))
    assert sorted(executor.adopted) == ["a", "b"]
    assert _states(second.ledger) == {"a": "running", "b": "succeeded"}
    executor.finish("a", clock.advance(5))
    second.tick(clock())
    assert _states(second.ledger) == {"a": "succeeded", "b": "succeeded"}
    assert len(executor.launches) == 2


def test_a_launch_interrupted_before_it_started_is_requeued_once(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor()
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a"))
    service.ingest(clock())
    # The daemon committed "running" and died before the executor started anything.
    with service.ledger.transaction():
        service.ledger.transition("a", "running", clock(), "dispatched")
        service.ledger.add_run("a", "local", ["qc/0"], [0], 6.0, clock())
    service.ledger.close()
    restarted = make_service(tmp_path, executor)
    restarted.start(clock())
    assert _states(restarted.ledger) == {"a": "queued"}
    assert "requeued" in restarted.ledger.transitions("a")[-1].reason
    restarted.tick(clock.advance(60))
    assert [spec.job_id for spec in executor.launches] == ["a"]
    restarted.tick(clock.advance(60))
    assert _states(restarted.ledger) == {"a": "succeeded"}


def test_an_unknown_policy_is_refused_never_replaced_by_run_now() -> None:
    with pytest.raises(UnknownPolicyError, match="unknown policy 'carbon-windw' \\(known: "):
        build_policy("carbon-windw", {})


def test_decisions_are_recorded_only_when_they_change(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4)
    service.start(clock())
    append(service.queue.path, job_line(id="long") + job_line(id="next"))
    for _ in range(5):
        service.tick(clock.advance(30))
    rows = [r for r in service.ledger.rows("decisions") if r["job_id"] == "next"]
    assert len(rows) == 1
    assert json.loads(rows[0]["alternatives_json"]) == []


def test_a_never_started_status_from_an_older_executor_also_requeues(tmp_path: Path) -> None:
    clock = FakeClock()

    class Legacy(RecordingExecutor):
        def adopt(self, handles, now):  # type: ignore[no-untyped-def]
            return [
                ExitStatus(h.job_id, now, None, None, "never started: no marker") for h in handles
            ]

    executor = Legacy()
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a"))
    service.ingest(clock())
    with service.ledger.transaction():
        service.ledger.transition("a", "running", clock(), "dispatched")
        service.ledger.add_run("a", "local", ["qc/0"], [0], 6.0, clock())
    service.reconcile(clock())  # also resolves tokenless runs when start() was not called
    assert _states(service.ledger) == {"a": "queued"}


def test_reconfigure_swaps_the_policy_and_devices_without_touching_running_jobs(
    tmp_path: Path,
) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4)
    service.start(clock())
    append(service.queue.path, job_line(id="a") + job_line(id="b"))
    service.tick(clock())
    assert _states(service.ledger) == {"a": "running", "b": "queued"}
    two = (*ONE_T4, RegionSettings(name="pace", zone="US-NW-PACE", gpus=("RTX6000-Ada",)))
    service.reconfigure(service.settings, inventory=build_inventory(two))
    service.tick(clock.advance(30))
    assert _states(service.ledger) == {"a": "running", "b": "running"}
    assert executor.launches[1].gpu_indices == (0,)
    assert service.ledger.run("b").device_ids == ("pace/0",)  # type: ignore[union-attr]


def test_a_failing_poll_keeps_the_job_running_until_it_works(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor()
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="a"))
    service.tick(clock())
    executor.fail_poll = True
    with capture_logs() as logs:
        service.tick(clock.advance(3600))
    assert "executor_poll_failed" in [entry["event"] for entry in logs]
    assert _states(service.ledger) == {"a": "running"}
    executor.fail_poll = False
    service.tick(clock.advance(5))
    assert _states(service.ledger) == {"a": "succeeded"}


def test_build_service_wires_the_configured_parts(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path, regions=ONE_T4, policy={"name": "wait-awhile"},
        intensity={"source": "embedded"},
    )  # fmt: skip
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with pytest.raises(DaemonError, match="executor"):
            build_service(settings, ledger, {})
        service = build_service(settings, ledger, {"local": RecordingExecutor()})
        assert service.policy.name == "wait-awhile"
        assert [gpu.device_id for gpu in service.inventory] == ["qc/0"]
        assert isinstance(service.intensity, EmbeddedIntensity)
        assert service.queue.state_dir == tmp_path


def test_the_default_intensity_source_is_the_forecasts_chain_offline(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, regions=ONE_T4, policy={"name": "run-now"})
    clock = FakeClock()
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        service = build_service(settings, ledger, {"local": RecordingExecutor()})
        assert isinstance(service.intensity, SignalChain)
        service.start(clock())
        append(service.queue.path, job_line(id="a"))
        service.tick(clock())
        service.close()
        [sample] = ledger.rows("intensity_samples")
    assert (sample["zone"], sample["intensity_g_per_kwh"]) == ("CA-QC", 31.0)  # static rung
    assert ledger.path.exists()


def test_a_policy_that_double_books_a_gpu_is_not_obeyed(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4)

    class Greedy:
        name = "greedy"

        def plan(self, now, jobs, devices, forecasts):  # type: ignore[no-untyped-def]
            alt = RunNow().plan(now, jobs[:1], devices, forecasts)[0].chosen
            return [Decision(j.job_id, "start", "everything now", "greedy", alt) for j in jobs]

    service.policy = Greedy()
    service.start(clock())
    append(service.queue.path, job_line(id="a") + job_line(id="b"))
    with capture_logs() as logs:
        service.tick(clock())
    assert _states(service.ledger) == {"a": "running", "b": "queued"}
    assert "decision_conflict" in [entry["event"] for entry in logs]
    assert len(executor.launches) == 1


def test_a_round_plans_only_the_most_urgent_window_but_settles_every_job(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4)
    policy = PolicySettings(name=service.settings.policy.name, plan_window=3)
    service.reconfigure(service.settings.model_copy(update={"policy": policy}))
    service.start(clock())
    lines = [job_line(id=f"old{k}") for k in range(4)]
    lines += [job_line(id="urgent", priority=5), job_line(id="soon", deadline="+1h")]
    lines += [job_line(id="late", deadline="+2h")]
    append(service.queue.path, "".join(lines))
    service.tick(clock())
    assert [launch.job_id for launch in executor.launches] == ["urgent"]
    decided = {row["job_id"] for row in service.ledger.rows("decisions")}
    assert decided == {"urgent", "soon", "late"}  # the old jobs without deadline wait
    clock.advance(3601)
    service.tick(clock())  # "soon" is past its deadline and expires; "old0" enters the window
    states = _states(service.ledger)
    assert states["soon"] == "expired" and states["late"] == "queued"
    assert {row["job_id"] for row in service.ledger.rows("decisions")} >= {"old0", "old1"}


def test_a_repeated_hold_object_is_recorded_once_and_its_plan_handed_back(tmp_path: Path) -> None:
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, regions=ONE_T4)
    start = clock() + timedelta(hours=1)

    class Repeating:  # last round's very Decision object while its job is held
        name = "repeating"

        def __init__(self) -> None:
            self.held: dict[str, Decision] = {}
            self.seen: list[tuple[str, PlannedStart | None]] = []
            self.launch = False

        def plan(self, now, jobs, devices, forecasts):  # type: ignore[no-untyped-def]
            self.seen += [(job.job_id, job.planned) for job in jobs]
            if self.launch:
                alt = RunNow().plan(now, jobs, devices, forecasts)[0].chosen
                return [Decision(jobs[0].job_id, "start", "now", self.name, alt)]
            decisions = []
            for job in jobs:
                if job.job_id not in self.held:
                    alt = RunNow().plan(now, [job], devices, forecasts)[0].chosen
                    chosen = replace(alt, start=start)
                    self.held[job.job_id] = Decision(job.job_id, "hold", "later", self.name, chosen)
                decisions.append(self.held[job.job_id])
            return decisions

    policy = Repeating()
    service.policy = policy
    service.start(clock())
    append(service.queue.path, job_line(id="a", deadline="+6h"))
    reports = []
    for _ in range(3):
        reports.append(service.tick(clock()))
        clock.advance(60)
    assert [r.decisions for r in reports] == [1, 1, 1]
    assert [row["job_id"] for row in service.ledger.rows("decisions")] == ["a"]
    assert _states(service.ledger) == {"a": "planned"}
    plan = PlannedStart("qc", "T4", start)
    assert policy.seen == [("a", None), ("a", plan), ("a", plan)]  # kept for the policy
    policy.launch = True
    assert service.tick(clock()).started == ("a",)
    assert [row["action"] for row in service.ledger.rows("decisions")] == ["hold", "start"]


def test_a_launch_reads_the_planners_spec_else_parses_the_request(tmp_path: Path) -> None:
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False), regions=ONE_T4)
    service.start(clock())
    append(service.queue.path, job_line(id="a"))
    service.ingest(clock())
    [job] = service.ledger.most_urgent_waiting(10)
    spec = job_spec(job)
    devices = [gpu.device for gpu in service.inventory]
    service.refresh_intensity(clock())
    [decision] = RunNow().plan(clock(), [spec], devices, service.forecasts)
    dispatch, by_device = service._dispatch, service._by_device  # the service's own parts
    planned = dispatch.prepare(job, decision, by_device, clock(), spec)
    parsed = dispatch.prepare(job, decision, by_device, clock())
    assert planned is not None and parsed is not None
    assert planned.job_spec() is spec
    assert parsed.job_spec() == spec and parsed.job_spec() is not spec


def test_a_gpu_freed_by_now_is_planned_on_in_the_same_tick(tmp_path: Path) -> None:
    """``Service.tick`` planned before it reconciled: a run that had ended by ``now`` still
    held its GPU through the round's plan (busy until ``now`` + the overrun), so the next job
    waited a whole tick, or went to a dirtier GPU that looked free (the demo, and anyone
    driving ``tick``). A round reconciles first now, as the replay's rounds do."""
    clock, executor = FakeClock(), RecordingExecutor()
    service = make_service(tmp_path, executor, regions=ONE_T4)
    service.start(clock())
    append(service.queue.path, job_line(id="first") + job_line(id="second", deadline="+6h"))
    assert service.tick(clock()).started == ("first",)
    run = service.ledger.run("first")
    assert run is not None
    clock.advance(run.expected_duration_s + 1)  # "first" has ended by this round
    report = service.tick(clock())
    assert (report.finished, report.started) == (("first",), ("second",))
