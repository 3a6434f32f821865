"""The run-now counterfactual across planning rounds (daemon/run_now_busy/): a job's
recorded counterfactual run holds its GPU in the counterfactual, so a job arriving in a later
round does not get that GPU then, also after a restart."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.ledger import Ledger
from daemon.settings import PolicySettings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service
from tests.daemon.run_now_busy.counterfactuals import (
    CISO_ONLY,
    LONG,
    REGIONS,
    carbon_window_service,
    counterfactual_run,
    x_then_a,
)


@pytest.mark.parametrize("restart", [False, True])
def test_a_later_arrival_does_not_get_a_gpu_an_earlier_counterfactual_holds(
    tmp_path: Path, restart: bool
) -> None:
    """ "a" waits for a cleaner hour (carbon-window); its counterfactual runs on the only GPU
    it fits now for ~3 h. "b" arrives 10 min later: under run-now it waits for that run to
    end. It used to be counted on that GPU at once, the saving shown too small."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = carbon_window_service(tmp_path, executor, clock)
    append(service.queue.path, job_line(id="a", **LONG))
    service.tick(clock())
    assert {j.job_id: j.state for j in service.ledger.jobs()} == {"a": "running"}
    assert executor.launches[0].job_id == "a"
    if restart:
        service.ledger.close()
        service = carbon_window_service(tmp_path, executor, clock)
    clock.advance(600)
    append(service.queue.path, job_line(id="b", **LONG))
    service.tick(clock())
    a_devices, _, a_end = counterfactual_run(service.ledger, "a")
    b_devices, b_start, _ = counterfactual_run(service.ledger, "b")
    assert a_devices == ("ciso/0",) and a_end > clock() + timedelta(hours=1)
    assert b_start > clock()  # every GPU is held: a's real run, a's counterfactual run
    assert b_devices != a_devices or b_start >= a_end


def _latest(ledger: Ledger, job_id: str) -> tuple[str, float | None]:
    latest = ledger.latest_decisions(["queued", "planned"])[job_id]
    return latest.reason, latest.run_now_total_g


@pytest.mark.parametrize("restart", [False, True])
def test_a_held_jobs_reason_does_not_wait_for_its_own_counterfactual_run(
    tmp_path: Path, restart: bool
) -> None:
    """ "a" is held for a cleaner hour on the only GPU; its recorded counterfactual run holds
    that GPU for ~2.5 h. Half an hour later its reason's run-now is rebuilt: it is that GPU
    now, as for the same job arriving then on an idle cluster. It used to wait for "a"'s own
    counterfactual run to end, 2 h later: one reason went from 22 % to 38 % below run-now."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = carbon_window_service(tmp_path / "a", executor, clock, CISO_ONLY)
    append(service.queue.path, job_line(id="a", **LONG))
    service.tick(clock())
    assert {j.job_id: j.state for j in service.ledger.jobs()} == {"a": "planned"}
    if restart:
        service.ledger.close()
        service = carbon_window_service(tmp_path / "a", executor, clock, CISO_ONLY)
    clock.advance(1800)
    service.tick(clock())
    fresh = carbon_window_service(tmp_path / "b", executor, clock, CISO_ONLY)
    append(fresh.queue.path, job_line(id="a", **LONG))
    fresh.tick(clock())
    (reason, run_now_g), (want_reason, want_g) = (
        _latest(service.ledger, "a"),
        _latest(fresh.ledger, "a"),
    )
    assert run_now_g is not None and run_now_g == pytest.approx(want_g, rel=1e-9)
    assert reason.split(";")[0] == want_reason.split(";")[0]


@pytest.mark.parametrize("restart", [False, True])
def test_a_succeeded_jobs_counterfactual_run_ends_where_its_priced_window_ends(
    tmp_path: Path, restart: bool
) -> None:
    """ "x" runs in clean Quebec; its counterfactual run holds the fast GPU for ~3 h. "a",
    only allowed in California and without a deadline, runs on that GPU at once; its
    counterfactual waits for "x"'s copy. "a" succeeds after 30 min, a share of its predicted
    run: its copy, priced over the same share of its own duration, ends 30 min after it
    started, not after the whole prediction. "b" (California only) arrives 10 min after "a"
    ended and waits for "a"'s copy, outlasting "a" (also after a restart), then starts: it
    used to wait for the whole predicted copy, the GPU held ~2 h past run-now's end."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = carbon_window_service(tmp_path, executor, clock)
    x_then_a(service, clock, with_y=False)
    assert [launch.job_id for launch in executor.launches] == ["x", "a"]
    x_devices, _, x_end = counterfactual_run(service.ledger, "x")
    a_devices, a_start, a_end = counterfactual_run(service.ledger, "a")
    assert x_devices == a_devices == ("ciso/0",) and a_start >= x_end
    executor.finish("a", clock.advance(1800))
    service.tick(clock())
    assert service.ledger.job("a").state == "succeeded"
    outcome = next(iter(service.ledger.finished_outcomes(by_job=True)))
    scale = outcome["duration_s"] / outcome["predicted_duration_s"]
    assert 0.1 < scale < 0.5
    if restart:
        service.ledger.close()
        service = carbon_window_service(tmp_path, executor, clock)
    clock.advance(600)
    append(service.queue.path, job_line(id="b", model="llama-3b", requests=2000,
                                        regions=["ciso"], deadline="+36h"))  # fmt: skip
    service.tick(clock())
    b_devices, b_start, _ = counterfactual_run(service.ledger, "b")
    scaled_end = a_start + (a_end - a_start) * scale
    assert b_devices == ("ciso/0",)
    assert scaled_end <= b_start < scaled_end + timedelta(minutes=15)  # its slot


def test_a_succeeded_jobs_counterfactual_run_outlasting_its_prediction_is_held_again(
    tmp_path: Path,
) -> None:
    """As above, but "a" runs three times its predicted duration: its copy (waiting for "x"'s)
    runs three times its own too, past its predicted end, where the rounds meanwhile (kept
    going by "y", waiting for the busy T4) let it go. "b", arriving 10 min after "a" ended,
    waits for that copy's scaled end; it used to get the GPU at once."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = carbon_window_service(tmp_path, executor, clock)
    x_then_a(service, clock, with_y=True)
    _, a_start, a_end = counterfactual_run(service.ledger, "a")
    a_launched = clock()
    predicted_s = (a_end - a_start).total_seconds()
    while clock() < a_launched + timedelta(seconds=3 * predicted_s):  # "a" runs on, rounds go
        service.tick(clock.advance(1800))
        assert service.ledger.job("y").state in ("queued", "planned")
    executor.finish("a", a_launched + timedelta(seconds=3 * predicted_s))
    service.tick(clock())
    assert service.ledger.job("a").state == "succeeded"
    outcome = next(o for o in service.ledger.finished_outcomes(by_job=True) if o["job_id"] == "a")
    scale = outcome["duration_s"] / outcome["predicted_duration_s"]
    assert scale > 2.5
    clock.advance(600)
    append(service.queue.path, job_line(id="b", model="llama-3b", requests=2000,
                                        regions=["ciso"], deadline="+36h"))  # fmt: skip
    service.tick(clock())
    b_devices, b_start, _ = counterfactual_run(service.ledger, "b")
    scaled_end = a_start + (a_end - a_start) * scale
    assert clock() < scaled_end and b_devices == ("ciso/0",)
    assert scaled_end <= b_start < scaled_end + timedelta(minutes=15)  # its slot


def test_a_waiting_jobs_counterfactual_run_holds_its_gpu_after_a_restart_outside_the_window(
    tmp_path: Path,
) -> None:
    """ "w" is held for a cleaner hour on the only GPU; its counterfactual run holds that GPU
    for ~2.5 h. The daemon restarts planning one job a round, and "b" (more urgent) arrives
    10 min later: "w" stays outside the window, but its copy, started under run-now long
    before, holds the GPU, and "b"'s counterfactual waits for it. It used to be counted on
    the GPU at once, as if "w"'s copy had vanished with the restart."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = carbon_window_service(tmp_path, executor, clock, CISO_ONLY)
    append(service.queue.path, job_line(id="w", **LONG))
    service.tick(clock())
    assert service.ledger.job("w").state == "planned"
    _, _, w_end = counterfactual_run(service.ledger, "w")
    service.ledger.close()
    service = make_service(tmp_path, executor, policy="carbon-window", regions=CISO_ONLY)
    window = PolicySettings(name="carbon-window", plan_window=1)
    service.reconfigure(service.settings.model_copy(update={"policy": window}))
    clock.advance(600)
    service.start(clock())
    decided = len(service.ledger.rows("decisions"))
    append(service.queue.path, job_line(id="b", priority=5, **LONG))
    service.tick(clock())
    assert {r["job_id"] for r in service.ledger.rows("decisions")[decided:]} == {"b"}
    b_devices, b_start, _ = counterfactual_run(service.ledger, "b")
    assert b_devices == ("ciso/0",) and b_start == w_end


def test_a_restart_reads_each_waiting_jobs_counterfactual_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart learns the waiting jobs' counterfactuals in one query; their first planning
    after it used to read each one again (one query per job, up to the planning window),
    and hold it again, only to know it was recorded. It still is."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, policy="carbon-window", regions=REGIONS[:1])
    service.start(clock())
    ids = ("x", "y", "z")
    for job_id in ids:
        append(service.queue.path, job_line(id=job_id, **LONG))
        service.tick(clock.advance(60))
    waiting = {j for j in ids if service.ledger.job(j).state in ("queued", "planned")}
    assert len(waiting) >= 2
    service.ledger.close()
    service = make_service(tmp_path, executor, policy="carbon-window", regions=REGIONS[:1])
    service.start(clock.advance(60))
    read: list[str] = []
    counterfactual = service.ledger.counterfactual

    def counted(job_id: str) -> dict[str, Any] | None:
        read.append(job_id)
        return counterfactual(job_id)

    monkeypatch.setattr(service.ledger, "counterfactual", counted)
    service.tick(clock())
    assert not waiting & set(read)
    planned = {job_id: entry[1] for job_id, entry in service._memory.specs.items()}
    assert waiting <= planned.keys()
    assert all(planned[j].run_now_recorded for j in waiting)
