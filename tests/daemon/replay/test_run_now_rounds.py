"""The replay plans every tick, so its run-now copies start at ticks, as its own ``run-now``
starts a job (docs/daemon.md, "How close the run-now counterfactual is": the planning
round): the harness hands the policy its tick (``policies.with_plan_interval``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

from daemon.ledger import Ledger
from daemon.replay.driver import replay_policy
from daemon.replay.inputs import load_setup, parse_duration_s
from daemon.statedir import LEDGER_NAME
from tests.daemon.replay.conftest import replay_inputs


def test_a_queued_copy_starts_at_a_tick_of_the_replay(
    trace: Path, intensity_files: list[Path], tmp_path: Path
) -> None:
    """On one T4 the bursts queue in the run-now world: the copies that wait for the GPU
    start at the first tick at or after the copy before them ends (their starts used to fall
    between ticks, when that copy ended)."""
    one_gpu = tmp_path / "one.toml"
    one_gpu.write_text('[[regions]]\nname = "quebec"\nzone = "CA-QC"\n'
                       'gpus = [{ type = "T4", count = 1 }]\n', encoding="utf-8")  # fmt: skip
    inputs = replace(replay_inputs(trace, one_gpu, intensity_files, 0.1),
                     intensity=(intensity_files[0],))  # fmt: skip
    setup = load_setup(inputs, parse_duration_s("6h"))
    state = tmp_path / "state"
    run = replay_policy(setup, "carbon-window", state_dir=state)
    waited = 0
    with Ledger.open(state / LEDGER_NAME) as ledger:
        for outcome in run.outcomes:
            stored = ledger.counterfactual(outcome.job_id)
            assert stored is not None
            start = datetime.fromisoformat(stored["start"])
            since_s = (start - setup.start).total_seconds()
            assert since_s % setup.tick_s == 0, (outcome.job_id, start)
            waited += (start - outcome.arrival).total_seconds() >= setup.tick_s
    assert waited >= 2  # copies that queued, not only those started at their first round
