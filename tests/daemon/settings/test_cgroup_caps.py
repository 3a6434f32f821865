"""``[executors.local] memory_max_bytes``, ``memory_high_bytes``, ``memory_swap_max_bytes``,
``pids_max``: the caps of each local job's cgroup, each problem at its key's line (the caps
in the jobs' cgroups: tests/daemon/executors/test_local_cgroup_caps.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from daemon.assemble import job_caps
from daemon.executors.local_cgroup_caps import JobCaps
from daemon.settings import ConfigError, Settings, load_settings


def test_no_cap_by_default() -> None:
    assert job_caps(Settings().executors.local) == JobCaps()


def test_the_caps_set_are_the_jobs_cgroups_files(tmp_path: Path) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text(
        "[executors.local]\nmemory_max_bytes = 8589934592\nmemory_high_bytes = 6442450944\n"
        "pids_max = 4096\n"
    )
    caps = job_caps(load_settings(config).executors.local)
    assert caps.files() == {
        "memory.max": 8589934592,
        "memory.high": 6442450944,
        "memory.swap.max": 0,
        "pids.max": 4096,
    }


def test_each_bad_cap_is_one_problem_at_its_keys_line(tmp_path: Path) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text(
        '[executors.local]\ngrace_s = 5\nmemory_max_bytes = "8G"\nmemory_high_bytes = 1024\n'
        "pids_max = 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.problems == [
        f"{config}:3: executors.local.memory_max_bytes: must be a whole number of bytes of "
        "at least 1048576 (leave it out for no cap), got '8G'",
        f"{config}:4: executors.local.memory_high_bytes: must be a whole number of bytes of "
        "at least 1048576 (leave it out for no cap), got 1024",
        f"{config}:5: executors.local.pids_max: must be a whole number from 2 to 4194304 "
        "(leave it out for no cap), got 1",
    ]


def test_memory_high_above_memory_max_is_refused_at_its_line(tmp_path: Path) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text(
        "[executors.local]\nmemory_high_bytes = 3221225472\nmemory_max_bytes = 2147483648\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    (problem,) = info.value.problems
    assert problem.startswith(
        f"{config}:2: executors.local.memory_high_bytes: 3221225472 is above "
        "memory_max_bytes (2147483648)"
    ), problem


def _caps(tmp_path: Path, lines: str) -> JobCaps:
    config = tmp_path / "carbond.toml"
    config.write_text(f"[executors.local]\n{lines}")
    return job_caps(load_settings(config).executors.local)


def test_memory_max_alone_lets_no_job_swap_past_it(tmp_path: Path) -> None:
    """With swap on, memory.max bounds a job's RAM only: it went on into swap, past
    memory_max_bytes. Left out, memory_swap_max_bytes is 0 where memory_max_bytes is set."""
    caps = _caps(tmp_path, "memory_max_bytes = 8589934592\n")
    assert caps.files() == {"memory.max": 8589934592, "memory.swap.max": 0}
    assert caps.describe() == "memory.max 8589934592, memory.swap.max 0"


def test_memory_swap_max_is_the_jobs_memory_swap_max(tmp_path: Path) -> None:
    caps = _caps(tmp_path, "memory_max_bytes = 8589934592\nmemory_swap_max_bytes = 1073741824\n")
    assert caps.files() == {"memory.max": 8589934592, "memory.swap.max": 1073741824}
    # alone: swap capped, RAM not
    assert _caps(tmp_path, "memory_swap_max_bytes = 0\n").files() == {"memory.swap.max": 0}
    assert _caps(tmp_path, "pids_max = 64\n").files() == {"pids.max": 64}  # no memory cap


def test_a_bad_memory_swap_max_is_a_problem_at_its_line(tmp_path: Path) -> None:
    config = tmp_path / "carbond.toml"
    for value in ("-1", '"1G"', "true", "1.5"):
        config.write_text(f"[executors.local]\ngrace_s = 5\nmemory_swap_max_bytes = {value}\n")
        with pytest.raises(ConfigError) as info:
            load_settings(config)
        assert info.value.problems == [
            f"{config}:3: executors.local.memory_swap_max_bytes: must be a whole number of "
            f"bytes of at least 0 (0: no swap), got {tomllib.loads(f'v = {value}')['v']!r}"
        ]
