"""``[executors.local.limits]``: the resource limits of each local job, each problem at its key's
line (the wrapper that sets them: tests/daemon/executors/test_local_job_limits.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.settings import ConfigError, Settings, load_settings


def _load(tmp_path: Path, text: str) -> dict[str, int]:
    config = tmp_path / "carbond.toml"
    config.write_text(text)
    return load_settings(config).executors.local.limits.as_rlimits()


def test_core_dumps_are_off_by_default_and_the_rest_is_the_daemons() -> None:
    assert Settings().executors.local.limits.as_rlimits() == {"core_bytes": 0}


def test_a_table_or_an_inline_table_with_unlimited(tmp_path: Path) -> None:
    text = '[executors.local]\nlimits = {nproc = 4096, core_bytes = "unlimited"}\n'
    assert _load(tmp_path, text) == {"nproc": 4096, "core_bytes": -1}
    text = "[executors.local.limits]\nnofile = 65536\nfsize_bytes = 1000000\n"
    assert _load(tmp_path, text) == {"nofile": 65536, "fsize_bytes": 1000000, "core_bytes": 0}


def test_each_bad_limit_is_one_problem_at_its_keys_line(tmp_path: Path) -> None:
    text = '[executors.local.limits]\nnproc = 0\nnofile = "many"\ncore_bytes = -1\nmemory = 1\n'
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    problems = "\n".join(info.value.problems)
    config = tmp_path / "carbond.toml"
    for line, key, got in ((2, "nproc", "0"), (3, "nofile", "'many'"), (4, "core_bytes", "-1")):
        assert f"{config}:{line}: executors.local.limits.{key}: " in problems
        assert f'or "unlimited" (leave it out for the daemon\'s own limit), got {got}' in problems
    assert f"{config}:5: executors.local.limits.memory" in problems
    assert len(info.value.problems) == 4, problems
