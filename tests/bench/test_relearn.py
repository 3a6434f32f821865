"""bench.bench_relearn: a ledger of copied daemon rows, relearned as a restart does."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_relearn import main
from bench.relearn_ledger import REGIONS, TEMPLATE, build_ledger
from daemon.inventory import build_inventory
from daemon.learning.factors import measured_history
from daemon.ledger import Ledger


def test_the_ledger_holds_the_copies_oldest_first(tmp_path: Path) -> None:
    build_ledger(tmp_path / "ledger.db", 20)
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        assert ledger.counts_by_state() == {"succeeded": 18, "failed": 2}  # one a template
        history = list(measured_history(ledger, build_inventory(REGIONS)))
        ids = [job.job_id for job, *_ in history]
        assert ids[:3] == ["c0-t0", "c0-t1", "c0-t2"] and ids[-1] == "c2-t3"
        assert len(ids) == 18 and ledger.job("c2-t3").request.job_id == "c2-t3"
        first, later = ledger.job("c0-t0"), ledger.job("c1-t0")
        assert later.submitted_at > first.submitted_at
        assert later.request.model == first.request.model


@pytest.mark.usefixtures("restore_logging")  # the bench configures logging
def test_main_prints_the_timing_and_the_factors(capsys: pytest.CaptureFixture[str]) -> None:
    result = main(["--jobs", "20", "--repeat", "1", "--tail", "10"])
    runs = [TEMPLATE[n % len(TEMPLATE)] for n in range(20)]
    succeeded = sum(1 for run in runs if run[-1] == 0)
    on_a100 = sum(1 for run in runs if run[1:3] == ("llama-3.1-8b", "A100-80GB") and not run[-1])
    assert (result.jobs, result.folded) == (20, succeeded)
    assert result.cpu_s > 0.0 and result.start_cpu_s > 0.0
    out = capsys.readouterr().out
    assert f"{succeeded} runs folded from 20 finished jobs" in out
    assert f"llama-3.1-8b on A100-80GB: {on_a100} runs, energy x" in out
    assert "peak RSS of a process that opens the ledger and relearns: " in out
    tail_runs = sum(1 for n in range(20, 30) if TEMPLATE[n % len(TEMPLATE)][-1] == 0)
    assert (
        f"restart with a checkpoint of the 20 jobs and 10 jobs after it ({tail_runs} runs "
        "folded)" in out
    )
    assert "the same 30 jobs folded from scratch: " in out
