"""A run-now copy that starts after its job ended (it waited for a GPU the job did not wait
for) is priced at the held forecast over its own window, its start to the microsecond and its
duration as the run turned out (daemon/accounting/run_now_priced.py), not at the price stored
with its decision: the forecast then, from the first 15-minute slot of the planner's grid at or
after its start, for its predicted duration."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daemon.intensity.providers import EmbeddedIntensity
from daemon.testing import FakeClock, RecordingExecutor
from policies.footprint.outcome import time_weighted_intensity
from tests.daemon.helpers import append, job_line, make_service
from tests.daemon.run_now_busy.counterfactuals import REGIONS


@pytest.mark.parametrize("k", [1.0, 2.0])
def test_a_copy_starting_after_its_jobs_end_is_priced_over_its_own_window(
    tmp_path: Path, k: float
) -> None:
    """ "x" runs in clean Quebec; its copy holds the fast GPU for 2 h 37.5 min. "b"
    (California only) arrives 9 min later and runs at once on that GPU, for ``k`` times its
    predicted duration; its copy waits for "x"'s, starting 2 h 37.5 min in, between two
    slots, long after "b" ended. Its run-now grams used to be the stored ones: priced from
    the next slot, 7.5 min later (on the diurnal curve, +0.125 g on a 1.70 g saving, 7 %),
    and for its predicted duration whatever "b"'s run turned out to be."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, policy="carbon-window", regions=REGIONS)
    service.start(clock())
    append(service.queue.path, job_line(id="x", model="llama-3b", requests=2100,
                                        deadline="+36h"))  # fmt: skip
    service.tick(clock())
    clock.advance(540)
    append(service.queue.path, job_line(id="b", model="llama-3b", requests=300,
                                        regions=["ciso"], deadline="+8h"))  # fmt: skip
    service.tick(clock())
    run = service.ledger.run("b")
    assert run is not None and run.device_ids == ("ciso/0",)  # it runs at once, for real
    stored = service.ledger.counterfactual("b")
    assert stored is not None and stored["device_ids"] == ["ciso/0"]
    start = datetime.fromisoformat(stored["start"])
    assert start.minute % 15 != 0  # between two slots of the grid
    ended = run.launched_at + timedelta(seconds=k * run.expected_duration_s)
    assert ended < start
    executor.finish("b", ended)
    service.tick(clock.advance((ended - clock()).total_seconds()))
    outcome = service.ledger.outcome("b")
    assert outcome is not None and service.ledger.job("b").state == "succeeded"

    window_s = stored["duration_s"] * outcome["duration_s"] / outcome["predicted_duration_s"]
    held = EmbeddedIntensity().forecast("US-CAL-CISO", ended, 48 * 3600, 900)
    mean, covered = time_weighted_intensity(held, start, start + timedelta(seconds=window_s))
    assert covered == 1.0
    energy = outcome["energy_j"] / outcome["predicted_energy_j"]
    embodied = stored["embodied_g"] * outcome["duration_s"] / outcome["predicted_duration_s"]
    priced = stored["operational_g"] * energy  # at the intensity stored with its decision
    expected = priced * mean / stored["intensity_g_per_kwh"] + embodied
    assert outcome["run_now_total_g"] == pytest.approx(expected, rel=1e-9)
    assert abs(expected - (priced + embodied)) > 1e-3 * expected  # the case shows a difference
