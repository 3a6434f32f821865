"""How a run's exit status becomes a final state and reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from daemon.endings.rules import final_state, never_started
from daemon.executors.base import ExitStatus, NotStarted, RunHandle

NOW = datetime(2024, 6, 1, tzinfo=UTC)
ASKED = NOW - timedelta(seconds=5)  # the owner's cancel request, read before the run ended
OOM = "out of memory: the OOM killer killed 1 of its processes at its cgroup's memory.max"


@pytest.mark.parametrize(
    ("status", "cancel", "expected"),
    [
        (ExitStatus("j", NOW, 0), None, ("succeeded", "exit code 0")),
        # asked, but it ran to its end (exit 0) before the cancel was sent: all its work done
        (ExitStatus("j", NOW, 0), ASKED, ("succeeded", "exit code 0")),
        (ExitStatus("j", NOW, 2), None, ("failed", "exit code 2")),
        (ExitStatus("j", NOW, None, 9), None, ("failed", "killed by signal 9")),
        (
            ExitStatus("j", NOW, None, 15),
            ASKED,
            ("cancelled", "cancelled by its owner while running"),
        ),
        (  # sacct's End is cut to the second: the same second as the request counts
            ExitStatus("j", NOW, None, 15, end_to_second=True),
            NOW + timedelta(seconds=0.9),
            ("cancelled", "cancelled by its owner while running"),
        ),
        (  # ... but not the next one
            ExitStatus("j", NOW, None, 15, end_to_second=True),
            NOW + timedelta(seconds=1),
            ("failed", "killed by signal 15"),
        ),
        (  # a local run's end is exact: killed 0.3 s before its owner's request was read
            ExitStatus("j", NOW, None, 15),
            NOW + timedelta(seconds=0.3),
            ("failed", "killed by signal 15"),
        ),
        (  # the request read a microsecond before the end
            ExitStatus("j", NOW, 1),
            NOW - timedelta(microseconds=1),
            ("cancelled", "cancelled by its owner while running"),
        ),
        # it had failed on its own before its owner asked: failed, with its exit code
        (ExitStatus("j", ASKED, 2), NOW, ("failed", "exit code 2")),
        (ExitStatus("j", NOW, None, None, "pid gone"), None, ("failed", "pid gone")),
        # the wrapper's words on a command it could not run: which one, and why
        (
            ExitStatus("j", NOW, 127, None, "command not found: vllm"),
            None,
            ("failed", "exit code 127: command not found: vllm"),
        ),
        (
            ExitStatus("j", NOW, 126, None, "cannot start: [Errno 13] Permission denied"),
            None,
            ("failed", "exit code 126: cannot start: [Errno 13] Permission denied"),
        ),
        (ExitStatus("j", NOW, 127), None, ("failed", "exit code 127")),  # no words
        (ExitStatus("j", NOW, 2, None, "1 process(es) ..."), None, ("failed", "exit code 2")),
        (ExitStatus("j", NOW, None), None, ("failed", "outcome unknown")),
        # the OOM killer at the job's own memory cap (the local executor's cgroup): said, not
        # just "killed by signal 9", which any SIGKILL is
        (
            ExitStatus("j", NOW, None, 9, "killed by SIGKILL; " + OOM, out_of_memory=OOM),
            None,
            ("failed", f"killed by signal 9; {OOM}"),
        ),
        (  # a child killed, the job failing after it
            ExitStatus("j", NOW, 1, None, OOM, out_of_memory=OOM),
            None,
            ("failed", f"exit code 1; {OOM}"),
        ),
        (ExitStatus("j", NOW, 0, None, OOM, out_of_memory=OOM), None, ("succeeded", "exit code 0")),
        # its owner's own scancel of the Slurm job (not carbond cancel): cancelled, not failed
        (
            ExitStatus(
                "j", NOW, None, None, "slurm CANCELLED by uid 1000", cancelled_by_owner=True
            ),
            None,
            ("cancelled", "cancelled by its owner in its executor (slurm CANCELLED by uid 1000)"),
        ),
        (  # carbond cancel asked first: its reason
            ExitStatus("j", NOW, None, None, "slurm CANCELLED by uid 0", cancelled_by_owner=True),
            ASKED,
            ("cancelled", "cancelled by its owner while running"),
        ),
    ],
)
def test_final_state(
    status: ExitStatus, cancel: datetime | None, expected: tuple[str, str]
) -> None:
    assert final_state(status, cancel_requested_at=cancel) == expected


@pytest.mark.parametrize(
    ("item", "tokenless", "expected"),
    [
        (NotStarted("j", NOW, None, None, "claimed"), set(), True),
        (ExitStatus("j", NOW, None, None, "never started: no spec"), {"j"}, True),
        (ExitStatus("j", NOW, None, None, "never started: no spec"), set(), False),
        (ExitStatus("j", NOW, 1, None, "never started"), {"j"}, False),
        (RunHandle("j", "local", "t", NOW), {"j"}, False),
    ],
)
def test_never_started(item: RunHandle | ExitStatus, tokenless: set[str], expected: bool) -> None:
    assert never_started(item, tokenless) is expected


SENT = ASKED + timedelta(seconds=2)  # the reconcile after the request sent the cancel


@pytest.mark.parametrize(
    ("status", "sent", "expected"),
    [
        # it trapped the SIGTERM and exited 0: still stopped by its owner (as Slurm says)
        (ExitStatus("j", NOW, 0), SENT,
         ("cancelled", "cancelled by its owner while running (it exited 0)")),
        # it had ended on its own before the cancel was sent
        (ExitStatus("j", SENT - timedelta(seconds=2), 0), SENT, ("succeeded", "exit code 0")),
        # ... also 0.4 s before (a local run's end is exact)
        (ExitStatus("j", SENT - timedelta(seconds=0.4), 0), SENT, ("succeeded", "exit code 0")),
        # an end cut to the second (sacct) in the second the cancel was sent: stopped by it
        (ExitStatus("j", SENT, 0, end_to_second=True), SENT + timedelta(seconds=0.5),
         ("cancelled", "cancelled by its owner while running (it exited 0)")),
        (ExitStatus("j", NOW, 0), None, ("succeeded", "exit code 0")),
        # a non-zero end after the request is the owner's cancel, sent or not
        (ExitStatus("j", NOW, None, 15), SENT,
         ("cancelled", "cancelled by its owner while running")),
    ],
)  # fmt: skip
def test_an_exit_0_is_a_cancel_only_once_the_cancel_was_sent(
    status: ExitStatus, sent: datetime | None, expected: tuple[str, str]
) -> None:
    assert final_state(status, cancel_requested_at=ASKED, cancel_sent_at=sent) == expected
