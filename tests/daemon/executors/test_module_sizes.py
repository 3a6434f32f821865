"""The executors' and settings' modules stay small (STYLE: one module per concept, past
about 400 lines ask whether it is two things): a module that grew past that is split by
concept, not left to grow."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MAX_LINES = 400


@pytest.mark.parametrize("package", ["daemon/executors", "daemon/settings"])
def test_no_module_is_past_400_lines(package: str) -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert sizes, f"no modules found under {package}"
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}
