"""``carbond doctor``'s ``wrapper`` line checks ``[executors.local.limits]`` against the
daemon's hard limits: a value above one is that limit at each job's start (the wrapper cannot
raise a hard limit), said only in the job's stderr; until 2026-12-07 doctor passed it."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.doctor.checks import run_checks
from daemon.doctor.wrapper import hard_limits
from daemon.ledger import Ledger
from daemon.queue.ingest import Queue

CONFIG = """
state_dir = "{state}"
[policy]
name = "run-now"
[[regions]]
name = "qc"
zone = "CA-QC"
executor = "{executor}"
gpus = ["T4"]
[executors.local.limits]
core_bytes = 0
nofile = {nofile}
"""
# the line of CONFIG that sets nofile
_NOFILE_LINE = next(n for n, line in enumerate(CONFIG.splitlines(), 1) if line.startswith("nofile"))


def _setup(tmp_path: Path, nofile: int | str, executor: str = "local") -> tuple[Path, Path]:
    state = tmp_path / "state"
    with Ledger.open(state / "ledger.db") as ledger:
        Queue(state, ledger).prepare()
    config = tmp_path / "carbond.toml"
    value = f'"{nofile}"' if isinstance(nofile, str) else nofile
    config.write_text(CONFIG.format(state=state, executor=executor, nofile=value))
    return state, config


def _wrapper_line(config: Path) -> str:
    checks = {c.name: f"{c.status}: {c.detail}" for c in run_checks(config, datetime.now(UTC))}
    return checks["wrapper"]


def _hard_nofile() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard != resource.RLIM_INFINITY  # Linux caps open files (fs.nr_open)
    return hard


def test_a_limit_above_the_hard_limit_fails_naming_key_value_and_limit(tmp_path: Path) -> None:
    hard = _hard_nofile()
    _, config = _setup(tmp_path, hard + 1)

    line = _wrapper_line(config)

    assert line.startswith(
        f"fail: {config}:{_NOFILE_LINE}: executors.local.limits.nofile: {hard + 1} is above "
        f"the daemon's hard limit {hard} (doctor's own: no running daemon here to ask): each "
        f"local job gets {hard} "
    ), line
    assert "LimitNOFILE=" in line
    assert "core_bytes" not in line  # 0 is within any hard limit
    assert "-I -m daemon.executors.wrapper" in line  # the rest of the line as before


@pytest.mark.parametrize("nofile", ["at", "unlimited"])
def test_a_limit_at_the_hard_limit_or_unlimited_passes(tmp_path: Path, nofile: str) -> None:
    _, config = _setup(tmp_path, _hard_nofile() if nofile == "at" else nofile)

    assert _wrapper_line(config).startswith("pass: ")


def test_limits_are_not_checked_when_no_region_runs_jobs_locally(tmp_path: Path) -> None:
    _, config = _setup(tmp_path, _hard_nofile() + 1, executor="simulated")

    assert _wrapper_line(config).startswith("pass: ")


def test_the_hard_limits_of_a_process_are_read_from_proc() -> None:
    found, whose = hard_limits(os.getpid())

    assert whose == f"the running daemon's, pid {os.getpid()}"
    assert found == {
        "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[1],
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "core_bytes": resource.getrlimit(resource.RLIMIT_CORE)[1],
        "fsize_bytes": resource.getrlimit(resource.RLIMIT_FSIZE)[1],
    }


# A stand-in for a running daemon under a unit with a lower LimitNOFILE=: it holds the ledger
# open and writes health.json as the daemon does, under the hard limit it was started with.
_RUNNING = """
import resource, sys
low = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (low, low))  # as the unit's LimitNOFILE= would
from datetime import UTC, datetime
from pathlib import Path
from daemon.supervision.health import Health
state = Path(sys.argv[1])
ledger = open(state / "ledger.db", "rb")
Health().write(state / "health.json", datetime.now(UTC))
print("up", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, Path, int]]:
    """``(state, config, hard)``: a daemon stand-in running on ``state`` with hard limit
    ``hard`` on open files, below this process's; ``config`` asks each job for one more."""
    low = min(_hard_nofile() - 1, 4096)
    state, config = _setup(tmp_path, low + 1)
    with subprocess.Popen(
        [sys.executable, "-c", _RUNNING, str(state), str(low)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "up\n"
        yield state, config, low
        proc.stdin.close()


def test_a_running_daemon_s_own_hard_limit_is_the_one_checked(
    running: tuple[Path, Path, int],
) -> None:
    """Doctor from a shell has the shell's limits; the daemon has its unit's."""
    _, config, low = running

    line = _wrapper_line(config)

    found = re.search(r"is above the daemon's hard limit (\d+) \(the running daemon's, pid \d+\)",
                      line)  # fmt: skip
    assert line.startswith(f"fail: {config}:{_NOFILE_LINE}: executors.local.limits.nofile: "
                           f"{low + 1} is above"), line  # fmt: skip
    assert found is not None and int(found[1]) == low, line
