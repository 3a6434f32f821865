"""``carbond export --since/--until``: the period's rows, as ``carbond report`` counts it (until
2026-12-07 export had no period: every row of the ledger, whatever report was asked)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from daemon.settings import RegionSettings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service
from tests.daemon.reports.conftest import Run


def _ends(state: Path) -> dict[str, str]:
    db = sqlite3.connect(state / "ledger.db")
    ends = dict(db.execute("SELECT job_id, finished_at FROM outcomes"))
    db.close()
    return ends


def _middle(state: Path) -> str:
    ends = sorted(_ends(state).values())
    return ends[len(ends) // 2]


@pytest.mark.parametrize("table", ["jobs", "transitions", "decisions", "runs", "outcomes"])
def test_a_job_table_holds_the_jobs_report_counts(
    demo_state: Path, carbond: Run, table: str
) -> None:
    state = ("--state-dir", str(demo_state))
    middle = _middle(demo_state)
    for flag in ("--since", "--until"):
        report = json.loads(carbond("report", *state, "--by", "job", "--json", flag, middle))
        counted = {row["key"] for row in report["rows"]}
        text = carbond("export", *state, table, "-", flag, middle)
        rows = list(csv.DictReader(io.StringIO(text)))
        assert counted and {row["job_id"] for row in rows} == counted, flag
    everything = carbond("export", *state, table, "-")
    assert len(everything) > len(carbond("export", *state, table, "-", "--since", middle))


def test_samples_are_those_taken_in_the_period(demo_state: Path, carbond: Run) -> None:
    state = ("--state-dir", str(demo_state))
    every = json.loads(carbond("export", *state, "intensity_samples", "-", "--format", "json"))
    ats = sorted(row["at"] for row in every)
    since, until = ats[len(ats) // 4], ats[3 * len(ats) // 4]
    text = carbond("export", *state, "intensity_samples", "-", "--format", "json",
                   "--since", since, "--until", until)  # fmt: skip
    got = json.loads(text)
    assert 0 < len(got) < len(every)
    assert got == [row for row in every if since <= row["at"] < until]


def test_codecarbon_rows_and_a_file_export_take_the_period(
    demo_state: Path, carbond: Run, tmp_path: Path
) -> None:
    state = ("--state-dir", str(demo_state))
    middle = _middle(demo_state)
    later = {job for job, end in _ends(demo_state).items() if end >= middle}
    emissions = carbond("export", *state, "--format", "codecarbon", "-", "--since", middle)
    assert {row["run_id"] for row in csv.DictReader(io.StringIO(emissions))} == later
    out = json.loads(carbond("export", *state, "outcomes", str(tmp_path / "o.json"),
                             "--since", middle, "--json"))  # fmt: skip
    assert out["rows"] == len(later)
    assert {row["job_id"] for row in json.loads((tmp_path / "o.json").read_text())} == later
    # the README's relative form (`--until -1d`, not `--until=-1d`): the demo ran in 2026-03
    assert carbond("export", *state, "outcomes", "-", "--until", "-36500d").count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--since", "yesterday"), "--since 'yesterday': expected RFC 3339"),
     (("--since", "2026-03-02", "--until", "2026-03-01"), "is not after --since"),
     (("--since=",), "--since is empty")],
)  # fmt: skip
def test_a_bad_period_is_refused_as_report_refuses_it(
    demo_state: Path, carbond: Run, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    target = tmp_path / "o.csv"
    err = carbond("export", "--state-dir", str(demo_state), "outcomes", str(target), *args,
                  code=2)  # fmt: skip
    assert message in err and len(err.splitlines()) == 1
    assert not target.exists()


ONE_T4 = (RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("T4",)),)


def _ended_unrun(state: Path) -> None:
    """``ran`` holds the one GPU and finishes; behind it, ``gone`` is cancelled and ``late``
    expires, both before they start (no outcome row)."""
    clock = FakeClock()
    service = make_service(state, RecordingExecutor(duration_factor=3.0), regions=ONE_T4)
    service.start(clock())
    append(service.queue.path, job_line(id="ran", model="llama-3.2-1b", requests=400))
    service.tick(clock())
    append(service.queue.path,
           job_line(id="gone", model="llama-3.2-1b", requests=40)
           + job_line(id="late", model="llama-3.2-1b", requests=40, deadline="+22m"))  # fmt: skip
    service.tick(clock())
    clock.advance(300)
    append(service.queue.path, '{"cancel": "gone"}\n')
    for _ in range(60):
        service.tick(clock())
        clock.advance(300)
    service.close()
    service.ledger.close()


def _moments(state: Path) -> list[str]:
    """Every time a job of ``state`` was submitted, changed state or had as its deadline."""
    db = sqlite3.connect(state / "ledger.db")
    times = {at for (at,) in db.execute("SELECT at FROM transitions")}
    times |= {at for (at,) in db.execute("SELECT deadline FROM jobs WHERE deadline IS NOT NULL")}
    db.close()
    return sorted(times)


@pytest.mark.parametrize("table", ["jobs", "transitions", "decisions"])
def test_a_job_that_ended_unrun_is_in_one_period(tmp_path: Path, carbond: Run, table: str) -> None:
    """A job cancelled or expired before it started (no outcome) was in no period's export:
    the monthly exports of a ledger, together, lacked it (and its transitions), and the job
    a report counts as ``expired_unstarted`` was in no export of that report's period. It is
    in the period it ended in (``expired``: of its deadline, as the report counts it)."""
    _ended_unrun(tmp_path)
    state = ("--state-dir", str(tmp_path))

    def ids(*period: str) -> set[str]:
        text = carbond("export", *state, table, "-", *period)
        return {row["job_id"] for row in csv.DictReader(io.StringIO(text))}

    with Ledger.open_readonly(tmp_path / "ledger.db") as ledger:
        assert {j: ledger.job(j).state for j in ("ran", "gone", "late")} == {
            "ran": "succeeded", "gone": "cancelled", "late": "expired"}  # fmt: skip
    every = ids()
    assert every == {"ran", "gone", "late"}
    moments = [datetime.fromisoformat(at) for at in _moments(tmp_path)]
    half = timedelta(seconds=0.5)
    for cut in sorted({*moments, *(at + half for at in moments)}):  # each, and just after
        before, after = ids("--until", cut.isoformat()), ids("--since", cut.isoformat())
        assert before | after == every and not before & after, cut
        report = json.loads(carbond("report", *state, "--until", cut.isoformat(), "--json"))
        assert ("late" in before) == (report["expired_unstarted"] == 1), cut
