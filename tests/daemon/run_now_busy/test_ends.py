"""A job's end cuts its run-now counterfactual run short where run-now would have ended it
too (daemon/run_now_busy/): its owner's cancel at T cancels the copy at T, a failure of its
own after a share of its predicted run fails the copy after the same share of its own; also
after a restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.executors.base import RunHandle
from daemon.run_now_busy import Cut, ending_cut, held_until
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line
from tests.daemon.run_now_busy.counterfactuals import (
    CISO_ONLY,
    LONG,
    carbon_window_service,
    counterfactual_run,
)

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _cancel(path: Path, job_id: str) -> None:
    append(path, json.dumps({"cancel": job_id}) + "\n")


@pytest.mark.parametrize("restart", [False, True])
@pytest.mark.parametrize("how", ["cancelled", "failed"])
def test_a_running_jobs_cancel_or_failure_frees_the_gpu_its_counterfactual_held(
    tmp_path: Path, how: str, restart: bool
) -> None:
    """ "a" runs in clean Quebec; its counterfactual run holds the fast GPU for ~3 h. Five
    minutes in, its owner cancels it (or it exits 1 on its own, a small share into its
    predicted run). "b" arrives 10 min after the start: run-now's copy of "a" was cancelled
    (failed) then too, so the fast GPU is free to "b"'s counterfactual. It used to wait the
    whole 3 h for a run that never happened (or take the slow GPU)."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = carbon_window_service(tmp_path, executor, clock)
    append(service.queue.path, job_line(id="a", **LONG))
    service.tick(clock())
    assert executor.launches[0].job_id == "a"
    clock.advance(300)
    if how == "cancelled":
        _cancel(service.queue.path, "a")
    else:
        executor.finish("a", clock(), exit_code=1)
    service.tick(clock())
    assert {j.job_id: j.state for j in service.ledger.jobs()} == {"a": how}
    if restart:
        service.ledger.close()
        service = carbon_window_service(tmp_path, executor, clock)
    clock.advance(300)
    append(service.queue.path, job_line(id="b", **LONG))
    service.tick(clock())
    a_devices, _, a_end = counterfactual_run(service.ledger, "a")
    b_devices, b_start, _ = counterfactual_run(service.ledger, "b")
    assert a_devices == ("ciso/0",) and a_end > clock() + timedelta(hours=1)
    assert b_devices == a_devices and b_start < clock() + timedelta(hours=1)


class _Stubborn(RecordingExecutor):
    """A job that traps SIGTERM: the cancel is taken, the run goes on."""

    def cancel(self, handle: RunHandle, now: datetime) -> None:
        self.cancels.append(handle.job_id)


@pytest.mark.parametrize("restart", [False, True])
def test_a_cancel_read_frees_the_gpu_its_counterfactual_held_before_the_job_ends(
    tmp_path: Path, restart: bool
) -> None:
    """ "a" traps SIGTERM and runs on after its owner's cancel is read (or the daemon
    restarts before it ends): run-now's copy was cancelled when the cancel was read, so "b"
    arriving then gets the fast GPU in its counterfactual; it used to wait for "a" to end,
    and a restart learned "a"'s counterfactual run whole."""
    clock, executor = FakeClock(), _Stubborn(auto_finish=False)
    service = carbon_window_service(tmp_path, executor, clock)
    append(service.queue.path, job_line(id="a", **LONG))
    service.tick(clock())
    clock.advance(300)
    _cancel(service.queue.path, "a")
    service.tick(clock())
    assert executor.cancels == ["a"]
    if restart:
        service.ledger.close()
        service = carbon_window_service(tmp_path, executor, clock)
    clock.advance(300)
    append(service.queue.path, job_line(id="b", **LONG))
    service.tick(clock())
    assert {j.job_id: j.state for j in service.ledger.jobs()} == {"a": "running", "b": "planned"}
    b_devices, b_start, _ = counterfactual_run(service.ledger, "b")
    assert b_devices == ("ciso/0",) and b_start < clock() + timedelta(hours=1)


def test_a_waiting_jobs_cancel_frees_the_gpu_its_counterfactual_held(tmp_path: Path) -> None:
    """ "a" is held for a cleaner hour on the only GPU; its counterfactual run holds that GPU
    for ~2.5 h. Its owner cancels it 10 min later: run-now's copy, started at once, is
    cancelled then too. "b", arriving then, used to wait for the rest of that run."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = carbon_window_service(tmp_path, executor, clock, CISO_ONLY)
    append(service.queue.path, job_line(id="a", **LONG))
    service.tick(clock())
    assert service.ledger.job("a").state == "planned"
    clock.advance(600)
    _cancel(service.queue.path, "a")
    append(service.queue.path, job_line(id="b", **LONG))
    service.tick(clock())
    assert service.ledger.job("a").state == "cancelled"
    _, _, a_end = counterfactual_run(service.ledger, "a")
    b_devices, b_start, _ = counterfactual_run(service.ledger, "b")
    assert b_devices == ("ciso/0",) and b_start < a_end - timedelta(hours=1)


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("state", "cancel_min", "own", "ran_s", "predicted_s", "want"),
    [
        ("succeeded", None, False, 600.0, 600.0, None),  # ran whole: the copy too
        ("succeeded", 5, False, 600.0, 600.0, Cut(at=_at(5))),  # ended before the cancel
        ("succeeded", None, False, 300.0, 600.0, Cut(scale=0.5)),  # its copy as priced
        ("succeeded", None, False, 900.0, 600.0, Cut(scale=1.5)),  # longer, too
        ("succeeded", 5, False, 300.0, 600.0, Cut(at=_at(5), scale=0.5)),
        ("succeeded", None, False, 300.0, 0.0, None),  # no prediction to scale by
        ("cancelled", 5, False, 300.0, 600.0, Cut(at=_at(5))),  # its owner's cancel
        ("cancelled", None, False, 300.0, 600.0, Cut(at=_at(30))),  # their own scancel
        ("failed", None, True, 150.0, 600.0, Cut(share=0.25)),  # exit 1 a quarter in
        ("failed", None, True, 900.0, 600.0, Cut(scale=1.5)),  # after its whole run: as long
        ("failed", 5, True, 150.0, 600.0, Cut(at=_at(5), share=0.25)),
        ("failed", None, False, 150.0, 600.0, None),  # its GPU lost: run-now ran it
        ("failed", None, False, None, None, None),  # its launch refused
        ("expired", None, False, None, None, None),  # run-now ran it at once
        ("cancelled", 5, False, None, None, Cut(at=_at(5))),  # before it started
        # ran past its predicted end, then stopped: its copy at least as long, to the cancel
        ("cancelled", 25, False, 900.0, 600.0, Cut(at=_at(25), scale=1.5)),
        ("failed", None, False, 900.0, 600.0, Cut(scale=1.5)),  # its GPU lost, late
        ("failed", 25, True, 900.0, 600.0, Cut(at=_at(25), scale=1.5)),
    ],
)
def test_ending_cut(
    state: str,
    cancel_min: float | None,
    own: bool,
    ran_s: float | None,
    predicted_s: float | None,
    want: Cut | None,
) -> None:
    cancel = None if cancel_min is None else _at(cancel_min)
    got = ending_cut(state, ended_at=_at(30), cancel_requested_at=cancel, own_failure=own,
                     duration_s=ran_s, predicted_duration_s=predicted_s)  # fmt: skip
    assert got == want


@pytest.mark.parametrize(
    ("cut", "want_min"),
    [
        (None, 60),
        (Cut(at=_at(20)), 20),
        (Cut(at=_at(90)), 60),
        (Cut(at=_at(-5)), -5),  # cancelled before the copy started: it never ran
        (Cut(share=0.25), 15),
        (Cut(at=_at(10), share=0.25), 10),
        (Cut(scale=0.5), 30),
        (Cut(scale=1.5), 90),
        (Cut(at=_at(80), scale=1.5), 80),
    ],
)
def test_held_until(cut: Cut | None, want_min: float) -> None:
    assert held_until(T0, 3600.0, cut) == _at(want_min)


@pytest.mark.parametrize("restart", ["none", "after", "across"])
def test_an_expired_jobs_counterfactual_run_still_holds_its_gpu_after_a_restart(
    tmp_path: Path, restart: str
) -> None:
    """ "x" runs on the only GPU past its expected end (02:30); "a" waits for it and expires
    at its deadline, 04:01. run-now's copy of "a" started at 02:30 and runs to 05:00, so "b"
    arriving at 04:31 waits for it. A restart after the expiry ("after": "a" ran no run, it
    has no outcome) or across it (the daemon down at the deadline: its first round expires
    "a" before planning it) used to forget that run, and "b" was counted on the GPU at once."""
    clock, executor = FakeClock(), RecordingExecutor(auto_finish=False)
    service = carbon_window_service(tmp_path, executor, clock, CISO_ONLY)
    append(service.queue.path, job_line(id="x", model="llama-3b", requests=2000))
    service.tick(clock())
    clock.advance(60)
    append(service.queue.path, job_line(id="a", model="llama-3b", requests=2000, deadline="+4h"))
    service.tick(clock())
    _, a_start, a_end = counterfactual_run(service.ledger, "a")
    deadline = service.ledger.job("a").deadline
    assert deadline is not None and a_start < deadline < a_end
    clock.advance(3 * 3600)  # 03:01
    if restart != "across":
        service.tick(clock())
    clock.advance(3600)  # 04:01: "a" expires
    if restart != "across":
        service.tick(clock())
        assert service.ledger.job("a").state == "expired"
    if restart != "none":
        service.ledger.close()
        service = carbon_window_service(tmp_path, executor, clock, CISO_ONLY)
    clock.advance(1800)  # 04:31
    append(service.queue.path, job_line(id="b", model="llama-3b", requests=2000))
    service.tick(clock())
    assert {j.job_id: j.state for j in service.ledger.jobs()} == {
        "x": "running", "a": "expired", "b": "planned"
    }  # fmt: skip
    _, b_start, _ = counterfactual_run(service.ledger, "b")
    assert b_start >= a_end
