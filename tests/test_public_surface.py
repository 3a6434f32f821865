"""What one module of the project imports from another is in that module's ``__all__``: the
names a module offers are the ones it says it offers (STYLE: public surface explicit). A name
missing from ``__all__`` reads as private, so whoever changes it believes nothing else uses
it. Underscored names are private by their spelling and not checked here; a module without
``__all__`` is not checked either."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("daemon", "policies", "forecasts")
IMPORTERS = (*PACKAGES, "bench", "tests")


def _module_file(module: str, root: Path = ROOT) -> Path | None:
    """The file of ``module`` (``a.b``: ``a/b.py`` or ``a/b/__init__.py``), None if neither."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@functools.cache
def _exported(path: Path) -> frozenset[str] | None:
    """The names of ``path``'s ``__all__`` (None: it has none)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            assert isinstance(node, ast.Assign)
            return frozenset(
                ast.literal_eval(e) for e in ast.walk(node.value) if isinstance(e, ast.Constant)
            )
    return None


def unlisted_imports(root: Path, importers: tuple[str, ...]) -> list[str]:
    """``importer: module.name`` for each name that a file under ``importers`` imports
    (``from module import name``, absolute) from a project module whose ``__all__`` lacks it;
    a submodule imported from its package is not a name the package offers."""
    found = []
    for top in importers:
        for path in sorted((root / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                if node.module.split(".")[0] not in PACKAGES:
                    continue
                source = _module_file(node.module, root)
                exported = _exported(source) if source is not None else None
                if exported is None:
                    continue
                for alias in node.names:
                    name = alias.name
                    if name.startswith("_") or name == "*" or name in exported:
                        continue
                    if _module_file(f"{node.module}.{name}", root) is not None:
                        continue  # a submodule
                    found.append(f"{path.relative_to(root)}: {node.module}.{name}")
    return found


def test_every_name_imported_from_a_project_module_is_in_its_all() -> None:
    missing = unlisted_imports(ROOT, IMPORTERS)
    assert not missing, f"imported, not in the module's __all__: {missing}"


def test_the_scan_sees_an_unlisted_import(tmp_path: Path) -> None:
    (tmp_path / "daemon").mkdir()
    (tmp_path / "daemon" / "__init__.py").write_text("")
    (tmp_path / "daemon" / "a.py").write_text('__all__ = ["shown"]\nshown = hidden = 1\n')
    (tmp_path / "daemon" / "b.py").write_text(
        "from daemon import a\nfrom daemon.a import _own, hidden, shown\n"
    )
    assert unlisted_imports(tmp_path, ("daemon",)) == ["daemon/b.py: daemon.a.hidden"]


@pytest.mark.parametrize("package", PACKAGES)
def test_the_scan_finds_the_packages(package: str) -> None:
    assert _module_file(package) == ROOT / package / "__init__.py"


# Modules whose __all__ still offers names defined elsewhere (daemon/executors/slurm waits for
# the work going on there): each leaves the list when its importers take the names from where
# they are defined (the check fails while a listed entry is not needed).
STILL_RE_EXPORTING = {
    "daemon/executors/slurm/acct.py": {"LOST"},
}  # fmt: skip


def _bound_names(tree: ast.Module) -> set[str]:
    """The names ``tree`` binds at module level other than by importing them (definitions and
    assignments, also under a module-level ``if`` or ``try``)."""
    names: set[str] = set()
    for top in tree.body:
        for node in ast.walk(top) if isinstance(top, ast.If | ast.Try) else [top]:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names |= {
                    n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)
                }
            elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(
                node.target, ast.Name
            ):
                names.add(node.target.id)
    return names


def re_exported(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Per module (not a package ``__init__``) under ``packages``, the names its ``__all__``
    lists that it does not define (it imports them)."""
    found = {}
    for top in packages:
        for path in sorted((root / top).rglob("*.py")):
            exported = _exported(path)
            if path.name == "__init__.py" or not exported:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            if names := set(exported - _bound_names(tree)):
                found[path.relative_to(root).as_posix()] = names
    return found


def test_a_modules_all_lists_only_the_names_it_defines() -> None:
    """A name offered by two modules has two places to be imported from, and the one that only
    imports it cannot change it (``ledger/store.py`` offered ``LedgerError``); a package's
    ``__init__`` is where a package offers names from its modules."""
    found = re_exported(ROOT, (*PACKAGES, "bench"))
    new = {path: names for path, names in found.items() if STILL_RE_EXPORTING.get(path) != names}
    assert not new, f"import these from the module that defines them: {new}"
    gone = sorted(STILL_RE_EXPORTING.keys() - found.keys())
    assert not gone, f"these no longer re-export: drop them from STILL_RE_EXPORTING: {gone}"


def test_the_re_export_scan_sees_an_imported_name(tmp_path: Path) -> None:
    (tmp_path / "daemon").mkdir()
    (tmp_path / "daemon" / "__init__.py").write_text('from daemon.b import x\n__all__ = ["x"]\n')
    (tmp_path / "daemon" / "a.py").write_text("x = 1\n")
    (tmp_path / "daemon" / "b.py").write_text(
        'from daemon.a import x\n__all__ = ["x", "y", "Z"]\ny = 2\nif x:\n    class Z: ...\n'
    )
    assert re_exported(tmp_path, ("daemon",)) == {"daemon/b.py": {"x"}}
