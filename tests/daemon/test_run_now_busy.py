"""The run-now counterfactual across planning rounds (daemon/run_now_busy.py): a job's
recorded counterfactual run holds its GPU in the counterfactual, so a job arriving in a later
round does not get that GPU then, also after a restart."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from daemon.settings import RegionSettings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service

# One RTX 6000 Ada (fastest, in dirty California) and one T4 (in clean Quebec).
REGIONS = (
    RegionSettings(name="ciso", zone="US-CAL-CISO", executor="local", gpus=("RTX6000-Ada",)),
    RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("T4",)),
)
LONG = {"model": "llama-3b", "requests": 2000, "deadline": "+36h"}


def _run(ledger: Ledger, job_id: str) -> tuple[tuple[str, ...], datetime, datetime]:
    stored = ledger.counterfactual(job_id)
    assert stored is not None
    start = datetime.fromisoformat(stored["start"])
    return tuple(stored["device_ids"]), start, start + timedelta(seconds=stored["duration_s"])


@pytest.mark.parametrize("restart", [False, True])
def test_a_later_arrival_does_not_get_a_gpu_an_earlier_counterfactual_holds(
    tmp_path: Path, restart: bool
) -> None:
    """ "a" waits for a cleaner hour (carbon-window); its counterfactual runs on the only GPU
    it fits now for ~3 h. "b" arrives 10 min later: under run-now it waits for that run to
    end. It used to be counted on that GPU at once, the saving shown too small."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, policy="carbon-window", regions=REGIONS)
    service.start(clock())
    append(service.queue.path, job_line(id="a", **LONG))
    service.tick(clock())
    assert {j.job_id: j.state for j in service.ledger.jobs()} == {"a": "running"}
    assert executor.launches[0].job_id == "a"
    if restart:
        service.ledger.close()
        service = make_service(tmp_path, executor, policy="carbon-window", regions=REGIONS)
        service.start(clock())
    clock.advance(600)
    append(service.queue.path, job_line(id="b", **LONG))
    service.tick(clock())
    a_devices, _, a_end = _run(service.ledger, "a")
    b_devices, b_start, _ = _run(service.ledger, "b")
    assert a_devices == ("ciso/0",) and a_end > clock() + timedelta(hours=1)
    assert b_start > clock()  # every GPU is held: a's real run, a's counterfactual run
    assert b_devices != a_devices or b_start >= a_end


CISO_ONLY = REGIONS[:1]


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
    service = make_service(tmp_path / "a", executor, policy="carbon-window", regions=CISO_ONLY)
    service.start(clock())
    append(service.queue.path, job_line(id="a", **LONG))
    service.tick(clock())
    assert {j.job_id: j.state for j in service.ledger.jobs()} == {"a": "planned"}
    if restart:
        service.ledger.close()
        service = make_service(tmp_path / "a", executor, policy="carbon-window",
                               regions=CISO_ONLY)  # fmt: skip
        service.start(clock())
    clock.advance(1800)
    service.tick(clock())
    fresh = make_service(tmp_path / "b", executor, policy="carbon-window", regions=CISO_ONLY)
    fresh.start(clock())
    append(fresh.queue.path, job_line(id="a", **LONG))
    fresh.tick(clock())
    (reason, run_now_g), (want_reason, want_g) = (
        _latest(service.ledger, "a"),
        _latest(fresh.ledger, "a"),
    )
    assert run_now_g is not None and run_now_g == pytest.approx(want_g, rel=1e-9)
    assert reason.split(";")[0] == want_reason.split(";")[0]


@pytest.mark.parametrize("restart", [False, True])
def test_an_ended_jobs_counterfactual_run_still_holds_its_gpu_after_a_restart(
    tmp_path: Path, restart: bool
) -> None:
    """ "a" runs in clean Quebec and ends after 5 min; its counterfactual run would hold the
    fast GPU for ~3 h. "b" arrives 10 min later: under run-now it waits for that run (or takes
    the other GPU). A restart in between used to forget it ("a" was neither waiting nor
    running), and "b" was counted on the fast GPU at once."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor, policy="carbon-window", regions=REGIONS)
    service.start(clock())
    append(service.queue.path, job_line(id="a", **LONG))
    service.tick(clock())
    executor.finish("a", clock.advance(300))
    service.tick(clock())
    assert {j.job_id: j.state for j in service.ledger.jobs()} == {"a": "succeeded"}
    if restart:
        service.ledger.close()
        service = make_service(tmp_path, executor, policy="carbon-window", regions=REGIONS)
        service.start(clock())
    clock.advance(300)
    append(service.queue.path, job_line(id="b", **LONG))
    service.tick(clock())
    a_devices, _, a_end = _run(service.ledger, "a")
    b_devices, b_start, _ = _run(service.ledger, "b")
    assert a_devices == ("ciso/0",) and a_end > clock() + timedelta(hours=1)
    assert b_devices != a_devices or b_start >= a_end
