"""Product modules stay small (STYLE.md: one module per concept; past about 400 lines, ask
whether it is two things). Every module of the three packages and bench/ is at most 400 lines:
one that grows past it is split by concept, not left to grow (the last ones split were
``daemon/executors/slurm/executor.py``, 409 lines, and ``daemon/cli/jobs_cmds.py``, 404)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("forecasts", "policies", "daemon", "bench")
MAX_LINES = 400


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_past_400_lines(package: str) -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert sizes, f"no modules found under {package}"
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}, "split by concept"
