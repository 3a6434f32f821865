"""The Slurm executor against a fake Slurm (a runner answering like Slurm 22.05 does; the real
one is exercised in tests/slurm/)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.executors.base import Held, LaunchSpec, NotStarted, RunHandle
from daemon.executors.errors import (
    EndNotRecordedError,
    ExecutorError,
    ExecutorUnavailableError,
    LaunchUnconfirmedError,
)
from daemon.executors.slurm import CommandResult, SlurmExecutor, Target
from daemon.executors.slurm.commands import slurm_time
from daemon.executors.slurm.queries import Token
from daemon.executors.slurm.runner import SlurmNoAnswerError, SlurmUnavailableError
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG

RECORDED = Path(__file__).parent / "slurm_outputs"
T0 = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
# sacct's answer (exit 1, in 0.0 s) while slurmdbd is stopped, on the local cluster
DBD_DOWN = (
    "sacct: error: slurm_persist_conn_open_without_init: failed to open persistent connection "
    "to host:vm:17001: Connection refused\n"
    "sacct: error: Sending PersistInit msg: Connection refused\n"
    "sacct: error: Problem talking to the database: Connection refused\n"
)


@dataclass
class _Job:
    name: str
    partition: str
    state: str = "PENDING"
    reason: str = "BeginTime"
    start: str = "N/A"
    node: str = ""
    held: bool = False
    energy: str = ""
    exit: str = "0:0"  # sacct's ExitCode of the job's row
    ran: tuple[str, str] | None = None  # its sacct Start and End (None: FakeSlurm.ran)
    cut: bool = False  # its sacct job row is cut short after its Start
    queue_cut: bool = False  # its squeue row is cut short after its state
    job_end: str | None = None  # its sacct job row's End, when not its batch step's
    job_start: str | None = None  # its sacct job row's Start, when not its batch step's
    requeued: tuple[tuple[str, str], ...] = ()  # runs Slurm started, then requeued: Start, End


@dataclass
class FakeSlurm:
    """Enough of sbatch/squeue/sacct/scontrol/scancel for the executor, with a log of calls."""

    jobs: dict[str, _Job] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    down: bool = False  # every command times out
    stopped: bool = False  # slurmctld stopped: every command says it cannot contact it
    dbd_down: bool = False  # slurmdbd stopped: sacct fails (DBD_DOWN), the rest answers
    dbd_hung: bool = False  # slurmdbd hung: sacct times out, the rest answers
    nodes: str = (
        (RECORDED / "scontrol_nodes_drained.txt").read_text().replace("MIXED+DRAIN", "IDLE")
    )
    partitions: str = (  # scontrol show partition: both up
        (RECORDED / "states" / "scontrol_show_partition_down.txt").read_text()
        .replace("State=DOWN", "State=UP")
    )  # fmt: skip
    running_beta: str = ""
    running_alpha: str = ""  # squeue of partition alpha's running jobs (tres-per-node, ...)
    ran: tuple[str, str] = ("2026-12-04T21:00:01", "2026-12-04T21:00:05")  # sacct Start, End

    def __call__(
        self, argv: Sequence[str], *, stdin: str = "", uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:  # fmt: skip
        self.calls.append(tuple(argv))
        if self.down:
            raise SlurmUnavailableError(f"{argv[0]}: no answer within 30 s")
        if "ping" in argv:
            ping = "scontrol_ping_down.txt" if self.stopped else "scontrol_ping_up.txt"
            return CommandResult(int(self.stopped), (RECORDED / ping).read_text(), "")
        if self.stopped:
            return CommandResult(1, "", (RECORDED / "squeue_ctld_down.stderr.txt").read_text())
        opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
        handler = {
            "sbatch": self._sbatch,
            "squeue": self._squeue,
            "sacct": self._sacct,
            "scancel": self._scancel,
        }.get(argv[0])
        if handler is not None:
            return handler(argv, opts)
        if "show" in argv:
            return CommandResult(0, self.partitions if "partition" in argv else self.nodes, "")
        if "hold" in argv:
            return self._hold(argv[-1])
        assert "update" in argv, f"unexpected command {argv}"
        return self._update(argv)

    def _sbatch(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        slurm_id = str(100 + len(self.jobs))
        begin = opts.get("begin")
        job = _Job(opts["job-name"], opts["partition"], start=begin or "N/A",
                   node=opts.get("nodelist", ""))  # fmt: skip
        if begin is None:
            job.state, job.reason = "RUNNING", "None"
        self.jobs[slurm_id] = job
        return CommandResult(0, f"{slurm_id}\n", "")

    def _squeue(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        if "Format" in opts:  # a partition's running jobs
            running = self.running_beta if "beta" in str(argv) else self.running_alpha
            return CommandResult(0, running, "")
        wanted = opts["jobs"].split(",") if "jobs" in opts else list(self.jobs)
        rows = [
            f"{i}|{j.state}" if j.queue_cut
            else f"{i}|{j.state}|{j.reason}|{j.start}|NONE|{j.node}|{j.partition}"
            for i, j in self.jobs.items()
            if i in wanted and opts.get("name", j.name) == j.name and j.state != "GONE"
        ]  # fmt: skip
        return CommandResult(0, "".join(row + "\n" for row in rows), "")

    def _sacct(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        if self.dbd_hung:
            raise SlurmNoAnswerError("sacct: no answer within 10 s")
        if self.dbd_down:
            return CommandResult(1, "", DBD_DOWN)
        rows = []
        for i, j in self.jobs.items():
            if i in opts.get("jobs", "").split(",") or j.name == opts.get("name"):
                if "--duplicates" in argv:  # every run, oldest first, as Slurm 22.05
                    rows += self._requeued_runs(i)
                if j.state == "PENDING":  # a requeued one's pending run has no record yet
                    none = "Unknown|Unknown|None assigned"
                    rows += [] if j.requeued else [f"{i}|PENDING|0:0|{none}|{j.partition}|"]
                    continue
                state = "COMPLETED" if j.state == "GONE" else j.state
                start, end = j.ran or self.ran
                times = f"{start}|{end}|n1"
                own = j.job_start or start
                row = f"{i}|{state}|{j.exit}|{own}|{j.job_end or end}|n1|{j.partition}|"
                rows.append(row if not j.cut else row[: row.index(own) + len(own)])
                rows.append(f"{i}.batch|{state}|0:0|{times}||{j.energy}")
        return CommandResult(0, "".join(row + "\n" for row in rows), "")

    def _requeued_runs(self, slurm_id: str) -> list[str]:
        """``sacct --duplicates``'s rows of the runs Slurm started and requeued before the
        job's latest: a ``REQUEUED`` job row and its batch step (400 J) each."""
        j = self.jobs[slurm_id]
        return [row for s, e in j.requeued for row in (
            f"{slurm_id}|REQUEUED|0:0|{s}|{e}|n1|{j.partition}|",
            f"{slurm_id}.batch|CANCELLED|0:15|{s}|{e}|n1||400")]  # fmt: skip

    def _scancel(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        self.jobs[argv[-1]].state = "CANCELLED"
        return CommandResult(0, "", "")

    def _hold(self, slurm_id: str) -> CommandResult:
        job = self.jobs[slurm_id]
        if job.state != "PENDING":
            return CommandResult(1, "", "slurm_suspend error: Job has already finished")
        job.held = True
        return CommandResult(0, "", "")

    def _update(self, argv: Sequence[str]) -> CommandResult:
        fields = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("--"))
        job = self.jobs[fields["JobId"]]
        job.partition, job.start = fields["Partition"], fields["StartTime"]
        if fields["StartTime"] == "now":  # Slurm starts it and prints its real start
            job.state, job.reason, job.start = "RUNNING", "None", self.ran[0]
        return CommandResult(0, "", "")


def _executor(slurm: FakeSlurm, **kw: float) -> SlurmExecutor:
    executor = SlurmExecutor(
        {"qc": Target("alpha"), "pace": Target("beta")},
        runner=slurm,
        known_gpus=DEFAULT_GPU_CATALOG.names(),
        **kw,  # type: ignore[arg-type]  # pending_grace_s only
    )
    assert executor.discover("qc") == [(0, "T4"), (1, "T4")]
    assert executor.discover("pace") == [(0, "L4"), (1, "L4")]
    return executor


def _spec(tmp_path: Path, region: str = "qc", device: str = "qc/0") -> LaunchSpec:
    return LaunchSpec(
        job_id="j1", argv=("sleep", "1"), uid=0, gid=0, gpu_indices=(0,),
        log_dir=tmp_path / "logs", expected_duration_s=4.0, region=region,
        device_ids=(device,), name="nightly",
    )  # fmt: skip


def test_a_planned_job_is_submitted_held_then_moved_in_place_then_released(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    executor = _executor(slurm)
    start = T0 + timedelta(hours=1)
    held = executor.hold(_spec(tmp_path), start, "", T0)
    [(slurm_id, job)] = slurm.jobs.items()
    assert held.started_at is None
    assert (job.name, job.partition, job.start, job.node) == (
        "carbond-j1", "alpha", slurm_time(start), "n1",
    )  # fmt: skip
    assert (tmp_path / "logs" / "j1.out").exists()  # made for the job's user before sbatch

    later = start + timedelta(hours=1)
    moved = executor.hold(_spec(tmp_path, "pace", "pace/1"), later, held.token, T0)
    assert list(slurm.jobs) == [slurm_id]  # the same Slurm job
    assert (job.partition, job.start) == ("beta", slurm_time(later))

    handle = executor.release(_spec(tmp_path, "pace", "pace/1"), moved.token, T0)
    assert job.state == "RUNNING" and handle.executor == "slurm"
    job.state, job.energy = "GONE", "812"
    [status] = executor.poll([handle], T0 + timedelta(minutes=1))
    assert status.succeeded and status.energy_j == 812.0
    assert status.started_at == datetime(2026, 12, 4, 21, 0, 1, tzinfo=UTC)


def test_on_a_node_with_gpus_of_two_types_a_job_asks_for_the_planned_type(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    slurm.nodes = slurm.nodes.replace("Gres=gpu:t4:2", "Gres=gpu:a100:1(S:0),gpu:t4:1(S:1)")
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=slurm,
                             gpu_names={"qc": {"a100": "A100-80GB"}},
                             known_gpus=DEFAULT_GPU_CATALOG.names())  # fmt: skip
    assert executor.discover("qc") == [(0, "A100-80GB"), (1, "T4")]

    held = executor.hold(_spec(tmp_path, "qc", "qc/1"), T0 + timedelta(hours=1), "", T0)
    executor.release(_spec(tmp_path, "qc", "qc/0"), held.token, T0)

    [sbatch] = [c for c in slurm.calls if c[0] == "sbatch"]
    [update] = [c for c in slurm.calls if "update" in c]
    assert "--gres=gpu:t4:1" in sbatch  # not "gpu:1", which Slurm may meet with the A100
    assert "Gres=gpu:a100:1" in update  # moved to the A100: the request follows


def test_a_job_slurm_already_started_is_reported_not_moved(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    executor = _executor(slurm)
    held = executor.hold(_spec(tmp_path), T0 + timedelta(minutes=5), "", T0)
    job = next(iter(slurm.jobs.values()))
    job.state, job.start = "RUNNING", "2026-12-04T21:05:00"
    again = executor.hold(_spec(tmp_path), T0 + timedelta(hours=2), held.token, T0)
    assert again.started_at == T0 + timedelta(minutes=5)
    assert executor.withdraw("j1", held.token, T0, uid=0) == Held(
        held.token, T0 + timedelta(minutes=5)
    )
    assert job.state == "RUNNING"  # never cancelled behind the owner's back


def test_a_held_job_gone_from_squeue_waits_for_its_end_in_sacct_before_anything_is_decided(
    tmp_path: Path,
) -> None:
    """sacct lags squeue (about 0.5 s; slurmdbd down: longer): a held job squeue shows ended
    but sacct has no end of yet was taken as started at once, and recorded as a run (of 0 s,
    its end read later) even when its owner had cancelled it pending. Now nothing is decided
    for up to a minute; then it is taken as started, as before."""
    slurm = FakeSlurm()
    executor = _executor(slurm)
    held = executor.hold(_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    job = next(iter(slurm.jobs.values()))
    job.state = "CANCELLED"  # squeue has the cancel; sacct not yet
    slurm.dbd_down = True

    for at in (T0, T0 + timedelta(seconds=30)):
        with pytest.raises(EndNotRecordedError, match="sacct has no end of it yet"):
            executor.release(_spec(tmp_path), held.token, at)
        with pytest.raises(EndNotRecordedError):
            executor.hold(_spec(tmp_path), T0 + timedelta(hours=2), held.token, at)
        with pytest.raises(EndNotRecordedError):
            executor.withdraw("j1", held.token, at, uid=0)
    assert len(slurm.jobs) == 1  # nothing submitted again

    late = T0 + timedelta(seconds=61)  # bounded: then taken as started, as before
    taken = executor.hold(_spec(tmp_path), T0 + timedelta(hours=2), held.token, late)
    assert taken.started_at is not None and taken.ended is None


def test_withdraw_holds_then_cancels_and_finds_an_unrecorded_submission_by_name(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    executor = _executor(slurm)
    executor.hold(_spec(tmp_path), T0 + timedelta(hours=1), "", T0)  # token lost in a crash
    assert executor.withdraw("j1", "", T0, uid=0) is None
    job = next(iter(slurm.jobs.values()))
    assert job.held and job.state == "CANCELLED"
    tools = [c[0] + (" " + c[1] if c[0] == "scontrol" else "") for c in slurm.calls[-3:]]
    assert tools == ["squeue", "scontrol hold", "scancel"]
    assert "--user=0" in slurm.calls[-3]  # by name among its owner's jobs only


def test_a_released_job_left_pending_past_the_grace_is_taken_back_unstarted(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    executor = _executor(slurm, pending_grace_s=60)
    handle = executor.launch(_spec(tmp_path), T0)
    job = next(iter(slurm.jobs.values()))
    job.state, job.reason = "PENDING", "Resources"
    assert executor.poll([handle], T0 + timedelta(seconds=30)) == []
    [status] = executor.poll([handle], T0 + timedelta(seconds=90))
    assert isinstance(status, NotStarted)
    assert "pending in Slurm for 90 s (Resources)" in status.reason
    assert job.held and job.state == "CANCELLED"


def test_a_released_job_still_pending_at_its_deadline_is_taken_back_within_the_grace(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    executor = _executor(slurm)  # pending_grace_s 300 s
    handle = replace(executor.launch(_spec(tmp_path), T0), deadline=T0 + timedelta(seconds=60))
    job = next(iter(slurm.jobs.values()))
    job.state, job.reason = "PENDING", "Resources"  # another user's job fills the node
    assert executor.poll([handle], T0 + timedelta(seconds=59)) == []
    [status] = executor.poll([handle], T0 + timedelta(seconds=60))
    assert isinstance(status, NotStarted)  # the service expires it: it can never start late
    assert status.reason == (
        "never started: pending in Slurm for 60 s (Resources), past its deadline "
        "2026-12-04T21:01:00+00:00"
    )
    assert job.held and job.state == "CANCELLED"

    running = replace(executor.launch(_spec(tmp_path), T0), deadline=T0)  # started in time
    assert executor.poll([running], T0 + timedelta(seconds=60)) == []  # runs to its end


def test_without_slurmdbd_a_job_past_its_deadline_is_still_taken_back(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    executor = _executor(slurm)
    done = executor.launch(_spec(tmp_path), T0)
    next(iter(slurm.jobs.values())).state = "COMPLETED"  # ended: its end is sacct's
    late = replace(executor.launch(replace(_spec(tmp_path), job_id="j2"), T0),
                   deadline=T0 + timedelta(seconds=60))  # fmt: skip
    pending = slurm.jobs[Token.decode("j2", late.token).slurm_id]
    pending.state, pending.reason = "PENDING", "Resources"

    slurm.dbd_down = True
    [status] = executor.poll([done, late], T0 + timedelta(seconds=60))

    assert isinstance(status, NotStarted) and status.job_id == "j2"  # never starts late
    assert pending.held and pending.state == "CANCELLED"
    slurm.dbd_down = False  # the ended job's end is read once slurmdbd answers again
    [ended] = executor.poll([done], T0 + timedelta(seconds=61))
    assert ended.succeeded


def test_adopt_keeps_running_jobs_recovers_ended_ones_and_finds_unrecorded_ones(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    executor = _executor(slurm)
    running = executor.launch(_spec(tmp_path), T0)
    ended = executor.launch(LaunchSpec("j2", ("true",), 0, 0, (1,), tmp_path, region="qc"), T0)
    slurm.jobs[ended.token.split('"')[3]].state = "GONE"
    lost = RunHandle("j3", "slurm", "", T0, uid=0)
    slurm.jobs["999"] = _Job("carbond-j3", "alpha", state="RUNNING")
    never = RunHandle("j4", "slurm", "", T0, uid=0)
    adopted = executor.adopt([running, ended, lost, never], T0 + timedelta(minutes=1))
    by_id = {a.job_id: a for a in adopted}
    assert by_id["j1"] == running
    assert by_id["j2"].succeeded  # type: ignore[union-attr]  # an ExitStatus here
    assert isinstance(by_id["j3"], RunHandle) and '"999"' in by_id["j3"].token
    assert isinstance(by_id["j4"], NotStarted)


def test_capacity_marks_down_nodes_and_gpus_others_hold(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    executor = _executor(slurm)
    slurm.nodes = (RECORDED / "scontrol_nodes_drained.txt").read_text()  # n1 drained
    # root's --gres=gpu:1 (no end: an hour assumed) and another user's --gpus=1, both on n2
    slurm.running_beta = (RECORDED / "squeue_running_beta.txt").read_text().splitlines()[0]
    devices = [
        Device(f"{region}/{i}", region, "Z", DEFAULT_GPU_CATALOG.get(gpu))
        for region, gpu in (("qc", "T4"), ("pace", "L4"))
        for i in range(2)
    ]
    marked = {d.device_id: d for d in executor.available(devices, T0)}
    assert not marked["qc/0"].available and not marked["qc/1"].available
    assert marked["pace/0"].busy_until == T0 + timedelta(hours=1)
    assert marked["pace/1"].busy_until is None and marked["pace/1"].available
    slurm.running_beta = (RECORDED / "squeue_running_beta.txt").read_text()
    marked = {d.device_id: d for d in executor.available(devices, T0)}
    ends = datetime(2026, 12, 6, 16, 37, 44, tzinfo=UTC)  # the --gpus=1 job's time limit
    assert marked["pace/0"].busy_until == marked["pace/1"].busy_until == ends
    slurm.down = True
    assert not any(d.available for d in executor.available(devices, T0))


def test_sbatch_refusal_and_unknown_gres_types_are_clear_errors(tmp_path: Path) -> None:
    def refuse(argv: Sequence[str], **_: object) -> CommandResult:
        if argv[0] == "sbatch":
            return CommandResult(1, "", "sbatch: error: invalid partition specified: alpha\n")
        return FakeSlurm()(argv)

    executor = SlurmExecutor({"qc": Target("alpha")}, runner=refuse, known_gpus=["T4"])
    with pytest.raises(ExecutorError, match=r"j1: sbatch refused it: .*invalid partition"):
        executor.launch(_spec(tmp_path), T0)
    strange = SlurmExecutor({"qc": Target("alpha")}, runner=FakeSlurm(), known_gpus=["A100"])
    with pytest.raises(ExecutorError, match=r"GRES type 't4'.*gpu_types"):
        strange.discover("qc")


def _tools(calls: Sequence[tuple[str, ...]]) -> list[str]:
    return [c[0] + (" " + c[-1] if c[0] == "scontrol" else "") for c in calls]


def test_a_stopped_controller_is_asked_once_a_round_then_only_pinged_until_it_answers(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    executor = _executor(slurm)
    devices = [Device(f"qc/{i}", "qc", "Z", DEFAULT_GPU_CATALOG.get("T4")) for i in range(2)]
    handle = executor.launch(_spec(tmp_path), T0)
    slurm.stopped, slurm.calls = True, []  # slurmctld stopped: 9-18 s per command for real

    # one round (one `now`): the first command finds it down; nothing else is run
    assert not any(d.available for d in executor.available(devices, T0))
    for ask in (
        lambda: executor.poll([handle], T0),
        lambda: executor.cancel(handle, T0),
        lambda: executor.launch(replace(_spec(tmp_path), job_id="j2"), T0),
    ):
        with pytest.raises(SlurmUnavailableError, match="unreachable"):
            ask()
    assert _tools(slurm.calls) == ["scontrol node"]
    [(key, message)] = executor.problems().items()
    assert key == "slurm" and "Unable to contact slurm controller" in message
    assert "qc, pace" in message

    # until the retry time no command runs; then a ping (not the command) finds it still down
    executor.available(devices, T0 + timedelta(seconds=5))
    assert _tools(slurm.calls) == ["scontrol node"]
    executor.available(devices, T0 + timedelta(seconds=10))
    executor.available(devices, T0 + timedelta(seconds=20))  # the next try waits 20 s now
    assert _tools(slurm.calls) == ["scontrol node", "scontrol ping"]
    assert executor.problems().keys() == {"slurm"}

    slurm.stopped = False  # back: the next due round pings, then asks, and the problem is gone
    marked = executor.available(devices, T0 + timedelta(seconds=30))
    assert all(d.available for d in marked)
    assert _tools(slurm.calls)[2:] == [
        "scontrol ping", "scontrol node", "scontrol partition", "squeue", "squeue",
    ]  # fmt: skip
    assert executor.problems() == {}
    assert executor.poll([handle], T0 + timedelta(seconds=30)) == []  # still running
    assert [c[0] for c in slurm.calls].count("sbatch") == 0  # j2 was never submitted


def test_a_hung_slurmdbd_delays_only_the_ends_that_need_sacct(tmp_path: Path) -> None:
    """A sacct that timed out (slurmdbd hung, slurmctld fine) started an outage of the whole
    cluster: the poll raised, and every later Slurm command of the round (and of the next
    10-120 s) was 'not run: Slurm unreachable', so no held job moved and no job launched."""
    slurm = FakeSlurm()
    executor = _executor(slurm)
    done = executor.launch(_spec(tmp_path), T0)
    next(iter(slurm.jobs.values())).state = "GONE"  # ended: its end is sacct's
    slurm.dbd_hung, slurm.calls = True, []

    assert executor.poll([done], T0) == []  # its end waits
    launched = executor.launch(replace(_spec(tmp_path), job_id="j2"), T0)  # the controller is
    assert executor.poll([launched], T0) == []  # asked as usual: j2 submitted, seen running
    [(key, message)] = executor.problems().items()
    assert key == "slurmdbd" and "accounting unreachable (sacct: no answer within 10 s)" in message
    assert executor.poll([done], T0 + timedelta(seconds=5)) == []  # not asked again yet
    assert _tools(slurm.calls).count("sacct") == 1

    slurm.dbd_hung = False
    [status] = executor.poll([done], T0 + timedelta(seconds=10))
    assert status.succeeded and executor.problems() == {}


def test_a_timed_out_command_starts_an_outage_too(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    executor = _executor(slurm)
    slurm.down, slurm.calls = True, []  # the controller accepts but never answers
    with pytest.raises(SlurmUnavailableError, match="no answer within 30 s"):
        executor.cancel(RunHandle("j1", "slurm", Token("100", None, "qc").encode(), T0), T0)
    with pytest.raises(SlurmUnavailableError, match=r"^Slurm unreachable \(scancel: no answer"):
        executor.withdraw("j1", "", T0, uid=0)  # the outage's words, the same for each command
    assert _tools(slurm.calls) == ["scancel"]  # not run


def test_an_sbatch_that_cannot_contact_the_controller_is_unavailable_not_refused(
    tmp_path: Path,
) -> None:
    def lost(argv: Sequence[str], **_: object) -> CommandResult:  # slurmctld stopped just now
        if argv[0] == "sbatch":
            stderr = "sbatch: error: Batch job submission failed: Unable to contact slurm "
            return CommandResult(1, "", stderr + "controller (connect failure)\n")
        return FakeSlurm()(argv)

    executor = SlurmExecutor({"qc": Target("alpha")}, runner=lost, known_gpus=["T4"])
    with pytest.raises(ExecutorUnavailableError):  # the service requeues it; it does not fail
        executor.launch(_spec(tmp_path), T0)


@dataclass
class _SbatchFails(FakeSlurm):
    """``sbatch`` fails with ``stderr``."""

    stderr: str = ""

    def __call__(
        self, argv: Sequence[str], *, stdin: str = "", uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:  # fmt: skip
        if argv[0] == "sbatch":
            self.calls.append(tuple(argv))
            return CommandResult(1, "", self.stderr)
        return super().__call__(argv, stdin=stdin, uid=uid, gid=gid)


@pytest.mark.parametrize(
    ("stderr", "unconfirmed"),
    [
        ("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n",
         True),  # the controller took it and did not answer: it may have the job
        ((RECORDED / "squeue_ctld_down.stderr.txt").read_text(), False),  # never reached it
    ],
)  # fmt: skip
def test_an_sbatch_slurm_may_have_acted_on_is_unconfirmed_not_just_unavailable(
    tmp_path: Path, stderr: str, unconfirmed: bool
) -> None:
    slurm = _SbatchFails(stderr=stderr)
    executor = _executor(slurm)
    with pytest.raises(ExecutorUnavailableError) as caught:
        executor.launch(_spec(tmp_path), T0)
    assert isinstance(caught.value, LaunchUnconfirmedError) is unconfirmed
