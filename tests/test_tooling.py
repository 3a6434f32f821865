"""The checks STYLE.md promises (ruff and mypy strict on the project's code) cover the same
packages: a package ruff lints but mypy skips gathers type errors nobody sees (``bench/`` had
unused ignores and a ``"None" object is not iterable`` before mypy checked it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _linted() -> set[str]:
    """The directories ``make lint`` runs ``ruff check`` on."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    found = re.search(r"^\t\$\(BIN\)/ruff check (.+)$", makefile, re.MULTILINE)
    assert found, "the Makefile has no `ruff check` line"
    return set(found.group(1).split())


def test_mypy_checks_every_package_ruff_lints_but_the_tests() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    checked = set(config["tool"]["mypy"]["packages"])
    packages = {name for name in _linted() if (ROOT / name / "__init__.py").exists()}
    assert packages - {"tests"} <= checked, f"mypy skips {sorted(packages - {'tests'} - checked)}"
    assert {"forecasts", "policies", "daemon", "bench"} <= packages  # the scan sees them
