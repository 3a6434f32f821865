"""Several policy replays at once, one worker process each (``carbond replay`` and ``carbond
tune``: ``--workers``).

Each replay is independent (its own scratch ledger and service), so runs are spread over worker
processes forked from the caller: the setup (jobs, signals, cluster) is shared copy-on-write,
not pickled, and each worker sends back its :class:`~daemon.replay.driver.PolicyRun`. The
results are those of replaying the runs one after another, in the order asked (a test checks
this). Workers are forked only where ``fork`` exists and the caller has no other thread (a fork
copies only the forking thread: a lock another thread held would stay held in the child);
otherwise, or for one worker or one run, the runs go one after another in this process.

What needs no replay (``--bound``'s LP, ``--optimum``'s MIP) runs :func:`beside` them, in a
thread of the caller started once the workers are forked: HiGHS and NumPy release the GIL, so
the caller still follows the workers' progress meanwhile.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.queues import SimpleQueue
from typing import TypeVar

import structlog

from daemon.replay.driver import PolicyRun, ReplaySetup, replay_policy
from daemon.replay.errors import ReplayError
from daemon.replay.inputs import PolicySpec

__all__ = ["Replays", "RunProgress", "available_workers", "beside", "replay_all"]

log = structlog.get_logger(__name__)

RunProgress = Callable[[int, datetime], None]
"""Called with a run's index (in the order asked) and its replay clock."""

T = TypeVar("T")

_POLL_S = 0.2  # how often the caller's progress is updated while workers run
_UPDATES_PER_RUN = 200  # progress messages a worker sends at most per run


@dataclass(frozen=True, slots=True)
class _Shared:
    """What forked workers inherit: the setup, the runs and the progress queue."""

    setup: ReplaySetup
    runs: tuple[PolicySpec, ...]
    progress: SimpleQueue[tuple[int, datetime]]


_inherited: list[_Shared] = []  # a forked worker's setup and runs (see _adopt); empty elsewhere


def available_workers() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _forkable() -> str | None:
    """Why workers cannot be forked here, or None."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "no fork on this platform"
    if threading.active_count() > 1:
        return f"{threading.active_count() - 1} other threads are running"
    return None


class Replays:
    """``runs`` replayed on ``setup``, at most ``workers`` at a time. As a context manager:
    entering forks the workers and starts the runs (so enter it before starting any thread, such
    as a progress bar's); :meth:`results` waits for them. Leaving terminates the workers: runs
    not finished by then (the caller failed, or was interrupted) are not waited for."""

    def __init__(self, setup: ReplaySetup, runs: Sequence[PolicySpec], workers: int) -> None:
        self._setup, self._runs = setup, tuple(runs)
        self._workers = min(workers, len(self._runs))
        self._pool: ProcessPoolExecutor | None = None
        self._queue: SimpleQueue[tuple[int, datetime]] | None = None
        self._futures: list[Future[PolicyRun]] = []

    def __enter__(self) -> Replays:
        why_not = _forkable() if self._workers > 1 else None
        if why_not is not None:
            log.warning("replay_workers_unavailable", reason=why_not, runs=len(self._runs))
        if self._workers <= 1 or why_not is not None:
            return self
        context = multiprocessing.get_context("fork")
        self._queue = context.SimpleQueue()
        shared = _Shared(self._setup, self._runs, self._queue)
        # A forked worker gets its initializer's arguments in memory, not pickled. With fork,
        # the pool starts every worker at the first submit, before its own thread.
        self._pool = ProcessPoolExecutor(
            self._workers, mp_context=context, initializer=_adopt, initargs=(shared,)
        )
        self._futures = [self._pool.submit(_work, i) for i in range(len(self._runs))]
        return self

    def __exit__(self, *exc: object) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            # Terminated, not waited for: after results() they are idle, and after an error
            # (a failed run, Ctrl-C) their runs are not wanted. Joining instead can hang: a
            # worker killed (out of memory) while it held the call queue's lock leaves the
            # others blocked on it, never reading their stop sentinel.
            _stop_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)
        if self._queue is not None:
            self._queue.close()
            self._queue = None

    @property
    def forked(self) -> bool:
        """Whether the runs go to worker processes."""
        return self._pool is not None

    def results(self, progress: RunProgress | None = None) -> list[PolicyRun]:
        """Every run's result, in the order of the runs (in this process, one after another,
        when no workers were forked).

        Raises:
            What :func:`~daemon.replay.driver.replay_policy` raises, for the first run (in
            order) that failed; the runs not started yet are cancelled on leaving.
            ReplayError: a worker process died (killed, out of memory).
        """
        if self._pool is None:
            return [_one(self._setup, run, i, progress) for i, run in enumerate(self._runs)]
        pending: set[Future[PolicyRun]] = set(self._futures)
        while pending and not any(f.done() and f.exception() for f in self._futures):
            _, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
            self._drain(progress)
        self._drain(progress)
        try:
            return [future.result() for future in self._futures]
        except BrokenProcessPool as exc:  # killed (out of memory?): say so, not a traceback
            raise ReplayError(
                f"a replay worker process died ({exc}); rerun with fewer --workers"
            ) from exc

    def _drain(self, progress: RunProgress | None) -> None:
        queue = self._queue
        while queue is not None and not queue.empty():
            index, now = queue.get()
            if progress is not None:
                progress(index, now)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate ``pool``'s workers, whatever they are running."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
    if terminate is not None:
        terminate()
        return
    processes = getattr(pool, "_processes", None) or {}  # earlier Pythons: the pool's own map
    for process in list(processes.values()):
        process.terminate()


@contextmanager
def beside(call: Callable[[], T]) -> Iterator[Future[T]]:
    """``call()`` in a thread of its own while the block runs; the future holds its result or
    error. Enter it inside :class:`Replays` (after the fork). Leaving the block normally waits
    for the thread to end (so a next :class:`Replays` may fork again); leaving it by an error or
    an interrupt does not (a daemon thread: the command exits without it)."""
    future: Future[T] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(call())
        except BaseException as exc:  # handed to whoever reads the future
            future.set_exception(exc)

    thread = threading.Thread(target=run, name="replay-beside", daemon=True)
    thread.start()
    yield future
    thread.join()


def replay_all(setup: ReplaySetup, runs: Sequence[PolicySpec], workers: int) -> list[PolicyRun]:
    """:class:`Replays` without progress: each run's result, in order."""
    with Replays(setup, runs, workers) as replays:
        return replays.results()


def _one(
    setup: ReplaySetup, run: PolicySpec, index: int, progress: RunProgress | None
) -> PolicyRun:
    advance = None if progress is None else (lambda now: progress(index, now))
    return replay_policy(setup, run.name, run.params, advance)


def _adopt(shared: _Shared) -> None:
    """A forked worker's initializer: keep the parent's setup and runs."""
    _inherited[:] = [shared]


def _work(index: int) -> PolicyRun:
    """One run in a forked worker."""
    shared = _inherited[0]
    queue, setup = shared.progress, shared.setup
    step, last = (setup.end - setup.start) / _UPDATES_PER_RUN, [setup.start]

    def advance(now: datetime) -> None:
        if now - last[0] >= step:
            last[0] = now
            queue.put((index, now))

    run = shared.runs[index]
    result = replay_policy(setup, run.name, run.params, advance)
    queue.put((index, setup.end))
    return result
