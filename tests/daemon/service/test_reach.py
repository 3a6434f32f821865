"""Which private attributes of a :class:`~daemon.service.Service` the package's other modules
reach into (``service._forecasts``): no more than they do today, none in a new module.

A module that needs more of the service's state asks for it in the open (a parameter, a
public read-only property, an object of its own that the service holds, as
:class:`daemon.service.problems.Problems` holds the health keys it set). The lists below only
shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[3] / "daemon" / "service"

# The reaches left, by module (a parameter annotated ``Service`` followed by ``._name``).
KNOWN: dict[str, set[str]] = {
    "gpus.py": {"_endings", "_finish"},
    "succession.py": {"_finish"},
}  # fmt: skip

MODULES = sorted(p.name for p in SERVICE.glob("*.py") if p.name not in {"__init__.py", "core.py"})


def _reaches(path: Path) -> set[str]:
    """The private attributes read or written through a parameter annotated ``Service``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    services = {
        arg.arg
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)
        if isinstance(arg.annotation, ast.Name) and arg.annotation.id == "Service"
    }
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in services
        and node.attr.startswith("_")
    }


def test_the_scan_sees_the_reaches() -> None:
    assert _reaches(SERVICE / "gpus.py") >= {"_endings", "_finish"}


@pytest.mark.parametrize("module", sorted(KNOWN))
def test_the_lists_name_only_the_reaches_left(module: str) -> None:
    gone = KNOWN[module] - _reaches(SERVICE / module)
    assert not gone, f"daemon/service/{module} no longer reaches {sorted(gone)}: drop them"


@pytest.mark.parametrize("module", MODULES)
def test_no_module_reaches_further_into_the_service(module: str) -> None:
    new = _reaches(SERVICE / module) - KNOWN.get(module, set())
    assert not new, f"daemon/service/{module} reaches into Service's {sorted(new)}"
