"""How a run's exit status becomes a final state and reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from daemon.endings import final_state, never_started
from daemon.executors.base import ExitStatus, NotStarted, RunHandle

NOW = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "cancel", "expected"),
    [
        (ExitStatus("j", NOW, 0), False, ("succeeded", "exit code 0")),
        (ExitStatus("j", NOW, 0), True, ("succeeded", "exit code 0")),
        (ExitStatus("j", NOW, 2), False, ("failed", "exit code 2")),
        (ExitStatus("j", NOW, None, 9), False, ("failed", "killed by signal 9")),
        (
            ExitStatus("j", NOW, None, 15),
            True,
            ("cancelled", "cancelled by its owner while running"),
        ),
        (ExitStatus("j", NOW, None, None, "pid gone"), False, ("failed", "pid gone")),
        (ExitStatus("j", NOW, None), False, ("failed", "outcome unknown")),
    ],
)
def test_final_state(status: ExitStatus, cancel: bool, expected: tuple[str, str]) -> None:
    assert final_state(status, cancel_requested=cancel) == expected


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
