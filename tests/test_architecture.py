"""The layout rules of DESIGN.md, enforced by walking every module's AST.

- ``forecasts`` imports nothing of ours; ``policies`` imports only ``forecasts``;
  ``daemon`` may import both (``forecasts <- policies <- daemon``).
- ``policies`` is the pure core: no I/O, clock-reading or logging library.
- APScheduler is imported by exactly one module, and ``pynvml`` by exactly one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("forecasts", "policies", "daemon")
ALLOWED = {
    "forecasts": set(),
    "policies": {"forecasts"},
    "daemon": {"forecasts", "policies"},
}
POLICIES_FORBIDDEN = {
    "requests",
    "pynvml",
    "apscheduler",
    "structlog",
    "subprocess",
    "sqlite3",
    "socket",
    "logging",
    "urllib",
    "http",
    "os",
    "shutil",
    "threading",
    "time",
}


def _modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package: str) -> None:
    ours = set(PACKAGES)
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules(package)
        for name in _imports(path)
        if (top := name.split(".")[0]) in ours and top != package and top not in ALLOWED[package]
    ]
    assert not bad, "import direction is forecasts <- policies <- daemon:\n" + "\n".join(bad)


def test_policies_is_pure() -> None:
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules("policies")
        for name in _imports(path)
        if name.split(".")[0] in POLICIES_FORBIDDEN
    ]
    assert not bad, "policies must not do I/O, read clocks or log:\n" + "\n".join(bad)


@pytest.mark.parametrize("library", ["apscheduler", "pynvml"])
def test_library_confined_to_one_module(library: str) -> None:
    users = {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in _modules(package)
        for name in _imports(path)
        if name.split(".")[0] == library
    }
    assert len(users) <= 1, f"{library} must be imported by one module only, found {sorted(users)}"


def test_the_architecture_test_sees_violations(tmp_path: Path) -> None:
    """The walker itself must notice an import; otherwise the tests above prove nothing."""
    sample = tmp_path / "sample.py"
    sample.write_text("import daemon.cli\nfrom policies.errors import PoliciesError\n")
    assert list(_imports(sample)) == ["daemon.cli", "policies.errors"]
