"""No module of the package but the service's own (``core.py``) reaches into a
:class:`~daemon.service.Service`'s private attributes (``service._endings``).

A module that needs more of the service's state asks for it in the open (a parameter, a
public read-only property, an object of its own that the service holds, as
:class:`daemon.service.problems.Problems` holds the health keys it set, or the parts a step
uses handed over: :class:`daemon.service.plan_round.RoundParts`,
:class:`daemon.service.reconcile.ReconcileParts`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[3] / "daemon" / "service"

MODULES = sorted(p.name for p in SERVICE.glob("*.py") if p.name not in {"__init__.py", "core.py"})


def _reaches(source: str) -> set[str]:
    """The private attributes read or written through a parameter annotated ``Service``."""
    tree = ast.parse(source)
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
    source = (
        "def check(service: Service, now: datetime, *, other: Service) -> None:\n"
        "    service._finish(service.ledger, now)\n"
        "    other._endings.stops.stop()\n"
        "    service._held = None\n"
    )
    assert _reaches(source) == {"_finish", "_endings", "_held"}


@pytest.mark.parametrize("module", MODULES)
def test_no_module_reaches_into_the_service(module: str) -> None:
    found = _reaches((SERVICE / module).read_text(encoding="utf-8"))
    assert not found, f"daemon/service/{module} reaches into Service's {sorted(found)}"
