"""What the Slurm executor remembers of what it logged (:class:`~daemon.executors.slurm.notes.
Notes`): each executor its own, in memory only; and how long it waits for a cut-short sacct
row."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.assemble import build_slurm_executor
from daemon.executors.base import RunHandle
from daemon.executors.errors import EndNotRecordedError
from daemon.executors.slurm.queries import Token
from daemon.settings import load_settings
from tests.daemon.executors.fake_slurm import T0, FakeSlurm, launch_spec, slurm_executor


def test_each_executor_logs_a_lasting_condition_once_and_a_restarted_one_once_more(
    tmp_path: Path,
) -> None:
    """slurmdbd down and a job whose sacct row stays cut short are each logged once per
    executor however many polls they last; a new executor (a restarted daemon) remembers
    none of it, so it logs each once more, and its ten-minute count for the cut-short row
    starts afresh."""
    slurm = FakeSlurm()
    first = slurm_executor(slurm)
    handle = first.launch(launch_spec(tmp_path), T0)
    job = slurm.jobs[Token.decode("j1", handle.token).slurm_id]
    job.state, job.cut = "GONE", True
    later = T0 + timedelta(minutes=9)

    with capture_logs() as logs:
        for at in (T0, T0 + timedelta(minutes=1)):
            slurm.dbd_down = True
            assert first.poll([handle], at) == []
            slurm.dbd_down = False
            assert first.poll([handle], at + timedelta(seconds=5)) == []
        assert first.poll([handle], T0 + timedelta(minutes=2)) == []
        restarted = slurm_executor(slurm)
        assert restarted.poll([handle], later) == []
        assert restarted.poll([handle], later + timedelta(minutes=9)) == []  # 9 min of 10
        [given_up] = restarted.poll([handle], later + timedelta(minutes=10))

    events = [e["event"] for e in logs if e["event"].startswith("slurm_sacct_")]
    assert events == [
        "slurm_sacct_failed", "slurm_sacct_back", "slurm_sacct_unreadable",
        "slurm_sacct_failed", "slurm_sacct_back",
        "slurm_sacct_unreadable", "slurm_sacct_lost_given_up",
    ]  # fmt: skip
    assert given_up.finished_at == later  # counted from the restarted executor's first poll


def test_cut_short_limit_s_sets_how_long_a_cut_short_sacct_row_is_asked_again(
    tmp_path: Path,
) -> None:
    """A job whose sacct row stays cut short ended failed after ten minutes, a figure an
    operator could not change (a slurmdbd that garbles its answers for longer lost every job
    that ended meanwhile). ``[executors.slurm] cut_short_limit_s`` sets it: the executor the
    daemon builds from the TOML file (its Slurm commands real processes here) gives up after
    that long."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, out in (("squeue", ""), ("sacct", "100|COMPLETED|0:0|2026-12-04T21:00:01\\n")):
        (bin_dir / name).write_text(f"#!/bin/sh\nprintf '{out}'\n")
        (bin_dir / name).chmod(0o755)
    config = tmp_path / "carbond.toml"
    config.write_text(
        '[[regions]]\nname = "qc"\nzone = "CA-QC"\nexecutor = "slurm"\n'
        '[regions.slurm]\npartition = "alpha"\n'
        f'[executors.slurm]\nbin_dir = "{bin_dir}"\ncut_short_limit_s = 60\n'
    )
    executor = build_slurm_executor(load_settings(config, state_dir=tmp_path))
    assert executor is not None
    token = Token("100", None, "qc").encode()
    handle = RunHandle("j1", "slurm", token, T0, uid=0)

    assert executor.poll([handle], T0) == []
    assert executor.poll([handle], T0 + timedelta(seconds=59)) == []
    [lost] = executor.poll([handle], T0 + timedelta(seconds=60))

    assert (lost.job_id, lost.finished_at, lost.succeeded) == ("j1", T0, False)
    assert "row cut short for 60 s" in lost.reason


def test_held_jobs_of_one_slurm_id_on_two_clusters_each_wait_their_own_minute_for_sacct(
    tmp_path: Path,
) -> None:
    """A held job gone from squeue waits up to a minute for its end in sacct. The wait was
    kept by Slurm id alone, though ids repeat across clusters: job 100 of cluster ``west``,
    first found gone 50 s after job 100 of the local cluster, was taken as started after 11 s
    of its own, and an end read for either cleared the other's wait. Each now waits its own
    minute, kept by cluster and id."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    held = executor.hold(launch_spec(tmp_path), T0 + timedelta(hours=1), "", T0)
    slurm_id = Token.decode("j1", held.token).slurm_id
    west = Token(slurm_id, "west", "pace").encode()
    slurm.jobs[slurm_id].state, slurm.dbd_down = "CANCELLED", True  # no end in sacct yet

    with pytest.raises(EndNotRecordedError):
        executor.withdraw("j1", held.token, T0, uid=0)
    for at in (T0 + timedelta(seconds=50), T0 + timedelta(seconds=61)):
        with pytest.raises(EndNotRecordedError):
            executor.withdraw("j2", west, at, uid=0)
    taken = executor.withdraw("j1", held.token, T0 + timedelta(seconds=61), uid=0)
    assert taken is not None and taken.started_at is not None  # its own minute is up
    with pytest.raises(EndNotRecordedError):
        executor.withdraw("j2", west, T0 + timedelta(seconds=109), uid=0)
    assert executor.withdraw("j2", west, T0 + timedelta(seconds=110), uid=0) is not None
