"""A helper two test modules share lives in a helper module (or is public where it is), not
as an underscored name one test module reaches into another for: renaming a private helper
in its own file must not break a test elsewhere (``test_site_fields_docs.py`` imported
``_cluster`` from ``test_sites.py``; it now comes from ``site_cluster.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _private_imports(path: Path) -> list[str]:
    """``module.name`` for each underscored name ``path`` imports from a test module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        if node.module.startswith("tests.") and node.module.rsplit(".", 1)[-1].startswith("test_"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_no_test_module_imports_another_test_modules_private_helpers() -> None:
    reaching = {
        path.relative_to(ROOT).as_posix(): names
        for path in sorted(TESTS.rglob("*.py"))
        if (names := _private_imports(path))
    }
    assert not reaching, f"move these helpers to a helper module (or make them public): {reaching}"
