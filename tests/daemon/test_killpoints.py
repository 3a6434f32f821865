"""Kill points: ``CARBOND_KILL_AT`` parsing, a process that really dies at its point, and the
kill harness's short profile against the real ``carbond run`` (the long profile, 500 kills, is
``make kill-harness``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from daemon import killpoints
from tests.daemon.killharness import REPO, Session

REACH_TWICE = (
    "from daemon import killpoints\n"
    "killpoints.reached('ingest_line'); print('first', flush=True)\n"
    "killpoints.reached('ingest_done'); print('other point', flush=True)\n"
    "killpoints.reached('ingest_line'); print('second', flush=True)\n"
)


@pytest.mark.parametrize(
    ("value", "target"),
    [
        (None, None),
        ("", None),
        ("ingest_line", ("ingest_line", 1)),
        ("job_exit:3", ("job_exit", 3)),
    ],
)
def test_the_variable_names_a_point_and_a_count(
    value: str | None, target: tuple[str, int] | None
) -> None:
    assert killpoints._target(value) == target


@pytest.mark.parametrize("value", ["nowhere", "job_exit:0", "job_exit:x"])
def test_a_bad_variable_is_refused_at_start_up(value: str) -> None:
    with pytest.raises(ValueError, match=r"^CARBOND_KILL_AT="):
        killpoints._target(value)


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        (None, ["first", "other point", "second"]),
        ("ingest_line:1", []),
        ("ingest_line:2", ["first", "other point"]),
    ],
)
def test_the_process_dies_by_sigkill_at_the_nth_time(value: str | None, printed: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != killpoints.ENV}
    if value:
        env[killpoints.ENV] = value
    done = subprocess.run(
        [sys.executable, "-c", REACH_TWICE],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.stdout.split("\n")[:-1] == printed
    assert done.returncode == (-signal.SIGKILL if value else 0)


def test_every_point_is_placed_in_the_daemon() -> None:
    sources = "".join(p.read_text() for p in (REPO / "daemon").rglob("*.py"))
    for point in killpoints.POINTS:
        assert sources.count(f'killpoints.reached("{point}")') == 1, point


@pytest.mark.slow
def test_short_profile_kills_at_named_points_and_at_random(tmp_path: Path) -> None:
    plan: list[str | None] = [
        "migration:1", "ingest_commit:1", "dispatch_handle:1", "job_exit:1", None,
    ]  # fmt: skip
    tally = Session(tmp_path, seed=13).run_plan(plan)
    assert tally.kills == len(plan)
    assert tally.point_kills["migration"] == 1
    assert sum(tally.point_kills.values()) + tally.missed + tally.outside_kills == len(plan)
    assert tally.checks == len(plan) + 1
