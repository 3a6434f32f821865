"""The bench modules that wrap the daemon's internals for a run (``_PARTS`` timed by
:func:`bench.parts.time_parts`, or a function swapped in by hand) run from their entry point on
a tiny replay: a function renamed or moved stops them here, not at their next manual run."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from bench import decision_churn
from daemon.service import plan_round

BENCH = Path(__file__).resolve().parents[2] / "bench"
TINY = ["--jobs", "40", "--days", "0.01", "--policy", "run-now"]


def _with_parts() -> list[str]:
    """The bench modules that name parts to time (a module-level ``_PARTS``)."""
    return sorted(
        path.stem
        for path in BENCH.glob("*.py")
        if any(
            isinstance(node, ast.AnnAssign | ast.Assign)
            and "_PARTS" in {t.id for t in ast.walk(node) if isinstance(t, ast.Name)}
            for node in ast.parse(path.read_text(encoding="utf-8")).body
        )
    )


def test_the_scan_finds_the_timing_benches() -> None:
    assert {"recording_cost", "service_parts", "policy_parts"} <= set(_with_parts())


@pytest.mark.usefixtures("restore_logging")  # bench_replay configures logging
@pytest.mark.parametrize("name", _with_parts())
def test_each_timing_bench_runs_and_restores_what_it_timed(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = importlib.import_module(f"bench.{name}")
    parts = module._PARTS
    before = [getattr(owner, attr, None) for owner, attr, _ in parts]
    assert all(callable(f) for f in before), [
        label for (_, _, label), f in zip(parts, before, strict=True) if not callable(f)
    ]
    module.main(TINY)
    out = capsys.readouterr().out
    for _, _, label in parts:
        assert f"{label} " in out, f"bench.{name} printed no time for {label}"
    assert [getattr(owner, attr) for owner, attr, _ in parts] == before


@pytest.mark.usefixtures("restore_logging")
def test_decision_churn_counts_the_runs_decisions_and_restores_the_recorder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    recorder = plan_round.record_decisions  # type: ignore[attr-defined]
    decision_churn.main(TINY)
    assert plan_round.record_decisions is recorder  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert "40 decisions stored" in out and "first decision about the job" in out
