"""What ``squeue --jobs`` answers on the real local Slurm 22.05 (``make slurm-up``) for ids it
does not know, and how :class:`SlurmQueries` reads it; one row of its answer cut short, and
of ``sacct``'s a fragment and an unreadable Start."""

from __future__ import annotations

import pwd
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from daemon.executors.base import LaunchSpec, RunHandle
from daemon.executors.errors import AnswerUnreadableError, ExecutorError, ExecutorUnavailableError
from daemon.executors.slurm import SlurmExecutor, Target
from daemon.executors.slurm.queries import SlurmQueries, Token
from daemon.executors.slurm.runner import CommandResult, SubprocessRunner
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.slurm.cluster import SlurmCluster

pytestmark = pytest.mark.slurm

UNKNOWN = "999999"  # an id this cluster never gave


class _Counting:
    """The real runner, counting the commands it runs."""

    def __init__(self) -> None:
        self.argvs: list[list[str]] = []
        self._runner = SubprocessRunner()

    def __call__(
        self, argv: Sequence[str], *, stdin: str = "", uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:  # fmt: skip
        self.argvs.append(list(argv))
        return self._runner(argv, stdin=stdin, uid=uid, gid=gid)


@pytest.fixture
def counted(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> _Counting:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    return _Counting()


def test_unknown_ids_are_left_out_in_one_squeue(
    slurm_cluster: SlurmCluster, counted: _Counting
) -> None:
    known = str(slurm_cluster.sbatch("-p", "alpha", "--begin=now+1hour", wrap="true"))
    queries = SlurmQueries({}, counted, None)

    assert [r.slurm_id for r in queries.squeue(None, [UNKNOWN, known, "999998"])] == [known]
    assert queries.squeue(None, [UNKNOWN, "999998"]) == []
    assert queries.squeue(None, [UNKNOWN]) == []  # alone, squeue refuses it: none either
    assert len(counted.argvs) == 3  # one squeue each, never one per id


@pytest.mark.parametrize("bad", ["abc", "0"])
def test_an_id_squeue_cannot_read_is_an_error_not_a_job_gone(
    slurm_cluster: SlurmCluster, counted: _Counting, bad: str
) -> None:
    """A multi-id ``squeue`` that failed with ``Invalid job id`` was retried one id at a time,
    and each id that failed alone was taken as a job Slurm no longer has: but Slurm 22.05
    refuses a multi-id call only for an id it cannot read at all (``squeue: error: Invalid
    job id: abc``), never for unknown ones, so a garbled run token read as a job gone (its
    run then never ended, its sacct empty), one command per held job each round. Only a
    single id Slurm does not know (``Invalid job id specified``) is now read as gone."""
    known = str(slurm_cluster.sbatch("-p", "alpha", "--begin=now+1hour", wrap="true"))
    queries = SlurmQueries({}, counted, None)

    with pytest.raises(ExecutorError, match=f"Invalid job id: {bad}"):
        queries.squeue(None, [known, bad])
    with pytest.raises(ExecutorError, match=f"Invalid job id: {bad}"):
        queries.squeue(None, [bad])
    assert len(counted.argvs) == 2


class _Cutting:
    """The real runner; ``squeue``'s row of each Slurm id in ``cut`` is printed cut short
    after its second field, as an answer truncated mid-line."""

    def __init__(self) -> None:
        self.cut: set[str] = set()
        self._runner = SubprocessRunner()

    def __call__(
        self, argv: Sequence[str], *, stdin: str = "", uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:  # fmt: skip
        result = self._runner(argv, stdin=stdin, uid=uid, gid=gid)
        if not argv[0].endswith("squeue"):
            return result
        lines = [
            "|".join(line.split("|")[:2]) if line.split("|")[0] in self.cut else line
            for line in result.stdout.splitlines()
        ]
        return replace(result, stdout="".join(line + "\n" for line in lines))


def test_a_cut_short_squeue_row_affects_that_job_only(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One squeue row cut short failed the whole answer (``squeue: expected 7 '|'-separated
    fields``): no job of the cluster was seen to end, and one of another user's running jobs
    made every GPU of the cluster unavailable. On the real Slurm, with one row cut: the
    other job's end is read, the cut one stays unknown (not ended, not taken as started), a
    held job whose row is cut is not withdrawn (asked again), and the others' GPUs are still
    counted."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    runner = _Cutting()
    executor = SlurmExecutor({"qc": Target("alpha"), "pace": Target("beta")}, runner=runner,
                             known_gpus=DEFAULT_GPU_CATALOG.names())  # fmt: skip
    executor.discover("qc")
    executor.discover("pace")
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    tag = uuid.uuid4().hex[:8]
    specs = [
        LaunchSpec(f"{name}-{tag}", argv, owner.pw_uid, owner.pw_gid, (0,), logs,
                   region="qc", device_ids=("qc/0",))
        for name, argv in (("done", ("true",)), ("cut", ("sleep", "60")))
    ]  # fmt: skip
    now = datetime.now(UTC)
    done, cut = (executor.launch(spec, now) for spec in specs)
    held = executor.hold(replace(specs[0], job_id=f"held-{tag}"), now + timedelta(hours=1), "",
                         now)  # fmt: skip
    ids = [Token.decode("", t).slurm_id for t in (done.token, cut.token, held.token)]
    slurm_cluster.wait_for_job_end(int(ids[0]))
    runner.cut = {ids[1], ids[2]}

    [end] = executor.poll([done, cut], datetime.now(UTC))
    assert (end.job_id, end.succeeded) == (done.job_id, True)
    with pytest.raises(ExecutorUnavailableError, match="squeue printed its row cut short"):
        executor.withdraw(f"held-{tag}", held.token, datetime.now(UTC), uid=owner.pw_uid)
    pending = ["squeue", "--noheader", f"--jobs={ids[2]}", "--format=%T|%r"]
    assert slurm_cluster.run(pending).stdout.split() == ["PENDING|BeginTime"]  # not withdrawn

    others = [str(slurm_cluster.sbatch("-p", "beta", "--gres=gpu:1", wrap="sleep 60",
                                       user=slurm_cluster.other_user)) for _ in (1, 2)]  # fmt: skip
    slurm_cluster.wait_until(
        lambda: all(slurm_cluster.job_state(int(o)) == "RUNNING" for o in others),
        what="another user's two jobs running on n2",
    )
    runner.cut = {others[1]}
    devices = [Device(f"pace/{i}", "pace", "Z", DEFAULT_GPU_CATALOG.get("L4")) for i in (0, 1)]
    pace = executor.available(devices, datetime.now(UTC))
    assert all(d.available for d in pace)  # not the whole cluster unavailable
    assert [d.busy_until is not None for d in pace] == [True, False]  # only the readable job's

    runner.cut = set()
    assert executor.poll([cut], datetime.now(UTC)) == []  # read whole again: still running
    assert executor.withdraw(f"held-{tag}", held.token, datetime.now(UTC), uid=owner.pw_uid) is None


class _Garbling(_Cutting):
    """:class:`_Cutting`; and ``sacct``'s job row of each Slurm id in ``garble`` printed with
    its Start no time, after a cut-short fragment of the same id."""

    def __init__(self) -> None:
        super().__init__()
        self.garble: set[str] = set()

    def __call__(
        self, argv: Sequence[str], *, stdin: str = "", uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:  # fmt: skip
        result = super().__call__(argv, stdin=stdin, uid=uid, gid=gid)
        if not argv[0].endswith("sacct"):
            return result
        lines = []
        for line in result.stdout.splitlines():
            fields = line.split("|")
            if fields[0] in self.garble:
                lines.append(f"{fields[0]}|COMPLETED|1:0")
                fields[3] = fields[3][:-1] + "x"  # sacct's Start, its last digit garbled
            lines.append("|".join(fields))
        return replace(result, stdout="".join(line + "\n" for line in lines))


def test_unreadable_sacct_and_squeue_rows_guess_neither_a_start_nor_a_region(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real Slurm: a job whose sacct row follows a cut-short fragment of its id, its
    Start unreadable, ends as Slurm recorded it, started at its batch step's Start (not at
    its launch); a job looked up by name whose squeue row is cut short is not given a
    guessed region (``pace`` for a job of ``qc``): it is asked again, and found in ``qc``
    once the row reads whole."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    runner = _Garbling()
    executor = SlurmExecutor({"qc": Target("alpha"), "pace": Target("beta")}, runner=runner,
                             known_gpus=DEFAULT_GPU_CATALOG.names())  # fmt: skip
    executor.discover("qc")
    owner = pwd.getpwnam(slurm_cluster.user)
    logs = slurm_cluster.work_dir(slurm_cluster.user) / "logs"
    tag = uuid.uuid4().hex[:8]
    specs = [
        LaunchSpec(f"{name}-{tag}", argv, owner.pw_uid, owner.pw_gid, (0,), logs,
                   region="qc", device_ids=("qc/0",))
        for name, argv in (("done", ("true",)), ("lost", ("sleep", "60")))
    ]  # fmt: skip
    done = executor.launch(specs[0], datetime.now(UTC))
    executor.launch(specs[1], datetime.now(UTC))  # its token lost in a crash
    done_id = Token.decode("", done.token).slurm_id
    slurm_cluster.wait_for_job_end(int(done_id))
    rows = {r["JobID"]: r["Start"] for r in slurm_cluster.sacct(int(done_id), ("JobID", "Start"))}
    start, batch_start = rows[done_id], rows[f"{done_id}.batch"]
    runner.garble = {done_id}

    [end] = executor.poll([done], datetime.now(UTC))
    assert (end.job_id, end.succeeded, end.exit_code) == (done.job_id, True, 0)
    assert end.started_at == datetime.fromisoformat(batch_start).replace(tzinfo=UTC)
    assert end.reason.startswith(f"slurm COMPLETED; sacct unreadable: Start '{start[:-1]}x'")
    assert end.reason.endswith("; start from its batch step's Start")

    tokenless = RunHandle(specs[1].job_id, "slurm", "", datetime.now(UTC), uid=owner.pw_uid)
    lost_id = slurm_cluster.run(["squeue", "--noheader", f"--name=carbond-{specs[1].job_id}",
                                 "--format=%i"]).stdout.strip()  # fmt: skip
    runner.cut = {lost_id}
    assert executor.adopt([tokenless], datetime.now(UTC)) == []  # asked again next call
    with pytest.raises(AnswerUnreadableError, match="cut short"):  # nor held in a guessed one
        executor.hold(specs[1], datetime.now(UTC) + timedelta(hours=1), "", datetime.now(UTC))
    runner.cut = set()
    [adopted] = executor.adopt([tokenless], datetime.now(UTC))
    assert isinstance(adopted, RunHandle)
    assert Token.decode("", adopted.token) == Token(lost_id, None, "qc")
    executor.cancel(adopted, datetime.now(UTC))


def test_a_hold_of_a_running_job_succeeds_so_only_its_row_after_says_it_is_held_unstarted(
    slurm_cluster: SlurmCluster, counted: _Counting
) -> None:
    """Slurm 22.05's ``scontrol hold`` of a job it already started exits 0 (the job keeps
    running, reason ``JobHeldAdmin``): carbond took a successful hold as proof that a job it
    was about to cancel (a take-back, a withdrawal, a refused release) had not started.
    :meth:`SlurmQueries.hold` reads its row after the hold: held unstarted only while it
    still waits."""
    queries = SlurmQueries({}, counted, None)
    running = str(slurm_cluster.sbatch("-p", "alpha", wrap="sleep 60"))
    pending = str(slurm_cluster.sbatch("-p", "alpha", "--begin=now+1hour", wrap="true"))
    slurm_cluster.wait_until(lambda: [r.state for r in queries.squeue(None, [running])]
                             == ["RUNNING"], what="the job to run")  # fmt: skip
    bare = slurm_cluster.run(["scontrol", "hold", running], check=False)
    assert bare.returncode == 0  # Slurm takes it, and the job runs on

    slurm_cluster.run(["scontrol", "release", running])
    held, row = queries.hold(Token(running, None, "qc"))
    assert not held and row is not None and row.state == "RUNNING"
    [after] = queries.squeue(None, [running])  # its hold lifted again: not JobHeldAdmin
    assert (after.state, after.reason) == ("RUNNING", "None")
    held, row = queries.hold(Token(pending, None, "qc"))
    assert held and row is not None and row.state == "PENDING"
