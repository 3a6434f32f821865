"""What the run-now counterfactual tests plan on: the two regions (``REGIONS``, ``CISO_ONLY``),
a long job's fields (``LONG``), a job's recorded counterfactual run (``counterfactual_run``),
the carbon-window service they plan with (``carbon_window_service``) and the arrivals the
held-copy tests start from (``x_then_a``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from daemon.ledger import Ledger
from daemon.service import Service
from daemon.settings import RegionSettings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service

# One RTX 6000 Ada (fastest, in dirty California) and one T4 (in clean Quebec).
REGIONS = (
    RegionSettings(name="ciso", zone="US-CAL-CISO", executor="local", gpus=("RTX6000-Ada",)),
    RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("T4",)),
)
CISO_ONLY = REGIONS[:1]
LONG = {"model": "llama-3b", "requests": 2000, "deadline": "+36h"}


def counterfactual_run(ledger: Ledger, job_id: str) -> tuple[tuple[str, ...], datetime, datetime]:
    """``job_id``'s recorded run-now counterfactual run: its devices, start and end."""
    stored = ledger.counterfactual(job_id)
    assert stored is not None
    start = datetime.fromisoformat(stored["start"])
    return tuple(stored["device_ids"]), start, start + timedelta(seconds=stored["duration_s"])


def carbon_window_service(
    state: Path,
    executor: RecordingExecutor,
    clock: FakeClock,
    regions: tuple[RegionSettings, ...] = REGIONS,
) -> Service:
    """A carbon-window service over ``regions`` in ``state``, started at ``clock()`` (a
    restart when ``state`` already holds a ledger)."""
    service = make_service(state, executor, policy="carbon-window", regions=regions)
    service.start(clock())
    return service


def x_then_a(service: Service, clock: FakeClock, *, with_y: bool) -> None:
    """Submit "x" (``LONG``) and plan it; a minute later submit "a" (California only, no
    deadline) and, with ``with_y``, "y" (Quebec only, due in 36 h), and plan again. With the
    two ``REGIONS``, "x" runs in clean Quebec while its copy holds the fast GPU, and "a" runs
    on that GPU at once (what a test asserts where it relies on it)."""
    append(service.queue.path, job_line(id="x", **LONG))
    service.tick(clock())
    clock.advance(60)
    append(service.queue.path, job_line(id="a", model="llama-3b", requests=2000,
                                        regions=["ciso"]))  # fmt: skip
    if with_y:
        append(service.queue.path, job_line(id="y", model="llama-3b", requests=2000,
                                            regions=["qc"], deadline="+36h"))  # fmt: skip
    service.tick(clock())
