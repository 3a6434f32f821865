"""No fitting code reads the held-out v3 measurements (issue 7's calibration discipline).

A static scan: the fitting script, every ``bench`` module it imports (transitively) and the whole
``policies`` package (where the fitted constants live) must not name the v3 file or folder, nor
the v3 reader or the harness that holds the v3 path. And the fit itself refuses v3 rows.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fit_energy import fit
from bench.mlenergy import Measured

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_TEXT = ("mlenergy_v3", "v3_configurations", "leaderboard v3 data")
FORBIDDEN_NAMES = {"read_v3", "HELD_OUT_FILE", "bench.validate_energy", "validate_energy"}


def _bench_imports(path: Path) -> Iterator[Path]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench."):
            yield ROOT / (node.module.replace(".", "/") + ".py")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bench."):
                    yield ROOT / (alias.name.replace(".", "/") + ".py")


def fitting_closure(script: Path) -> list[Path]:
    """``script``, the bench modules it reaches, and every module of ``policies``."""
    seen: list[Path] = []
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        todo.extend(_bench_imports(path))
    return seen + sorted((ROOT / "policies").rglob("*.py"))


def violations(path: Path) -> list[str]:
    """Where ``path`` names the held-out set."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [
                f"{path.name}:{node.lineno} text {t!r}"
                for t in FORBIDDEN_TEXT
                if t in node.value.lower()
            ]
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"{path.name}:{node.lineno} name {node.id}")
        elif isinstance(node, ast.ImportFrom):
            names = {node.module or ""} | {a.name for a in node.names}
            found += [f"{path.name}:{node.lineno} imports {n}" for n in names & FORBIDDEN_NAMES]
    return found


def test_fitting_code_never_names_the_held_out_set() -> None:
    closure = fitting_closure(ROOT / "bench" / "fit_energy.py")
    assert ROOT / "bench" / "mlenergy.py" in closure  # the scan does follow imports
    bad = [v for path in closure for v in violations(path)]
    assert not bad, "fitting code must not read the v3 measurements:\n" + "\n".join(bad)


def test_the_scan_sees_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'from bench.mlenergy import read_v3\nPATH = "llm_energy/mlenergy_v3/x.csv"\nread_v3(PATH)\n'
    )
    assert len(violations(sample)) == 3


def test_the_harness_is_outside_the_closure_but_does_name_v3() -> None:
    """The harness names v3 (it evaluates on it); it must therefore stay out of the fit."""
    assert violations(ROOT / "bench" / "validate_energy.py")


def test_fit_refuses_held_out_rows() -> None:
    row = Measured("v3", "vllm", "gpqa", "Qwen/Qwen3-8B", "qwen3-8b", "H100-SXM", 1, 1, 8, 8.0,
                   300, 8000.0, "bf16", 0.6, 4800.0, 0.01, 490.0, 2)  # fmt: skip
    with pytest.raises(ValueError, match="v2 only"):
        fit([row])
