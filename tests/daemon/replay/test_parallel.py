"""Replays in worker processes (``--workers``) give what replays one after another give."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import main, replay_cmd
from daemon.replay import parallel
from daemon.replay.driver import ReplaySetup, replay_policy
from daemon.replay.errors import ReplayError
from daemon.replay.inputs import PolicySpec, load_setup
from daemon.replay.parallel import Replays, beside, replay_all
from daemon.replay.solvers import solve_bound
from policies import PoliciesError
from tests.daemon.replay.conftest import replay_inputs

RUNS = (
    PolicySpec("run-now", {}),
    PolicySpec("carbon-window", {}),
    PolicySpec("wait-awhile", {}),
    PolicySpec("carbon-window", {"min_saving": 0.5}),
)


@pytest.fixture
def setup(trace: Path, cluster_file: Path, intensity_files: list[Path]) -> ReplaySetup:
    return load_setup(replay_inputs(trace, cluster_file, intensity_files, 0.5), 4 * 3600.0)


def test_workers_give_the_runs_of_one_process_in_order(setup: ReplaySetup) -> None:
    alone = replay_all(setup, RUNS, workers=1)
    progress: list[tuple[int, datetime, int]] = []
    with Replays(setup, RUNS, workers=2) as replays:
        assert replays.forked
        results = replays.results(lambda i, now: progress.append((i, now, os.getpid())))
    assert results == alone
    assert [r.policy for r in results] == ["run-now", "carbon-window", "wait-awhile",
                                           "carbon-window"]  # fmt: skip
    assert results[1] != results[3]  # the parameters reached the workers
    # Each run reports its clock, ending at the span's end, to the caller's process.
    for index in range(len(RUNS)):
        clocks = [now for i, now, _ in progress if i == index]
        assert clocks and clocks == sorted(clocks) and clocks[-1] == setup.end
    assert {pid for *_, pid in progress} == {os.getpid()}


def test_one_worker_or_one_run_forks_nothing(setup: ReplaySetup) -> None:
    with Replays(setup, RUNS, workers=1) as replays:
        assert not replays.forked
    with Replays(setup, RUNS[:1], workers=4) as replays:
        assert not replays.forked
        assert [r.policy for r in replays.results()] == ["run-now"]


def test_with_another_thread_running_the_runs_go_in_this_process(setup: ReplaySetup) -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with Replays(setup, RUNS[:2], workers=2) as replays:
            assert not replays.forked  # a fork would copy only this thread
            results = replays.results()
    finally:
        stop.set()
        other.join()
    assert [r.policy for r in results] == ["run-now", "carbon-window"]


def test_a_failing_run_raises_its_error_in_the_caller(setup: ReplaySetup) -> None:
    runs = (*RUNS[:2], PolicySpec("carbon-window", {"no_such_knob": 1}))
    with pytest.raises(PoliciesError, match="no_such_knob"):
        replay_all(setup, runs, workers=2)


def _replay_argv(trace: Path, cluster: Path, intensity: list[Path]) -> list[str]:
    argv = ["replay", "--jobs", str(trace), "--jobs-format", "azure", "--cluster", str(cluster),
            "--start", "2023-06-05", "--days", "0.5", "--slack", "0,4h", "--policy",
            "run-now,carbon-window,spatial", "--model", "llama-1b", "--requests-per-job", "64",
            "--tick", "300", "--forecaster", "seasonal-24h", "--json"]  # fmt: skip
    for path in intensity:
        argv += ["--intensity", str(path)]
    return argv


def test_replay_cli_prints_the_same_rows_with_workers(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    argv = _replay_argv(trace, cluster_file, intensity_files)
    assert main([*argv, "--workers", "1"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main([*argv, "--workers", "3"]) == 0
    assert json.loads(capsys.readouterr().out) == alone
    assert len(alone) == 6


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_bad_workers_exit_2_with_one_line(
    trace: Path, cluster_file: Path, intensity_files: list[Path], value: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main([*_replay_argv(trace, cluster_file, intensity_files), "--workers", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--workers" in err and "at least 1" in err


def test_the_bound_is_solved_beside_the_replays(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """--bound's LP needs no replay, so it is solved while the runs replay (here in this
    process, one after another): a solve that waits for a replay to start would otherwise
    wait for ever, and its rows are those of a solve before the replays."""
    argv = [*_replay_argv(trace, cluster_file, intensity_files), "--bound", "--workers", "1"]
    assert main(argv) == 0
    before = json.loads(capsys.readouterr().out)
    replaying = threading.Event()

    def replay(*args: Any, **kwargs: Any) -> Any:
        replaying.set()
        return replay_policy(*args, **kwargs)

    def solve(setup: ReplaySetup, window_s: float | None = None) -> Any:
        assert replaying.wait(timeout=20), "the bound was solved before any run replayed"
        return solve_bound(setup, window_s)

    monkeypatch.setattr(parallel, "replay_policy", replay)
    monkeypatch.setattr(replay_cmd, "solve_bound", solve)
    assert main(argv) == 0
    after = json.loads(capsys.readouterr().out)
    monkeypatch.undo()
    assert main([*argv, "--workers", "2"]) == 0  # both slacks forked: the solve's thread ended
    forked = capsys.readouterr()
    assert "replay_workers_unavailable" not in forked.err
    for row in (*before, *after, *(workers := json.loads(forked.out))):
        row.pop("note", None)  # its CPU seconds differ
    assert after == before == workers and sum(r["policy"] == "lp-bound" for r in after) == 2


def test_a_solve_that_cannot_run_fails_before_any_replay(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    def replay(*args: object, **kwargs: object) -> None:
        raise AssertionError("replayed")

    monkeypatch.setattr(parallel, "replay_policy", replay)
    argv = [*_replay_argv(trace, cluster_file, intensity_files), "--duration-noise", "0.2"]
    assert main([*argv, "--bound"]) != 0
    assert "--bound: not defined with --duration-noise" in capsys.readouterr().err
    assert main([*argv, "--optimum"]) != 0
    assert "--optimum: not defined with --duration-noise" in capsys.readouterr().err


def test_beside_hands_back_the_result_or_the_error_and_ends_its_thread() -> None:
    threads = threading.active_count()
    with beside(lambda: 42) as answer:
        assert answer.result(timeout=10) == 42
    with beside(lambda: 1 // 0) as failed, pytest.raises(ZeroDivisionError):
        failed.result(timeout=10)
    assert threading.active_count() == threads  # a next Replays may fork


def _stuck(started: Path) -> Callable[..., str]:
    """A replay that marks its worker started (a file named by its pid), then takes 20 s."""

    started.mkdir(exist_ok=True)

    def replay(*args: object, **kwargs: object) -> str:
        (started / str(os.getpid())).touch()
        time.sleep(20)
        return "finished"

    return replay


def _started(started: Path, workers: int) -> list[int]:
    """The pids of ``workers`` workers inside their run (waits up to 30 s)."""
    deadline = time.monotonic() + 30
    while len(pids := [int(p.name) for p in started.iterdir()]) < workers:
        assert time.monotonic() < deadline, "the workers did not start their runs"
        time.sleep(0.01)
    return pids


def test_an_error_in_the_caller_stops_the_runs_in_flight(
    setup: ReplaySetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = tmp_path / "started"
    monkeypatch.setattr(parallel, "replay_policy", _stuck(started))  # forked with the workers
    with pytest.raises(KeyboardInterrupt), Replays(setup, RUNS[:2], workers=2) as replays:
        assert replays.forked
        futures = list(replays._futures)
        _started(started, 2)
        raise KeyboardInterrupt
    assert all(f.done() for f in futures)
    assert not any(not f.cancelled() and f.exception() is None for f in futures)


def test_a_worker_killed_midway_is_a_replay_error(
    setup: ReplaySetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = tmp_path / "started"
    monkeypatch.setattr(parallel, "replay_policy", _stuck(started))
    with pytest.raises(ReplayError, match="worker process died"), Replays(setup, RUNS[:2], 2) as r:
        os.kill(_started(started, 2)[0], signal.SIGKILL)  # as the kernel's OOM killer would
        r.results()
