"""A helper two test modules share lives in a helper module (a module beside them whose name
does not start with ``test_``), never in one test module another imports from: renaming or
moving a helper in its own file must not break a test elsewhere, and importing a test module
runs its module-level setup and puts its tests' names in the importer's namespace
(``test_site_fields_docs.py`` imported ``_cluster`` from ``test_sites.py``; it now comes from
``site_cluster.py``; ``build`` of the measurement tests, the end-to-end submitters, the loop's
recording steps and the ledger's undo scripts moved likewise). That holds for the scripts a
test runs in a child process too; a test module may still import itself there."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imported_modules(tree: ast.AST, package: str) -> Iterator[tuple[str, list[str]]]:
    """``(module, names)`` for each import in ``tree``, relative ones resolved in ``package``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            prefix = ".".join(base) + "." if node.level else ""
            module = prefix + (node.module or "")
            names = [a.name for a in node.names]
            if node.module is None:  # ``from . import test_x``
                yield from ((f"{module}{name}", []) for name in names)
            else:
                yield module, names


def _scripts(tree: ast.AST) -> Iterator[ast.AST]:
    """The module itself and each string constant in it that parses as Python with an import."""
    yield tree
    for node in ast.walk(tree):
        text = node.value if isinstance(node, ast.Constant) else None
        if isinstance(text, str) and "import" in text:
            try:
                yield ast.parse(text)
            except SyntaxError:
                continue


def _test_module_imports(path: Path) -> list[str]:
    """``module.name`` (or ``module``) for each import ``path`` makes from another test module."""
    own = _module_of(path)
    package = own.rsplit(".", 1)[0]
    found = []
    for script in _scripts(ast.parse(path.read_text(encoding="utf-8"))):
        for module, names in _imported_modules(script, package):
            if not module.startswith("tests.") or module == own:
                continue
            if module.rsplit(".", 1)[-1].startswith("test_"):
                found += [f"{module}.{name}" for name in names] or [module]
    return found


def test_no_test_module_imports_from_another_test_module() -> None:
    reaching = {
        path.relative_to(ROOT).as_posix(): names
        for path in sorted(TESTS.rglob("*.py"))
        if (names := _test_module_imports(path))
    }
    assert not reaching, f"move these helpers to a helper module beside them: {reaching}"
