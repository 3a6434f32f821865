"""``carbond report`` on the ledger ``make demo`` leaves behind (issue 14 item 6)."""

from __future__ import annotations

import csv
import io
import json
import os
import pwd
import shutil
import sqlite3
import stat
import tracemalloc
from datetime import datetime
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.ledger import Ledger
from daemon.natural_order import natural_key
from daemon.reports import render as render_module
from daemon.reports.lines import user_name
from daemon.reports.summary import summarise
from daemon.settings import RegionSettings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service
from tests.daemon.reports.conftest import Run
from tests.daemon.reports.ledgers import ledger_copies

JOB_COLUMNS = {"uid", "name", "state", "submitted_at", "deadline", "spec_json"}
SUMMED = ("jobs", "gpu_hours", "energy_kwh", "operational_kg", "embodied_kg", "total_kg",
          "run_now_kg", "saved_kg")  # fmt: skip


def _outcomes(state: Path) -> list[dict[str, object]]:
    db = sqlite3.connect(state / "ledger.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM outcomes")]
    finally:
        db.close()


def test_region_totals_equal_the_sum_of_the_per_job_outcomes(
    demo_state: Path, carbond: Run
) -> None:
    report = json.loads(carbond("report", "--state-dir", str(demo_state), "--by", "region",
                                "--format", "json"))  # fmt: skip
    outcomes = _outcomes(demo_state)
    assert outcomes and all(o["total_g"] is not None for o in outcomes)
    totals = report["totals"]
    assert totals["jobs"] == len(outcomes)
    assert totals["total_kg"] * 1000 == pytest.approx(sum(o["total_g"] for o in outcomes))  # type: ignore[misc]
    assert totals["operational_kg"] * 1000 == pytest.approx(
        sum(o["operational_g"] for o in outcomes)  # type: ignore[misc]
    )
    assert totals["energy_kwh"] * 3.6e6 == pytest.approx(sum(o["energy_j"] for o in outcomes))  # type: ignore[misc]
    run_now = sum(o["run_now_total_g"] for o in outcomes)  # type: ignore[misc]
    assert totals["saved_kg"] * 1000 == pytest.approx(run_now - sum(o["total_g"] for o in outcomes))  # type: ignore[misc]
    regions = {o["region"] for o in outcomes}
    assert {r["key"] for r in report["rows"]} == regions
    for name in SUMMED:
        assert sum(r[name] for r in report["rows"]) == pytest.approx(totals[name]), name
    assert report["signal"].startswith("embedded")
    assert totals["measured_share"] == pytest.approx(1.0)


@pytest.mark.parametrize("by", ["job", "user", "model", "gpu", "region", "day"])
def test_every_grouping_adds_up(demo_state: Path, carbond: Run, by: str) -> None:
    report = json.loads(carbond("report", "--state-dir", str(demo_state), "--by", by, "--json"))
    for name in SUMMED:
        assert sum(r[name] for r in report["rows"]) == pytest.approx(report["totals"][name])
    if by == "job":
        assert len(report["rows"]) == len(_outcomes(demo_state))
        for row in report["rows"]:
            assert row["sci_g_per_request"] > 0 and row["sci_g_per_1k_output_tokens"] > 0


def test_the_period_selects_jobs_by_their_end(demo_state: Path, carbond: Run) -> None:
    ends = sorted(str(o["finished_at"]) for o in _outcomes(demo_state))
    middle = ends[len(ends) // 2]
    args = ("report", "--state-dir", str(demo_state), "--by", "job", "--json")
    before = json.loads(carbond(*args, "--until", middle))["totals"]["jobs"]
    after = json.loads(carbond(*args, "--since", middle))["totals"]["jobs"]
    assert before == sum(e < middle for e in ends)
    assert before + after == len(ends)


def test_relative_periods_are_read_as_the_readme_writes_them(
    demo_state: Path, carbond: Run
) -> None:
    """``--until -1d`` (the README's form, not ``--until=-1d``): argparse read ``-1d`` as an
    option and stopped with "expected one argument" before carbond saw it."""
    args = ("report", "--state-dir", str(demo_state), "--json")
    every = json.loads(carbond(*args, "--since", "-36500d", "--until", "2100-01-01"))
    none = json.loads(carbond(*args, "--until", "-36500d"))
    assert every["totals"]["jobs"] == len(_outcomes(demo_state)) > 0
    assert none["totals"]["jobs"] == 0


@pytest.mark.parametrize("fmt", ["csv", "md", "table"])
def test_other_formats_carry_the_same_rows(demo_state: Path, carbond: Run, fmt: str) -> None:
    text = carbond("report", "--state-dir", str(demo_state), "--by", "gpu", "--format", fmt)
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [r["key"] for r in rows] == ["RTX6000-Ada", "T4", "TOTAL"]
        assert float(rows[-1]["total_kg"]) > 0
    else:
        assert "RTX6000-Ada" in text and "TOTAL" in text and "total kgCO2e" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--since", "yesterday"), "--since 'yesterday'"),
     (("--since", "2026-03-02", "--until", "2026-03-01"), "is not after"),
     (("--since=-1000000000d",), "further back than any date"),  # an OverflowError before
     (("--since", "0001-01-01T00:00+01:00"), "outside years 1-9999 in UTC"),  # and these
     (("--until", "9999-12-31T23:00-05:00"), "outside years 1-9999 in UTC"),
     (("--since", "2999-01-01"), "is in the future"),  # showed until = now, before since
     (("--since=-١d",), "--since '-١d': expected RFC 3339"),  # read as -1d: \d is Unicode
     # an empty period [now, now): printed a report of nothing, where --until <= --since is
     # refused; and the forms the error lists name the units -12h has, not -7d alone
     (("--since=-0d",), "--since '-0d' is now, which leaves an empty period up to now"),
     (("--since=-0.0h",), "--since '-0.0h' is now"),
     # an empty value (`--since "$START"`, the variable unset) was no --since: a report
     # over the whole ledger, titled as asked for
     (("--since=",), "--since is empty: expected RFC 3339"),
     (("--until", " "), "--until is empty: expected RFC 3339"),
     (("--since", "yesterday"), "-N followed by s, m, h, d or w (-90m, -12h, -7d, -2w)")],
)  # fmt: skip
def test_bad_periods_are_usage_errors(
    demo_state: Path, carbond: Run, args: tuple[str, ...], message: str
) -> None:
    assert message in carbond("report", "--state-dir", str(demo_state), *args, code=2)


@pytest.mark.parametrize("flag", ["--plot", "--output"])
def test_a_file_that_cannot_be_written_is_named(
    demo_state: Path, carbond: Run, tmp_path: Path, flag: str
) -> None:
    target = tmp_path / "missing-dir" / "report.png"
    err = carbond("report", "--state-dir", str(demo_state), flag, str(target), code=1)
    assert f"{target}: cannot write: No such file or directory" in err
    # said before any work (a year's ledger takes a while): before the ledger is even opened
    err = carbond("report", "--state-dir", str(tmp_path), flag, str(target), code=1)
    assert err == f"carbond: error: {target}: cannot write: No such file or directory\n"


def test_output_says_what_it_wrote_as_plot_does(
    demo_state: Path, capsys: pytest.CaptureFixture[str], carbond: Run, tmp_path: Path
) -> None:
    """``report --plot x.png`` said ``wrote x.png`` on stderr; ``-o x.csv`` wrote silently."""
    target = tmp_path / "report.csv"
    assert carbond("report", "--state-dir", str(demo_state), "-o", str(target)) == ""
    assert target.read_text().startswith("key,jobs,")
    main(["report", "--state-dir", str(demo_state), "-o", str(target)])
    assert capsys.readouterr() == ("", f"wrote {target}\n")


def test_the_report_leaves_the_power_curves_in_the_ledger(
    demo_state: Path, carbond: Run, tmp_path: Path
) -> None:
    """The report read every outcome column, power curves (``details_json``) included, which
    no figure uses: over many NVML-metered jobs, gigabytes. It reads the columns it needs."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    curve_bytes = 10_000_000
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:
        db.execute(
            "UPDATE outcomes SET details_json = ?", (json.dumps({"curve": "x" * curve_bytes}),)
        )
    jobs = db.execute("SELECT count(*) FROM outcomes").fetchone()[0]
    db.close()
    args = ("report", "--state-dir", str(tmp_path), "--by", "job", "--json")
    carbond(*args)  # imports done
    tracemalloc.start()
    try:
        report = json.loads(carbond(*args))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report["totals"]["jobs"] == jobs > 1
    assert peak < curve_bytes  # not even one job's curves
    assert report == json.loads(carbond("report", "--state-dir", str(demo_state), "--by", "job",
                                        "--json")) | {"ledger": str(tmp_path / "ledger.db"),
                                                      "until": report["until"]}  # fmt: skip
    with Ledger.open_readonly(tmp_path / "ledger.db") as ledger:  # a new column is read too
        columns, _ = ledger.table_rows("outcomes")
        row = next(ledger.finished_outcomes())
    assert set(row) == set(columns) - {"details_json"} | JOB_COLUMNS


@pytest.mark.parametrize(
    "args",
    [("report", "--output"), ("export", "--format", "codecarbon")],
)
def test_a_directory_given_as_the_file_is_named_not_the_temporary_file(
    demo_state: Path, carbond: Run, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """``-o DIR`` said ``[Errno 21] Is a directory: '/x/.DIR.k3j.tmp' -> '/x/DIR'``."""
    target = tmp_path / "out.csv"
    target.mkdir()
    err = carbond(*args, str(target), "--state-dir", str(demo_state), code=1)
    assert err == f"carbond: error: {target}: cannot write: Is a directory\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # no temporary file left


def test_a_report_looks_each_user_up_once(
    demo_state: Path, carbond: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every job's line asked the password database for its owner's name: 100,000 lookups
    (each a round trip to LDAP on many clusters) for a report over 100,000 jobs."""
    looked_up: list[int] = []
    real = pwd.getpwuid

    def counted(uid: int) -> pwd.struct_passwd:
        looked_up.append(uid)
        return real(uid)

    monkeypatch.setattr(pwd, "getpwuid", counted)
    user_name.cache_clear()
    report = json.loads(carbond("report", "--state-dir", str(demo_state), "--by", "user", "--json"))
    assert report["totals"]["jobs"] == len(_outcomes(demo_state)) > 1
    assert looked_up == [os.getuid()]  # the demo's jobs are all the caller's


def test_the_terminal_table_shows_a_page_of_groups_and_the_total_over_all(
    demo_state: Path, carbond: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--by job`` over 111,000 jobs spent 272 s and 1.6 GB laying out a terminal table; the
    table shows the first ``TABLE_ROWS`` groups, the totals still over all, and says so."""
    monkeypatch.setattr(render_module, "TABLE_ROWS", 3, raising=False)
    args = ("report", "--state-dir", str(demo_state), "--by", "job")
    every = json.loads(carbond(*args, "--json"))
    keys = [row["key"] for row in every["rows"]]
    table = carbond(*args)
    assert len(keys) > 3 and all(k in table for k in keys[:3]) and keys[3] not in table
    assert f"shown: the first 3 of {len(keys)} groups, and the total over all" in table
    [total] = [line for line in table.splitlines() if "TOTAL" in line]
    assert total.split()[3] == str(every["totals"]["jobs"])  # │ TOTAL │ 7 │
    assert all(k in carbond(*args, "--format", "csv") for k in keys)  # the files list all


@pytest.mark.parametrize(
    "args",
    [("report", "--format", "csv", "--output"), ("export", "outcomes"),
     ("export", "--format", "codecarbon")],
)  # fmt: skip
def test_written_files_get_the_usual_permissions(
    demo_state: Path, carbond: Run, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Files came out 0600 (their temporary file's mode), whatever the umask, and replacing a
    shared 0644 emissions.csv left the dashboard reading it locked out."""
    new, shared = tmp_path / "new.csv", tmp_path / "shared.csv"
    shared.write_text("old\n")
    shared.chmod(0o640)
    umask = os.umask(0o022)
    try:
        for path in (new, shared):
            carbond(*args, str(path), "--state-dir", str(demo_state))
    finally:
        os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o644  # as `> new.csv` would make it
    assert stat.S_IMODE(shared.stat().st_mode) == 0o640  # the replaced file's
    assert shared.read_text() != "old\n"


@pytest.mark.parametrize(
    "args",
    [("report", "--format", "csv", "--output"), ("export", "outcomes"),
     ("export", "--format", "codecarbon")],
)  # fmt: skip
def test_a_replaced_file_lends_no_set_id_bits_nor_a_link_targets_mode(
    demo_state: Path, carbond: Run, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """The new file took the whole mode of what was at the path, following a symlink: run as
    root into a folder others can write, a planted 06777 file (or a link to a set-user-ID
    program) made root's report a set-user-ID, world-writable file."""
    planted, linked = tmp_path / "planted.csv", tmp_path / "linked.csv"
    planted.write_text("old\n")
    planted.chmod(0o6777)
    program = tmp_path / "program"
    program.write_text("")
    program.chmod(0o4755)
    linked.symlink_to(program)
    umask = os.umask(0o022)
    try:
        for path in (planted, linked):
            carbond(*args, str(path), "--state-dir", str(demo_state))
    finally:
        os.umask(umask)
    assert stat.S_IMODE(planted.stat().st_mode) == 0o777  # its permission bits only
    assert not linked.is_symlink()
    assert stat.S_IMODE(linked.stat().st_mode) == 0o644  # a new file's, not the program's
    assert stat.S_IMODE(program.stat().st_mode) == 0o4755 and program.read_text() == ""


def test_grid_intensity_times_grid_energy_is_the_operational_grams(
    tmp_path: Path, carbond: Run
) -> None:
    """The grid intensity was weighted by the GPUs' energy, not by the energy drawn from the
    grid (x PUE): over regions of different PUE, grid kWh x grid g/kWh missed the grams."""
    clock = FakeClock()
    regions = (
        RegionSettings(name="qc", zone="CA-QC", pue=1.1, executor="local", gpus=("T4",)),
        RegionSettings(name="de", zone="DE", pue=1.8, executor="local", gpus=("T4",)),
    )
    service = make_service(tmp_path, RecordingExecutor("local"), regions=regions)
    service.start(clock())
    for i, region in enumerate(("qc", "de") * 2):
        append(service.queue.path, job_line(id=f"j{i}", regions=[region]))
    for _ in range(6):
        service.tick(clock.advance(3600))
    assert service.ledger.counts_by_state() == {"succeeded": 4}
    service.ledger.close()
    report = json.loads(carbond("report", "--state-dir", str(tmp_path), "--by", "region", "--json"))
    totals = report["totals"]
    assert totals["jobs"] == 4 and {r["key"] for r in report["rows"]} == {"qc", "de"}
    for row in (*report["rows"], totals):
        assert row["grid_kwh"] * row["intensity_g_per_kwh"] == pytest.approx(
            row["operational_kg"] * 1000
        ), row["key"]


def test_the_report_says_what_it_counted_and_what_was_running_at_its_end(
    demo_state: Path, carbond: Run
) -> None:
    """A job running at ``--until`` was left out with no word of it, and the rows did not say
    that a job counts, in full, in the period (UTC) it finished."""
    db = sqlite3.connect(demo_state / "ledger.db")
    first, started, finished = db.execute(
        "SELECT job_id, started_at, finished_at FROM outcomes ORDER BY finished_at LIMIT 1"
    ).fetchone()
    db.close()
    middle = (
        datetime.fromisoformat(started)
        + (datetime.fromisoformat(finished) - datetime.fromisoformat(started)) / 2
    )
    args = ("report", "--state-dir", str(demo_state), "--by", "job")
    report = json.loads(carbond(*args, "--until", middle.isoformat(), "--json"))
    assert report["running_at_until"] >= 1
    assert first not in {row["key"] for row in report["rows"]}
    assert report["counted"].startswith("the jobs that finished in [since, until), UTC")
    # and what the savings are against: first-come claims, the scaling, no saving for a failure
    against = report["savings_against"]
    assert "first come, first served" in against and "scaled as the run turned out" in against
    assert "saves nothing" in against and "intensity realised over its own window" in against
    whole = json.loads(carbond(*args, "--json"))
    assert first in {row["key"] for row in whole["rows"]}
    assert "a day is the UTC date a job finished" in carbond(
        "report", "--state-dir", str(demo_state), "--by", "day", "--format", "md"
    )


def test_a_period_ending_ahead_says_what_runs_now_not_at_its_end(
    tmp_path: Path, carbond: Run
) -> None:
    """``report --until`` a time ahead counted the jobs running now as ``running_at_until``:
    as if known to run still at that end. It now says ``running_now`` for such a period."""
    clock = FakeClock()
    executor = RecordingExecutor(auto_finish=False)
    service = make_service(tmp_path, executor)
    service.start(clock())
    append(service.queue.path, job_line(id="long"))
    for _ in range(3):
        service.tick(clock.advance(600))
    assert service.ledger.counts_by_state() == {"running": 1}
    service.close()
    service.ledger.close()
    args = ("report", "--state-dir", str(tmp_path), "--json")
    ahead = json.loads(carbond(*args, "--until", "2999-01-01T00:00Z"))
    assert (ahead["running_at_until"], ahead["running_now"]) == (None, 1)
    text = carbond("report", "--state-dir", str(tmp_path), "--until", "2999-01-01T00:00Z")
    assert "running_now: 1" in text and "running_at_until" not in text
    past = json.loads(carbond(*args))  # up to now: as before
    assert past["running_at_until"] == 1 and "running_now" not in past


def test_a_piped_or_written_table_is_plain_ascii(
    demo_state: Path, carbond: Run, tmp_path: Path
) -> None:
    """``carbond report | cat`` and ``report -o FILE`` drew rich's box characters (``┏━┃``),
    though every other table is plain ASCII when piped (``print_table``); a terminal still
    gets the boxed table."""
    args = ("report", "--state-dir", str(demo_state))
    piped = carbond(*args)
    carbond(*args, "--output", str(tmp_path / "report.txt"))
    for text in (piped, (tmp_path / "report.txt").read_text()):
        assert text.isascii(), text
        lines = text.splitlines()
        assert any(line.startswith("| TOTAL ") for line in lines)
        assert any(line.startswith("+--") for line in lines)
    rows, totals = summarise([], "region")
    assert "┏" in render_module.render("table", rows, totals, {}, tty=True)


@pytest.mark.parametrize("columns", [80, 120])
def test_the_terminal_table_is_as_wide_as_the_terminal(
    demo_state: Path, carbond: Run, monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    """On a terminal the table was laid out for 220 columns whatever the terminal's width:
    its lines ran past the edge of a narrower window, which wrapped each one into a
    staircase; every other table takes the terminal's width (``print_table``)."""
    monkeypatch.setenv("COLUMNS", str(columns))  # what shutil.get_terminal_size reads first
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    table = carbond("report", "--state-dir", str(demo_state), "--by", "job")
    widths = [len(line) for line in table.splitlines() if line.startswith(("┃", "│", "┡"))]
    assert widths and max(widths) <= columns


def test_the_output_files_suffix_names_its_format(
    demo_state: Path, carbond: Run, tmp_path: Path
) -> None:
    """``report -o march.csv`` wrote the text table into march.csv (and ``-o x.json`` too),
    and ``--format csv -o x.json`` CSV under a JSON name; without ``--format`` the suffix
    names the format, as ``export`` reads it, and a suffix naming another format than the
    one asked for is refused (exit 2) before anything is written."""
    args = ("report", "--state-dir", str(demo_state), "--by", "gpu")
    carbond(*args, "-o", str(tmp_path / "march.csv"))
    carbond(*args, "-o", str(tmp_path / "march.json"))
    carbond(*args, "-o", str(tmp_path / "march.md"))
    assert (tmp_path / "march.csv").read_text() == carbond(*args, "--format", "csv")
    assert json.loads((tmp_path / "march.json").read_text())["totals"]["jobs"] > 0
    assert (tmp_path / "march.md").read_text().startswith("# carbond report by gpu\n")
    for flags, name, message in [
        (("--format", "csv"), "x.json", "a .json file, but --format csv writes CSV (name it "),
        (("--json",), "x.csv", "a .csv file, but --json writes JSON (name it "),
        (("--format", "table"), "x.md", "a .md file, but --format table writes a text table"),
        (("--audit",), "x.csv", "a .csv file, but --audit writes Markdown (name it "),
    ]:
        err = carbond(*args, *flags, "-o", str(tmp_path / name), code=2)
        assert f"carbond: error: {tmp_path / name}: {message}" in err
        assert not (tmp_path / name).exists()


def test_json_and_another_format_are_refused_not_one_silently_dropped(
    demo_state: Path, carbond: Run
) -> None:
    """``report --json --format csv`` printed JSON, the --format dropped without a word (while
    ``--json -o x.csv`` is refused): a script asking for CSV parsed JSON. Two formats asked
    for are refused (exit 2); ``--json --format json`` is one."""
    args = ("report", "--state-dir", str(demo_state))
    for fmt in ("csv", "md", "table"):
        err = carbond(*args, "--json", "--format", fmt, code=2)
        assert err == (f"carbond: error: --json and --format {fmt} ask for two formats: give "
                       "one (--json is --format json)\n")  # fmt: skip
    assert json.loads(carbond(*args, "--json", "--format", "json"))["totals"]["jobs"] > 0


def test_the_report_holds_its_lines_not_every_outcome_row_as_well(
    demo_state: Path, tmp_path: Path
) -> None:
    """A report read every outcome row into a list of dicts and then made a line of each,
    holding both: over 200,000 jobs, 0.4 GB of its 0.7. The rows are read one at a time."""
    with Ledger.open_readonly(demo_state / "ledger.db") as ledger:
        rows = ledger.finished_outcomes()
        first = next(rows)
        assert first["job_id"] == next(ledger.finished_outcomes())["job_id"]
        assert len([first, *rows]) == len(_outcomes(demo_state))


def test_table_cells_and_title_are_shown_as_written_not_as_markup() -> None:
    """A group is a login name (pwd/LDAP), a region or a job id: ``[/x]`` in one ended the
    report in a MarkupError traceback, and ``[bold]`` vanished from it."""
    text = render_module._table(
        ["group", "jobs"], [["ann[/x]", "1"], ["[bold]bob", "2"], ["TOTAL", "3"]],
        {"title": "by [i]user"}, None, False,
    )  # fmt: skip
    assert "ann[/x]" in text and "[bold]bob" in text and "by [i]user" in text


def test_a_report_by_job_writes_each_row_as_it_reads_its_job(
    demo_state: Path, carbond: Run, tmp_path: Path
) -> None:
    """``report --by job --json`` held every job's line, every row, their dicts and the whole
    JSON text before writing a byte: 37 s and 1.7 GB over 200,000 jobs. Rows are written as
    their jobs are read (in job id order) and the totals, summed in the order the jobs
    finished, are to the bit those of any other grouping."""
    jobs = ledger_copies(demo_state, tmp_path, 600)
    out = tmp_path / "jobs.json"
    args = ("report", "--state-dir", str(tmp_path), "--until", "2100-01-01", "--by", "job")
    carbond(*args, "--json", "-o", str(out))  # imports done
    tracemalloc.start()
    try:
        carbond(*args, "--json", "-o", str(out))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    report = json.loads(out.read_text())
    assert report["totals"]["jobs"] == len(report["rows"]) == jobs > 1000
    assert peak < out.stat().st_size / 5  # a row at a time, not the report
    keys = [row["key"] for row in report["rows"]]
    assert keys == sorted(keys, key=lambda k: (natural_key(k), k)) and len(set(keys)) == jobs
    by_region = json.loads(carbond(*args[:-1], "region", "--json"))
    assert report["totals"] == by_region["totals"]
    table = carbond(*args, "--format", "csv").splitlines()
    assert len(table) == jobs + 2 and table[-1].startswith("TOTAL,")
