"""What other modules import from a :mod:`policies.footprint` module is in its ``__all__``: the
names it offers are the ones it says it offers (STYLE: public surface explicit)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FOOTPRINT = ROOT / "policies" / "footprint"
IMPORTERS = ("daemon", "policies", "forecasts", "bench", "tests")


def _exported(path: Path) -> set[str] | None:
    """The names of ``path``'s ``__all__`` (None: it has none)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return {
                ast.literal_eval(e) for e in ast.walk(node.value) if isinstance(e, ast.Constant)
            }
    return None


@functools.cache
def _imported() -> dict[str, dict[str, set[str]]]:
    """The names the repository's code imports ``from policies.footprint.<module> import``, by
    module, then by importing file."""
    seen: dict[str, dict[str, set[str]]] = {}
    for top in IMPORTERS:
        for path in sorted((ROOT / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.ImportFrom)
                    and node.level == 0
                    and (node.module or "").startswith("policies.footprint.")
                ):
                    names = {a.name for a in node.names if not a.name.startswith("_")}
                    by_file = seen.setdefault(node.module.removeprefix("policies.footprint."), {})
                    by_file.setdefault(str(path.relative_to(ROOT)), set()).update(names)
    return seen


MODULES = sorted(p.stem for p in FOOTPRINT.glob("*.py") if p.name != "__init__.py")


def test_the_scan_sees_the_imports() -> None:
    assert "Estimate" in _imported()["estimator"]["policies/footprint/serving.py"]


@pytest.mark.parametrize("module", MODULES)
def test_every_name_imported_from_a_footprint_module_is_in_its_all(module: str) -> None:
    exported = _exported(FOOTPRINT / f"{module}.py")
    if exported is None:
        pytest.skip(f"policies/footprint/{module}.py has no __all__")
    missing = {
        f"{importer}: {name}"
        for importer, names in _imported().get(module, {}).items()
        for name in names - exported
    }
    assert not missing, (
        f"imported from policies/footprint/{module}.py, not in its __all__: {sorted(missing)}"
    )
