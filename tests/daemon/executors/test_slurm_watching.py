"""Watching Slurm jobs (:mod:`daemon.executors.slurm.watching`) when one job's sacct rows
cannot be read (cut short, a field that is no number or no time, a fragment of a line): that
job's end is read from what can be, or waited for, and named once; every other job's end is
read whole. The run-token and squeue cases are in test_slurm_watching_tokens.py and
test_slurm_watching_squeue.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.executors.errors import EndNotRecordedError
from daemon.executors.slurm.queries import Token
from daemon.executors.slurm.runner import CommandResult
from tests.daemon.executors.fake_slurm import (
    T0,
    FakeSlurm,
    launch_spec,
    slurm_executor,
)

ONE_S = timedelta(seconds=1)  # FakeSlurm's jobs start 1 s after T0


def test_one_unreadable_sacct_energy_records_that_end_without_energy_and_the_others_whole(
    tmp_path: Path,
) -> None:
    """A ``ConsumedEnergyRaw`` sacct printed that is no number failed the parse of the whole
    answer (``slurm_sacct_failed``), so no job of that cluster was ever seen to end. Now
    that job ends with its energy unknown, the reason naming the field; the others keep
    theirs."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    odd = executor.launch(launch_spec(tmp_path), T0)
    fine = executor.launch(replace(launch_spec(tmp_path), job_id="j2"), T0)
    for handle, energy in ((odd, "12.5kJ"), (fine, "300")):
        job = slurm.jobs[Token.decode(handle.job_id, handle.token).slurm_id]
        job.state, job.energy = "GONE", energy

    with capture_logs() as logs:
        ends = {s.job_id: s for s in executor.poll([odd, fine], T0 + timedelta(minutes=1))}

    assert ends["j1"].succeeded and ends["j1"].energy_j is None
    assert "sacct unreadable: ConsumedEnergyRaw '12.5kJ' (batch)" in ends["j1"].reason
    assert ends["j2"].succeeded and ends["j2"].energy_j == 300.0
    assert ends["j2"].reason == "slurm COMPLETED"
    assert not [e for e in logs if e["event"] == "slurm_sacct_failed"]


def test_a_completed_job_whose_exit_code_cannot_be_read_succeeds_saying_so(
    tmp_path: Path,
) -> None:
    """A ``COMPLETED`` job whose sacct ``ExitCode`` could not be read ended ``failed`` (no exit
    code). Slurm records ``COMPLETED`` only when every step exited 0, so it now succeeds, the
    reason naming the unreadable field and where its exit code came from; a ``FAILED`` job
    with an unreadable ``ExitCode`` still fails, its exit code unknown."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    odd = executor.launch(launch_spec(tmp_path), T0)
    failed = executor.launch(replace(launch_spec(tmp_path), job_id="j2"), T0)
    for handle, state in ((odd, "GONE"), (failed, "FAILED")):
        job = slurm.jobs[Token.decode(handle.job_id, handle.token).slurm_id]
        job.state, job.exit = state, "0:x"

    ends = {s.job_id: s for s in executor.poll([odd, failed], T0 + timedelta(minutes=1))}

    assert ends["j1"].succeeded and ends["j1"].exit_code == 0
    assert ends["j1"].reason == (
        "slurm COMPLETED; sacct unreadable: ExitCode '0:x' (job); exit code 0 from its state "
        "(Slurm's COMPLETED: every step exited 0)"
    )
    assert not ends["j2"].succeeded and ends["j2"].exit_code is None
    assert ends["j2"].reason == "slurm FAILED; sacct unreadable: ExitCode '0:x' (job)"


def test_one_cut_short_or_unreadably_timed_sacct_row_affects_that_job_only(
    tmp_path: Path,
) -> None:
    """A sacct row with the wrong number of fields, or a Start or End that is no time, failed
    the parse of the whole answer (``slurm_sacct_failed``), so no job of the poll was seen to
    end. Now each is named once (``slurm_sacct_unreadable``): a job whose row is cut short
    keeps running until a later poll reads it; one with unreadable times ends, at the poll's
    time for its End and at its launch for its Start (the reason naming both); the others
    end as Slurm recorded them."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    handles = [
        executor.launch(replace(launch_spec(tmp_path), job_id=f"j{n}"), T0) for n in (1, 2, 3)
    ]
    jobs = [slurm.jobs[Token.decode(h.job_id, h.token).slurm_id] for h in handles]
    for job in jobs:
        job.state = "GONE"
    jobs[0].cut = True
    jobs[1].ran = ("2026-12-04T21:00:0x", "yesterday")
    now = T0 + timedelta(minutes=1)

    with capture_logs() as logs:
        ends = {s.job_id: s for s in executor.poll(handles, now)}
        assert executor.poll(handles[:1], now + timedelta(minutes=1)) == []  # still cut short
        jobs[0].cut = False
        [later] = executor.poll(handles[:1], now + timedelta(minutes=2))

    assert sorted(ends) == ["j2", "j3"]
    assert ends["j2"].succeeded and ends["j2"].started_at is None
    assert (ends["j2"].finished_at, ends["j2"].end_to_second) == (now, False)
    assert "sacct unreadable: Start '2026-12-04T21:00:0x' (job), End 'yesterday' (job)" in (
        ends["j2"].reason
    )
    assert (ends["j3"].reason, ends["j3"].started_at) == ("slurm COMPLETED", T0 + ONE_S)
    assert (later.job_id, later.succeeded, later.reason) == ("j1", True, "slurm COMPLETED")
    named = [e for e in logs if e["event"] == "slurm_sacct_unreadable"]
    ids = [Token.decode(h.job_id, h.token).slurm_id for h in handles]
    assert [e["slurm_id"] for e in named] == ids[:2]  # once each
    assert "row of 4 '|'-separated fields, not 9" in named[0]["fields"][0]
    assert not [e for e in logs if e["event"] == "slurm_sacct_failed"]


def test_a_cut_short_sacct_answer_of_a_job_looked_up_by_name_decides_nothing(
    tmp_path: Path,
) -> None:
    """A job released with no Slurm id recorded, gone from squeue, is looked up in sacct by
    name: a cut-short answer failed the hand-over (``sacct: expected 8 fields``) as if Slurm
    had refused it. Whether an earlier submission ran is not known then: it now waits for a
    later round (:class:`EndNotRecordedError`), nothing submitted again."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    executor.launch(launch_spec(tmp_path), T0)  # its token lost in a crash
    [job] = slurm.jobs.values()
    job.state, job.cut = "GONE", True

    with pytest.raises(EndNotRecordedError, match="cut short"):
        executor.release(launch_spec(tmp_path), "", T0 + timedelta(minutes=1))
    assert len(slurm.jobs) == 1


def test_an_unreadable_sacct_row_is_named_per_cluster_and_again_for_a_later_job_of_its_id(
    tmp_path: Path,
) -> None:
    """``slurm_sacct_unreadable`` was logged once per Slurm id, whatever the cluster, and the
    id was never forgotten: job 100 of a second cluster (ids repeat across clusters, and on a
    cluster rebuilt) was never named, nor a later job reusing an id, and the set grew for the
    daemon's life. It is now kept by (cluster, id) and dropped when the job ends."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    first = executor.launch(launch_spec(tmp_path), T0)
    slurm_id = Token.decode("j1", first.token).slurm_id
    west = replace(first, job_id="j2", token=Token(slurm_id, "west", "pace").encode())
    job = slurm.jobs[slurm_id]
    job.state, job.energy = "GONE", "12.5kJ"  # its batch row's energy unreadable

    with capture_logs() as logs:
        ends = executor.poll([first, west], T0 + timedelta(minutes=1))
        again = replace(first, job_id="j3")  # a later carbond job given the same Slurm id
        [later] = executor.poll([again], T0 + timedelta(minutes=2))

    assert sorted(e.job_id for e in ends) == ["j1", "j2"] and later.job_id == "j3"
    named = [(e["cluster"], e["slurm_id"]) for e in logs if e["event"] == "slurm_sacct_unreadable"]
    assert named == [(None, slurm_id), ("west", slurm_id), (None, slurm_id)]


def test_a_job_whose_sacct_end_cannot_be_read_ends_at_its_batch_step_s_end(
    tmp_path: Path,
) -> None:
    """A job whose sacct End could not be read ended at the poll's time, so after carbond had
    been down for hours its run (and the grid intensity, energy estimate and grams over it)
    stretched to hours. It now ends at its batch step's End where that is readable, to the
    second; only without one at the poll's time; the reason says which."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    handles = [executor.launch(replace(launch_spec(tmp_path), job_id=f"j{n}"), T0) for n in (1, 2)]
    jobs = [slurm.jobs[Token.decode(h.job_id, h.token).slurm_id] for h in handles]
    for job in jobs:
        job.state, job.job_end = "GONE", "yesterday"
    jobs[1].ran = ("2026-12-04T21:00:01", "yesterday")  # its batch step's End too
    now = T0 + timedelta(hours=3)  # carbond was down meanwhile

    ends = {s.job_id: s for s in executor.poll(handles, now)}

    batch = ends["j1"]
    assert (batch.started_at, batch.finished_at) == (T0 + ONE_S, T0 + 5 * ONE_S)
    assert batch.succeeded and batch.end_to_second
    assert batch.reason == (
        "slurm COMPLETED; sacct unreadable: End 'yesterday' (job); end from its batch step's End"
    )
    late = ends["j2"]
    assert (late.finished_at, late.end_to_second) == (now, False)
    assert late.reason.endswith("End 'yesterday' (batch); end unknown: taken as the poll's time")


def test_a_job_whose_sacct_row_stays_cut_short_ends_failed_after_ten_minutes(
    tmp_path: Path,
) -> None:
    """A job gone from squeue whose sacct job row stayed cut short was asked about every poll
    for ever, logged once, and stayed ``running``. It now ends ``failed`` once its row has
    been cut short for ten minutes, at the first poll that found it so, the reason naming the
    row; one whose row reads whole meanwhile ends as Slurm recorded it."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    handles = [executor.launch(replace(launch_spec(tmp_path), job_id=f"j{n}"), T0) for n in (1, 2)]
    jobs = [slurm.jobs[Token.decode(h.job_id, h.token).slurm_id] for h in handles]
    for job in jobs:
        job.state, job.cut = "GONE", True
    first = T0 + timedelta(minutes=1)

    with capture_logs() as logs:
        for m in (0, 5, 9):
            assert executor.poll(handles, first + timedelta(minutes=m)) == []
        jobs[1].cut = False
        [read] = executor.poll(handles, first + timedelta(minutes=9, seconds=30))
        [lost] = executor.poll(handles[:1], first + timedelta(minutes=10))

    assert (read.job_id, read.succeeded, read.reason) == ("j2", True, "slurm COMPLETED")
    assert (lost.job_id, lost.finished_at, lost.exit_code, lost.energy_j) == (
        "j1", first, None, None,
    )  # fmt: skip
    slurm_id = Token.decode("j1", handles[0].token).slurm_id
    assert lost.reason.startswith(
        f"slurm state unknown: sacct printed Slurm job {slurm_id}'s row cut short for 600 s "
        "(row of 4 '|'-separated fields, not 9: "
    )
    assert not lost.succeeded and lost.started_at is None
    given_up = [e["job_id"] for e in logs if e["event"] == "slurm_sacct_lost_given_up"]
    assert given_up == ["j1"]
    assert len([e for e in logs if e["event"] == "slurm_sacct_unreadable"]) == 2  # once each


def test_a_job_whose_sacct_start_cannot_be_read_started_at_its_batch_step_s_start(
    tmp_path: Path,
) -> None:
    """A job whose sacct Start could not be read was taken as started at its release, however
    long Slurm kept it pending after that (its run, and the grid intensity and grams over
    it, stretched back to the release), and the reason did not say so. It now starts at its
    batch step's Start where that is readable; only without one at its release; the reason
    says which."""
    slurm = FakeSlurm()
    executor = slurm_executor(slurm)
    handles = [executor.launch(replace(launch_spec(tmp_path), job_id=f"j{n}"), T0) for n in (1, 2)]
    jobs = [slurm.jobs[Token.decode(h.job_id, h.token).slurm_id] for h in handles]
    for job in jobs:
        job.state, job.job_start = "GONE", "2026-12-04T21:00:0x"
    jobs[1].ran = ("Unknwn", "2026-12-04T21:00:05")  # its batch step's Start too

    ends = {s.job_id: s for s in executor.poll(handles, T0 + timedelta(minutes=1))}

    batch = ends["j1"]
    assert (batch.started_at, batch.finished_at) == (T0 + ONE_S, T0 + 5 * ONE_S)
    assert batch.reason == (
        "slurm COMPLETED; sacct unreadable: Start '2026-12-04T21:00:0x' (job); "
        "start from its batch step's Start"
    )
    unknown = ends["j2"]
    assert unknown.started_at is None and unknown.finished_at == T0 + 5 * ONE_S
    assert unknown.reason.endswith("Start 'Unknwn' (batch); start unknown: taken as its release")


class _Fragments(FakeSlurm):
    """:class:`FakeSlurm` whose sacct answer starts with a fragment of job ``fragment``'s row
    (a line cut in two) and prints job ``cut_batch``'s batch row cut short."""

    fragment = ""
    cut_batch = ""

    def _sacct(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        result = super()._sacct(argv, opts)
        lines = [f"{self.fragment}|COMPLETED|0:0"] + [
            line[:30] if line.startswith(f"{self.cut_batch}.batch|") else line
            for line in result.stdout.splitlines()
        ]
        return replace(result, stdout="".join(line + "\n" for line in lines))


def test_a_sacct_fragment_a_readable_row_of_its_id_replaced_is_not_named_unreadable(
    tmp_path: Path,
) -> None:
    """A line cut in two leaves a fragment whose first field reads as some job's id; the
    readable row of that id printed after it is what the end is read from. The fragment was
    still named (``slurm_sacct_unreadable``, ``row of 3 '|'-separated fields``) for a job
    whose end was read whole, sending the operator to look for a problem that did not affect
    it. Only what stays unreadable once the readable row wins is named: here the other job's
    fragment of its batch step, which no readable row replaced."""
    slurm = _Fragments()
    executor = slurm_executor(slurm)
    whole = executor.launch(launch_spec(tmp_path), T0)
    cut = executor.launch(replace(launch_spec(tmp_path), job_id="j2"), T0)
    whole_id, cut_id = (Token.decode("", h.token).slurm_id for h in (whole, cut))
    for slurm_id in (whole_id, cut_id):
        slurm.jobs[slurm_id].state = "GONE"
    slurm.fragment, slurm.cut_batch = whole_id, cut_id

    with capture_logs() as logs:
        ends = {e.job_id: e for e in executor.poll([whole, cut], T0 + timedelta(minutes=1))}

    assert (ends["j1"].succeeded, ends["j1"].reason) == (True, "slurm COMPLETED")
    named = [(e["slurm_id"], e["fields"]) for e in logs if e["event"] == "slurm_sacct_unreadable"]
    assert [slurm_id for slurm_id, _ in named] == [cut_id]
    assert len(named[0][1]) == 1 and named[0][1][0].endswith("(batch)")
