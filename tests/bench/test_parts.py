"""bench.parts: CPU time inside named functions of a bench_replay run, originals restored."""

from __future__ import annotations

import pytest

from bench.parts import time_parts
from daemon.ledger import Ledger
from policies.builtin import run_now


@pytest.mark.usefixtures("restore_logging")  # bench_replay configures logging
def test_time_parts_counts_the_named_calls_and_restores_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_jobs, plan = Ledger.add_jobs, run_now.RunNow.plan
    calls: list[int] = []
    original = Ledger.add_jobs

    def counted(self: Ledger, *args: object, **kwargs: object) -> None:
        calls.append(1)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    Ledger.add_jobs = counted  # type: ignore[method-assign]
    try:
        spent = time_parts(
            ((Ledger, "add_jobs", "submissions"), (run_now.RunNow, "plan", "policy")),
            ["--jobs", "40", "--days", "0.01", "--policy", "run-now"],
        )
        assert Ledger.add_jobs is counted  # the wrapper is gone after the run
    finally:
        Ledger.add_jobs = add_jobs  # type: ignore[method-assign]
    assert run_now.RunNow.plan is plan
    assert calls  # the timed wrapper called through to the function
    assert set(spent) == {"submissions", "policy"}
    assert spent["policy"] > 0.0
    out = capsys.readouterr().out
    assert "run-now:" in out and "submissions " in out and "policy " in out
