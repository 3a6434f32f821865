"""The Slurm executor when Slurm does not answer (a stopped controller, a hung slurmdbd, a
command that times out, an ``sbatch`` without an answer), against the fake Slurm of
:mod:`tests.daemon.executors.fake_slurm`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.executors.base import RunHandle
from daemon.executors.errors import (
    ExecutorUnavailableError,
    LaunchUnconfirmedError,
)
from daemon.executors.slurm import CommandResult, SlurmExecutor, Target
from daemon.executors.slurm.queries import Token
from daemon.executors.slurm.runner import SlurmUnavailableError
from policies import Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import (
    RECORDED,
    T0,
    FakeSlurm,
    launch_spec,
    slurm_executor,
)


def _tools(calls: Sequence[tuple[str, ...]]) -> list[str]:
    return [c[0] + (" " + c[-1] if c[0] == "scontrol" else "") for c in calls]


def test_a_stopped_controller_is_asked_once_a_round_then_only_pinged_until_it_answers(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    devices = [Device(f"qc/{i}", "qc", "Z", DEFAULT_GPU_CATALOG.get("T4")) for i in range(2)]
    handle = executor.launch(launch_spec(tmp_path), T0)
    slurm.stopped, slurm.calls = True, []  # slurmctld stopped: 9-18 s per command for real

    # one round (one `now`): the first command finds it down; nothing else is run
    assert not any(d.available for d in executor.available(devices, T0))
    for ask in (
        lambda: executor.poll([handle], T0),
        lambda: executor.cancel(handle, T0),
        lambda: executor.launch(replace(launch_spec(tmp_path), job_id="j2"), T0),
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
    executor = slurm_executor(slurm)
    done = executor.launch(launch_spec(tmp_path), T0)
    next(iter(slurm.jobs.values())).state = "GONE"  # ended: its end is sacct's
    slurm.dbd_hung, slurm.calls = True, []

    assert executor.poll([done], T0) == []  # its end waits
    launched = executor.launch(replace(launch_spec(tmp_path), job_id="j2"), T0)  # the controller is
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
    executor = slurm_executor(slurm)
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
        executor.launch(launch_spec(tmp_path), T0)


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
    executor = slurm_executor(slurm)
    with pytest.raises(ExecutorUnavailableError) as caught:
        executor.launch(launch_spec(tmp_path), T0)
    assert isinstance(caught.value, LaunchUnconfirmedError) is unconfirmed


def test_an_outage_ends_when_slurm_answers_though_this_host_cannot_run_scontrol_to_ping(
    tmp_path: Path,
) -> None:
    """During an outage each due command is preceded by ``scontrol ping``; where this host
    could not run ``scontrol`` (gone from ``bin_dir``) the ping counted as the controller
    still down, so no command ran again and the outage (``slurm``: controller unreachable)
    never ended, though squeue answered. The command now asks for itself, ends the outage,
    and the missing scontrol is what health.json names."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    handle = executor.launch(launch_spec(tmp_path), T0)
    slurm.stopped = True
    with pytest.raises(SlurmUnavailableError, match="unreachable"):
        executor.poll([handle], T0)
    assert executor.problems().keys() == {"slurm"}

    slurm.stopped, slurm.missing, slurm.calls = False, frozenset({"scontrol"}), []
    assert executor.poll([handle], T0 + timedelta(seconds=10)) == []  # asked: still running
    assert _tools(slurm.calls) == ["scontrol ping", "squeue"]
    assert executor.problems().keys() == {"slurm_command:scontrol"}
    assert executor.problems()["slurm_command:scontrol"].startswith(
        "cannot run scontrol on this host (scontrol: No such file or directory; "
        "executors.slurm.bin_dir)"
    )
