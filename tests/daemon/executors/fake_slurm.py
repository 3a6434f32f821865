"""A fake Slurm for the Slurm executor's unit tests: a runner answering ``sbatch``, ``squeue``,
``sacct``, ``scontrol`` and ``scancel`` as Slurm 22.05 does (the real one is exercised in
tests/slurm/), and the executor and launch spec the tests build on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from daemon.executors.base import LaunchSpec
from daemon.executors.slurm import CommandResult, SlurmExecutor, Target
from daemon.executors.slurm.runner import (
    SlurmNoAnswerError,
    SlurmUnavailableError,
    command_missing,
)
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
    gpus: int = 1  # the GPUs Slurm gives it (sacct's AllocTRES gres/gpu): its --gres's count
    unstarted: bool = False  # ended before it ever started (its owner's scancel while pending)
    gres: str = "gpu:1"  # its GRES request (--gres, then scontrol update's Gres=)


@dataclass
class FakeSlurm:
    """Enough of sbatch/squeue/sacct/scontrol/scancel for the executor, with a log of calls."""

    jobs: dict[str, _Job] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    down: bool = False  # every command times out
    stopped: bool = False  # slurmctld stopped: every command says it cannot contact it
    dbd_down: bool = False  # slurmdbd stopped: sacct fails (DBD_DOWN), the rest answers
    dbd_hung: bool = False  # slurmdbd hung: sacct times out, the rest answers
    # commands this host cannot run (not in bin_dir): "scontrol", or "scontrol update" for
    # only those of its calls with that word (a scontrol gone between two calls of a round)
    missing: frozenset[str] = frozenset()
    nodes: str = (
        (RECORDED / "scontrol_nodes_drained.txt").read_text().replace("MIXED+DRAIN", "IDLE")
    )
    partitions: str = (  # scontrol show partition: both up
        (RECORDED / "states" / "scontrol_show_partition_down.txt").read_text()
        .replace("State=DOWN", "State=UP")
    )  # fmt: skip
    running_beta: str = ""
    # scontrol show reservation: none (as Slurm 22.05 prints it on the local cluster)
    reservations: str = "No reservations in the system\n"
    reservations_error: str = ""  # its stderr, exit 1, where not empty
    running_alpha: str = ""  # squeue of partition alpha's running jobs (tres-per-node, ...)
    ran: tuple[str, str] = ("2026-12-04T21:00:01", "2026-12-04T21:00:05")  # sacct Start, End

    def __call__(
        self, argv: Sequence[str], *, stdin: str = "", uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:  # fmt: skip
        self.calls.append(tuple(argv))
        if any(m.split()[0] == argv[0] and set(m.split()[1:]) <= set(argv) for m in self.missing):
            raise command_missing(argv[0], "No such file or directory")  # as exec's
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
            shown = {"partition": self.partitions, "reservation": self.reservations}
            text = next((t for k, t in shown.items() if k in argv), self.nodes)
            failed = "reservation" in argv and self.reservations_error
            return CommandResult(1, "", failed) if failed else CommandResult(0, text, "")
        if "hold" in argv or "release" in argv:
            return self._hold(argv[-1], release="release" in argv)
        assert "update" in argv, f"unexpected command {argv}"
        return self._update(argv)

    def _sbatch(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        slurm_id = str(100 + len(self.jobs))
        begin = opts.get("begin")
        gres = opts.get("gres", "gpu:1")
        job = _Job(opts["job-name"], opts["partition"], start=begin or "N/A",
                   node=opts.get("nodelist", ""), gpus=int(gres.rsplit(":", 1)[-1]),
                   gres=gres)  # fmt: skip
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
                    rows += [] if j.requeued else [f"{i}|PENDING|0:0|{none}|{j.partition}||"]
                    continue
                if j.unstarted:  # as Slurm 22.05: no node, no step, its Start the cancel's
                    rows.append(f"{i}|CANCELLED by 0|0:0|{self.ran[1]}|{self.ran[1]}|"
                                f"None assigned|{j.partition}||")  # fmt: skip
                    continue
                state = "COMPLETED" if j.state == "GONE" else j.state
                start, end = j.ran or self.ran
                times = f"{start}|{end}|n1"
                own = j.job_start or start
                row = f"{i}|{state}|{j.exit}|{own}|{j.job_end or end}|n1|{j.partition}||"
                rows.append(row + _tres(j.gpus, job=True) if not j.cut
                            else row[: row.index(own) + len(own)])  # fmt: skip
                rows.append(f"{i}.batch|{state}|0:0|{times}||{j.energy}|{_tres(j.gpus)}")
        return CommandResult(0, "".join(row + "\n" for row in rows), "")

    def _requeued_runs(self, slurm_id: str) -> list[str]:
        """``sacct --duplicates``'s rows of the runs Slurm started and requeued before the
        job's latest: a ``REQUEUED`` job row and its batch step (400 J) each."""
        j = self.jobs[slurm_id]
        return [row for s, e in j.requeued for row in (
            f"{slurm_id}|REQUEUED|0:0|{s}|{e}|n1|{j.partition}||{_tres(j.gpus, job=True)}",
            f"{slurm_id}.batch|CANCELLED|0:15|{s}|{e}|n1||400|{_tres(j.gpus)}")]  # fmt: skip

    def _scancel(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        self.jobs[argv[-1]].state = "CANCELLED"
        return CommandResult(0, "", "")

    def _hold(self, slurm_id: str, *, release: bool = False) -> CommandResult:
        job = self.jobs[slurm_id]
        if job.state not in ("PENDING", "RUNNING"):
            return CommandResult(1, "", "slurm_suspend error: Job has already finished")
        job.held = not release  # Slurm 22.05 holds a running job too (exit 0): it keeps running
        return CommandResult(0, "", "")

    def _update(self, argv: Sequence[str]) -> CommandResult:
        fields = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("--"))
        job = self.jobs[fields["JobId"]]
        gres = fields.get("Gres", job.gres)
        if gres.count(":") != job.gres.count(":"):  # typed to untyped or back: all refused
            return CommandResult(1, "", "Invalid GRES specification (with and without type "
                                 f"identification) for job {fields['JobId']}\n")  # fmt: skip
        job.partition, job.start, job.gres = fields["Partition"], fields["StartTime"], gres
        if fields["StartTime"] == "now":  # Slurm starts it and prints its real start
            job.state, job.reason, job.start = "RUNNING", "None", self.ran[0]
        return CommandResult(0, "", "")


@dataclass
class StartsAfterLook(FakeSlurm):
    """Once armed, Slurm starts the job right after its next ``squeue`` answer (its
    ``BeginTime`` came, or resources freed), before carbond's next command."""

    armed: bool = False

    def _squeue(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        answer = super()._squeue(argv, opts)
        if self.armed and "Format" not in opts:
            self.armed = False
            for job in self.jobs.values():
                job.state, job.reason, job.start = "RUNNING", "None", self.ran[0]
        return answer


def _tres(gpus: int, *, job: bool = False) -> str:
    """sacct's AllocTRES of a run on ``gpus`` GPUs, as the local cluster prints it (a job row
    has ``billing``, its steps not)."""
    return ("billing=1," if job else "") + f"cpu=1,gres/gpu={gpus},mem=100M,node=1"


def slurm_executor(slurm: FakeSlurm, **kw: float) -> SlurmExecutor:
    """A Slurm executor on ``slurm``: region ``qc`` on partition alpha (two T4s), ``pace`` on
    beta (two L4s)."""
    executor = SlurmExecutor(
        {"qc": Target("alpha"), "pace": Target("beta")},
        runner=slurm,
        known_gpus=DEFAULT_GPU_CATALOG.names(),
        **kw,  # type: ignore[arg-type]  # pending_grace_s only
    )
    assert executor.discover("qc") == [(0, "T4"), (1, "T4")]
    assert executor.discover("pace") == [(0, "L4"), (1, "L4")]
    return executor


def launch_spec(tmp_path: Path, region: str = "qc", device: str = "qc/0") -> LaunchSpec:
    """Job ``j1`` (``sleep 1``, about 4 s, root's) on ``device`` of ``region``."""
    return LaunchSpec(
        job_id="j1", argv=("sleep", "1"), uid=0, gid=0, gpu_indices=(0,),
        log_dir=tmp_path / "logs", expected_duration_s=4.0, region=region,
        device_ids=(device,), name="nightly",
    )  # fmt: skip
