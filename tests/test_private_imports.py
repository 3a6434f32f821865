"""A product module uses no underscored name of another module: a name two modules share is
public where it is defined (and in its ``__all__``), or lives in a module both import.
Renaming a private helper in its own file must not break another module
(``policies/incremental.py`` imported ``planner._allowed`` and ``planner._order``).

Tests may still reach a module's private names (white-box tests of its helpers); this check
covers ``daemon``, ``policies``, ``forecasts`` and ``bench``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("daemon", "policies", "forecasts", "bench")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _imported(tree: ast.AST) -> tuple[list[str], dict[str, str]]:
    """The underscored names ``tree`` imports from project modules (``module.name``), and
    the project module (or name) each other imported local name is bound to."""
    found, modules = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] not in PRODUCT:
                continue
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{node.module}.{alias.name}")
                else:
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PRODUCT:
                    modules[alias.asname or alias.name.split(".")[0]] = alias.name
    return found, modules


def private_uses(path: Path) -> list[str]:
    """``module.name`` for each underscored (not dunder) name of a project module that
    ``path`` imports (``from module import _name``) or reads off an imported module
    (``module._name``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found, modules = _imported(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _private(node.attr):
            continue
        chain, base = [node.attr], node.value
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name) and base.id in modules:
            found.append(".".join([modules[base.id], *reversed(chain)]))
    return found


def test_no_product_module_uses_another_modules_private_names() -> None:
    reaching = {
        path.relative_to(ROOT).as_posix(): names
        for top in PRODUCT
        for path in sorted((ROOT / top).rglob("*.py"))
        if (names := private_uses(path))
    }
    assert not reaching, f"make these public where they are defined (or move them): {reaching}"


def test_the_scan_sees_both_ways_of_reaching_a_private_name(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import os\nfrom daemon import ledger\nfrom policies.planner import _order, allowed\n"
        "from daemon.ledger import _own as own\n"
        "x = ledger._quote(os._exit, allowed._inner, ledger.__name__)\n"
    )
    assert sorted(private_uses(module)) == [
        "daemon.ledger._own",
        "daemon.ledger._quote",
        "policies.planner._order",
        "policies.planner.allowed._inner",
    ]
