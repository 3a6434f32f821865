"""Plans handed to a reserving executor (Slurm): a job is moved there only when its plan
moves, and a plan to start *now* (its devices not free yet) is not a new plan every round."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from daemon.errors import DaemonError
from daemon.executors.base import Held, LaunchSpec, RunHandle
from daemon.executors.held import HeldJobs
from daemon.inventory import InventoryGpu
from daemon.ledger import Ledger
from policies import Alternative, Decision, Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.helpers import job_request

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class _Reserving:
    """Records every hand-over; its scheduler never starts a job on its own."""

    name = "fake"

    def __init__(self) -> None:
        self.holds: list[tuple[datetime, tuple[str, ...]]] = []

    def hold(
        self, spec: LaunchSpec, start: datetime, token: str, now: datetime, *, new: bool = False
    ) -> Held:
        self.holds.append((start, spec.device_ids))
        return Held(f"t{len(self.holds)}")

    def release(
        self, spec: LaunchSpec, token: str, now: datetime, *, new: bool = False
    ) -> RunHandle:
        raise AssertionError("not released here")

    def withdraw(self, job_id: str, token: str, now: datetime, *, uid: int) -> Held | None:
        return None


class _FailingWithdrawals(_Reserving):
    """A withdrawal raises ``error`` (as the executor translates Slurm's) while it is set."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error

    def withdraw(self, job_id: str, token: str, now: datetime, *, uid: int) -> Held | None:
        if self.error:
            raise DaemonError(self.error)
        return None


def _hold(start: datetime, device: str) -> Decision:
    region = device.split("/", maxsplit=1)[0]
    plan = Alternative((device,), region, "T4", start, 60.0, 3.6e5, 30.0, 3.0, 1.0)
    return Decision("j", "hold", "hold: planned", "carbon-window", plan)


def test_a_plan_to_start_now_is_handed_over_once_not_every_round(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with ledger.transaction():
            ledger.add_job(job_request("j", T0), 0, 0, "queue.jsonl:1", T0)
        executor = _Reserving()
        held = HeldJobs(ledger, {"fake": executor})  # type: ignore[dict-item]
        t4 = DEFAULT_GPU_CATALOG.get("T4")
        by_device = {
            d: InventoryGpu(Device(d, d.split("/")[0], "CA-QC", t4), k, "fake")
            for k, d in enumerate(("qc/0", "qc/1"))
        }

        def spec_for(job: Any, chosen: Alternative, indices: tuple[int, ...]) -> LaunchSpec:
            return LaunchSpec(job_id="j", argv=("true",), uid=0, gid=0, gpu_indices=indices,
                              log_dir=tmp_path, expected_duration_s=60.0, region="qc",
                              device_ids=chosen.device_ids, name="j")  # fmt: skip

        later = T0 + timedelta(hours=2)
        rounds = [  # (now, the plan's start, its device)
            (T0, T0, "qc/0"), (T0 + timedelta(minutes=1), T0 + timedelta(minutes=1), "qc/0"),
            (T0 + timedelta(minutes=2), T0 + timedelta(minutes=2), "qc/0"),  # still waiting
            (T0 + timedelta(minutes=3), T0 + timedelta(minutes=3), "qc/1"),  # another GPU
            (T0 + timedelta(minutes=4), later, "qc/1"),  # a plan for later
            (T0 + timedelta(minutes=5), later, "qc/1"),  # the same plan
            (T0 + timedelta(minutes=6), T0 + timedelta(minutes=6), "qc/1"),  # now again
        ]  # fmt: skip
        for now, start, device in rounds:
            held.keep(ledger.job("j"), _hold(start, device), by_device, spec_for, now)
        assert executor.holds == [
            (T0, ("qc/0",)), (T0 + timedelta(minutes=3), ("qc/1",)), (later, ("qc/1",)),
            (T0 + timedelta(minutes=6), ("qc/1",)),
        ]  # fmt: skip


def test_a_hand_over_failing_the_same_way_every_round_is_logged_once(tmp_path: Path) -> None:
    """A daemon started without ``SLURM_CONF`` logged ``job_withdraw_failed`` ("Could not
    establish a configuration source") for each job every round; it is logged once per job and
    error, again when the error changes or after a success."""
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with ledger.transaction():
            ledger.add_job(job_request("j", T0), 0, 0, "queue.jsonl:1", T0)
            ledger.add_run("j", "fake", ("qc/0",), (0,), 60.0, T0)
        executor = _FailingWithdrawals("Could not establish a configuration source")
        held = HeldJobs(ledger, {"fake": executor})  # type: ignore[dict-item]
        with capture_logs() as logs:
            for minute in range(5):
                assert not held.withdraw("j", T0 + timedelta(minutes=minute))
            executor.error = "slurm_load_jobs error: Socket timed out"
            assert not held.withdraw("j", T0 + timedelta(minutes=5))
            executor.error = ""
            assert held.withdraw("j", T0 + timedelta(minutes=6))
        failed = [e["error"] for e in logs if e["event"] == "job_withdraw_failed"]
        assert failed == [
            "Could not establish a configuration source",
            "slurm_load_jobs error: Socket timed out",
        ]


def test_a_failure_is_logged_again_after_a_successful_hold_in_between(tmp_path: Path) -> None:
    """A withdrawal failing in an outage, then a successful hold of the job, then the same
    failure in a later outage: the hold did not clear the ``job_withdraw_failed`` it had
    logged, so the second outage's was not logged at all. Any answer from the executor about
    the job now ends what was logged of it."""
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with ledger.transaction():
            ledger.add_job(job_request("j", T0), 0, 0, "queue.jsonl:1", T0)
        executor = _FailingWithdrawals("")
        held = HeldJobs(ledger, {"fake": executor})  # type: ignore[dict-item]
        t4 = DEFAULT_GPU_CATALOG.get("T4")
        by_device = {"qc/0": InventoryGpu(Device("qc/0", "qc", "CA-QC", t4), 0, "fake")}

        def spec_for(job: Any, chosen: Alternative, indices: tuple[int, ...]) -> LaunchSpec:
            return LaunchSpec(job_id="j", argv=("true",), uid=0, gid=0, gpu_indices=indices,
                              log_dir=tmp_path, expected_duration_s=60.0, region="qc",
                              device_ids=chosen.device_ids, name="j")  # fmt: skip

        later = T0 + timedelta(hours=2)
        held.keep(ledger.job("j"), _hold(later, "qc/0"), by_device, spec_for, T0)
        with capture_logs() as logs:
            for minute, error in ((1, "Socket timed out"), (3, "Socket timed out")):
                executor.error = error  # an outage: the plan leaves Slurm, not taken back
                assert not held.withdraw("j", T0 + timedelta(minutes=minute))
                executor.error = ""  # back: the plan returns, handed over again
                at = T0 + timedelta(minutes=minute + 1)
                held.keep(ledger.job("j"), _hold(later, "qc/0"), by_device, spec_for, at)
        assert len(executor.holds) == 3
        failed = [e["error"] for e in logs if e["event"] == "job_withdraw_failed"]
        assert failed == ["Socket timed out", "Socket timed out"]


def test_a_held_job_its_scheduler_ended_unstarted_by_someone_else_fails_without_a_run(
    tmp_path: Path,
) -> None:
    from daemon.executors.base import EndedUnstarted

    class _Ended(_Reserving):
        def withdraw(self, job_id: str, token: str, now: datetime, *, uid: int) -> Held | None:
            return Held(token, ended=EndedUnstarted("slurm CANCELLED by uid 0", by_owner=False))

    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with ledger.transaction():
            ledger.add_job(job_request("j", T0), 1000, 1000, "queue.jsonl:1", T0)
            ledger.transition("j", "planned", T0, "planned")
            ledger.add_run("j", "fake", ["qc/0"], [0], 60.0, T0)
        held = HeldJobs(ledger, {"fake": _Ended()})  # type: ignore[dict-item]

        assert not held.withdraw("j", T0 + timedelta(minutes=1))

        assert ledger.job("j").state == "failed"
        assert ledger.transitions("j")[-1].reason == (
            "ended in its executor by someone else before it started (slurm CANCELLED by uid 0)"
        )
        assert ledger.run("j") is None and ledger.outcome("j") is None


def test_held_jobs_are_watched_between_plans_and_ended_when_their_scheduler_ended_them(
    tmp_path: Path,
) -> None:
    """A held job its owner ``scancel``-ed in Slurm showed ``planned`` until its plan moved or
    its start came; each watch asks the executor about every held job (with its owner)."""
    from daemon.executors.base import EndedUnstarted

    class _Watching(_Reserving):
        def __init__(self) -> None:
            super().__init__()
            self.asked: list[list[tuple[str, str, int | None]]] = []

        def ended_held(self, held: Sequence[RunHandle], now: datetime) -> dict[str, EndedUnstarted]:
            self.asked.append(sorted((h.job_id, h.token, h.uid) for h in held))
            return {"a": EndedUnstarted("slurm CANCELLED by uid 1000", by_owner=True)}

    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with ledger.transaction():
            for name in ("a", "b"):
                ledger.add_job(job_request(name, T0), 1000, 1000, "queue.jsonl:1", T0)
                ledger.transition(name, "planned", T0, "planned")
                ledger.add_run(name, "fake", ["qc/0"], [0], 60.0, T0)
                ledger.set_run_token(name, "t-" + name)
        executor = _Watching()
        held = HeldJobs(ledger, {"fake": executor})  # type: ignore[dict-item]

        held.watch(T0 + timedelta(minutes=1))

        assert executor.asked == [[("a", "t-a", 1000), ("b", "t-b", 1000)]]
        assert ledger.job("a").state == "cancelled"
        assert ledger.transitions("a")[-1].reason == (
            "ended in its executor by its owner before it started (slurm CANCELLED by uid 1000)"
        )
        assert ledger.run("a") is None and ledger.outcome("a") is None
        assert ledger.job("b").state == "planned" and ledger.run("b") is not None


def test_only_a_job_never_sent_is_handed_over_as_new(tmp_path: Path) -> None:
    """``new`` (the executor skips its accounting, Slurm's sacct) only while nothing of the
    job can have reached the scheduler: not after a hand-over it may have taken (unconfirmed),
    not for a run row a previous daemon wrote; a withdrawn unsent job asks the executor
    nothing."""
    from daemon.executors.errors import ExecutorUnavailableError, LaunchUnconfirmedError

    class _Unconfirmed(_Reserving):
        def __init__(self) -> None:
            super().__init__()
            self.new: list[bool] = []
            self.fail: Exception | None = None
            self.withdrawn: list[str] = []

        def hold(
            self, spec: LaunchSpec, start: datetime, token: str, now: datetime, *,
            new: bool = False,
        ) -> Held:  # fmt: skip
            self.new.append(new)
            if self.fail is not None:
                raise self.fail
            return Held("t")

        def withdraw(self, job_id: str, token: str, now: datetime, *, uid: int) -> Held | None:
            self.withdrawn.append(job_id)
            return None

    t4 = DEFAULT_GPU_CATALOG.get("T4")
    by_device = {"qc/0": InventoryGpu(Device("qc/0", "qc", "CA-QC", t4), 0, "fake")}

    def spec_for(job: Any, chosen: Alternative, indices: tuple[int, ...]) -> LaunchSpec:
        return LaunchSpec(job_id=job.job_id, argv=("true",), uid=0, gid=0, gpu_indices=indices,
                          log_dir=tmp_path, region="qc", device_ids=chosen.device_ids)  # fmt: skip

    later = T0 + timedelta(hours=2)
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with ledger.transaction():
            for job_id in ("a", "b"):
                ledger.add_job(job_request(job_id, T0), 0, 0, "queue.jsonl:1", T0)
        executor = _Unconfirmed()
        held = HeldJobs(ledger, {"fake": executor})  # type: ignore[dict-item]
        executor.fail = LaunchUnconfirmedError("sbatch got no answer")
        held.keep(ledger.job("a"), _hold(later, "qc/0"), by_device, spec_for, T0)
        executor.fail = None
        held.keep(ledger.job("a"), _hold(later, "qc/0"), by_device, spec_for, T0)
        assert executor.new == [True, False]  # the first sbatch may have reached Slurm

        executor.fail = ExecutorUnavailableError("Unable to contact slurm controller")
        held.keep(ledger.job("b"), _hold(later, "qc/0"), by_device, spec_for, T0)
        held.keep(ledger.job("b"), _hold(later, "qc/0"), by_device, spec_for, T0)
        assert executor.new[2:] == [True, True]  # refused: nothing sent
        restarted = HeldJobs(ledger, {"fake": executor})  # type: ignore[dict-item]
        restarted.keep(ledger.job("b"), _hold(later, "qc/0"), by_device, spec_for, T0)
        assert executor.new[4:] == [False]  # a previous daemon's row: it may have sent it
        assert held.withdraw("b", T0) and executor.withdrawn == []  # never sent: dropped
        assert ledger.run("b") is None
