"""A job running past its predicted end keeps its run-now counterfactual run holding its GPUs
as the run is turning out (daemon/run_now_busy/): a later arrival's counterfactual waits
for that copy, scaled by the run so far, not for its predicted end; also after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.ledger import RunRecord
from daemon.run_now_busy import RunNowBusy
from daemon.testing import FakeClock, RecordingExecutor
from policies import Alternative, Device
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.helpers import append, job_line
from tests.daemon.run_now_busy.counterfactuals import (
    carbon_window_service,
    counterfactual_run,
    x_then_a,
)


@pytest.mark.parametrize("restart", [False, True])
def test_a_running_jobs_counterfactual_holds_its_gpu_while_it_overruns(
    tmp_path: Path, restart: bool
) -> None:
    """ "x" runs in clean Quebec; its counterfactual run holds the fast GPU for ~3 h. "a"
    (California only, no deadline) runs on that GPU at once; its copy waits for "x"'s. "a"
    runs on past twice its predicted duration, the rounds going on (kept by "y", waiting for
    the busy T4). "b" (California only) arrives then: run-now's copy of "a" has run at least
    as long a share of its own duration, so it still holds the GPU, and "b"'s copy waits for
    it. It used to be let go at its predicted end, "b"'s copy counted on the GPU at once."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = carbon_window_service(tmp_path, executor, clock)
    x_then_a(service, clock, with_y=True)
    assert [launch.job_id for launch in executor.launches] == ["x", "a"]
    _, _, x_end = counterfactual_run(service.ledger, "x")
    a_devices, a_start, a_end = counterfactual_run(service.ledger, "a")
    assert a_devices == ("ciso/0",) and a_start >= x_end
    a_launched = clock()
    predicted_s = service.ledger.run("a").expected_duration_s
    while clock() < a_launched + timedelta(seconds=2 * predicted_s):  # "a" runs on, rounds go
        service.tick(clock.advance(1800))
        assert service.ledger.job("y").state in ("queued", "planned")
    assert clock() > a_end  # its copy's predicted end has passed
    if restart:
        service.ledger.close()
        service = carbon_window_service(tmp_path, executor, clock)
    append(service.queue.path, job_line(id="b", model="llama-3b", requests=2000,
                                        regions=["ciso"], deadline="+36h"))  # fmt: skip
    service.tick(clock())
    assert service.ledger.job("a").state == "running"
    b_devices, b_start, _ = counterfactual_run(service.ledger, "b")
    so_far = (clock() - a_launched).total_seconds() / predicted_s
    assert so_far >= 2
    held_to = a_start + (a_end - a_start) * so_far
    assert b_devices == ("ciso/0",) and held_to > clock() + timedelta(hours=1)
    assert b_start >= held_to


def test_a_copy_kept_for_its_running_job_is_let_go_when_the_job_ends() -> None:
    """A running job's copy is kept past its end (to hold again as the run goes on); its job
    ending with its copy run as recorded lets it go, rather than keeping it for ever."""
    t0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
    busy = RunNowBusy()
    copy = Alternative(device_ids=("ciso/0",), region="ciso", gpu="RTX6000-Ada", start=t0,
                       duration_s=3600.0, energy_j=1.0, intensity_g_per_kwh=1.0,
                       operational_g=1.0, embodied_g=0.0)  # fmt: skip
    busy.hold("a", copy, None)
    gpu = DEFAULT_GPU_CATALOG.get("RTX6000-Ada")
    device = Device(device_id="ciso/0", region="ciso", zone="US-CAL-CISO", gpu=gpu)
    launched = t0 + timedelta(hours=1.5)  # the policy ran it later, elsewhere
    run = RunRecord("a", "local", "t", ("qc/0",), (0,), 3600.0, launched, launched,
                    None, None, None, None)  # fmt: skip
    later = t0 + timedelta(hours=2)  # its copy ended; its job runs on, not past its own end
    assert busy.devices([device], later, [run], 30.0)[0].run_now_busy_until is None
    assert busy.cut("a", None)  # kept while the job ran
    assert not busy.cut("a", None)  # let go once it ended


@pytest.mark.parametrize("restart", [False, True])
@pytest.mark.parametrize("exit_code", [1, None])
def test_a_copy_held_while_its_job_overran_is_not_cut_back_when_the_job_fails(
    tmp_path: Path, exit_code: int | None, restart: bool
) -> None:
    """As above, "a" runs on the fast GPU past twice its predicted duration, its copy held as
    the run turns out. Then "a" fails: exit 1 (on its own: run-now's copy fails after the
    same multiple of its duration), or its outcome lost (not on its own: run-now runs its
    copy on, at least as long). "b" (California only) arrives: "a"'s copy still holds the
    GPU. The failure used to cut that copy back to its predicted end (exit 1: "never past
    its whole run"; lost: after a restart, learned whole), "b"'s copy counted on the GPU at
    once, though it waited for that copy while "a" ran."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = carbon_window_service(tmp_path, executor, clock)
    x_then_a(service, clock, with_y=True)
    assert [launch.job_id for launch in executor.launches] == ["x", "a"]
    _, a_start, a_end = counterfactual_run(service.ledger, "a")
    a_launched = clock()
    predicted_s = service.ledger.run("a").expected_duration_s
    while clock() < a_launched + timedelta(seconds=2 * predicted_s):
        service.tick(clock.advance(1800))
    executor.finish("a", clock(), exit_code=exit_code)
    service.tick(clock())
    assert service.ledger.job("a").state == "failed"
    so_far = (clock() - a_launched).total_seconds() / predicted_s
    held_to = a_start + (a_end - a_start) * so_far
    assert held_to > clock() + timedelta(hours=1)
    if restart:
        service.ledger.close()
        service = carbon_window_service(tmp_path, executor, clock)
    append(service.queue.path, job_line(id="b", model="llama-3b", requests=2000,
                                        regions=["ciso"], deadline="+36h"))  # fmt: skip
    service.tick(clock())
    b_devices, b_start, _ = counterfactual_run(service.ledger, "b")
    assert b_devices == ("ciso/0",) and b_start >= held_to
