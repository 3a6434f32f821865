"""``carbond report --plot`` writes a real figure; ``--audit`` the monthly statement."""

from __future__ import annotations

import csv
import dataclasses
import io
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon.ledger import Ledger
from daemon.reports.lines import UNKNOWN_ZONE, ledger_lines
from daemon.reports.plots import report_figure
from tests.daemon.reports.conftest import Run


def test_plot_writes_a_real_png_with_the_three_panels(
    demo_state: Path, carbond: Run, tmp_path: Path
) -> None:
    path = tmp_path / "report.png"
    carbond("report", "--state-dir", str(demo_state), "--plot", str(path), "--format", "json")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.shape[0] > 800 and pixels.shape[1] > 600
    # not blank: the panels draw coloured bars and lines over a white background
    assert (pixels.std(axis=(0, 1)) > 10).all()
    orange = (abs(pixels[..., 0] - 0xE6) < 8) & (abs(pixels[..., 1] - 0x55) < 8)
    assert orange.sum() > 1000  # the operational bars (and a region's jobs)


def test_audit_is_a_monthly_statement_that_adds_up(demo_state: Path, carbond: Run) -> None:
    text = carbond("report", "--state-dir", str(demo_state), "--audit")
    for heading in ("## Method", "## Emissions by month", "## Emission factors and PUE",
                    "## Data sources", "## Embodied carbon assumptions",
                    "## Energy measured and estimated"):  # fmt: skip
        assert heading in text
    db = sqlite3.connect(demo_state / "ledger.db")
    total_g, month = db.execute(
        "SELECT sum(total_g), substr(min(finished_at), 1, 7) FROM outcomes"
    ).fetchone()
    db.close()
    row = next(line for line in text.splitlines() if line.startswith(f"| {month} |"))
    assert (
        float(row.split("|")[9].replace(",", "")) * 1000 == float(f"{total_g:.6g}")
        or abs(float(row.split("|")[9].replace(",", "")) * 1000 - total_g) < 1e-3 * total_g
    )
    assert "location-based" in text.lower() and "PUE" in text and "embedded" in text


def _month_rows(statement: str) -> dict[str, list[str]]:
    """The ``Emissions by month`` table's rows by month, their cells stripped."""
    table = statement.split("## Emissions by month", 1)[1].split("##", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]
    return {row[0]: row[1:] for row in rows if row[0][:2] == "20"}


@pytest.mark.parametrize(
    ("period", "months"),
    [(("--since", "2026-01-15", "--until", "2026-05-01"),
      ["2026-03", "2026-04"]),  # none before the ledger's first record (2026-03-02)
     (("--since", "2026-03-01", "--until", "2026-05-01T00:00:01Z"),
      ["2026-03", "2026-04", "2026-05"]),
     (("--since", "2026-04-01", "--until", "2026-06-01"), ["2026-04", "2026-05"])],
)  # fmt: skip
def test_audit_lists_every_month_of_the_period_with_no_job_as_zero(
    demo_state: Path, carbond: Run, period: tuple[str, ...], months: list[str]
) -> None:
    """A statement "by calendar month" left out the months of its period in which no job
    finished: a month with no emissions read as one not reported. The demo's jobs all
    finished in 2026-03; its ledger begins then (months before it are not listed:
    test_audit_months)."""
    text = carbond("report", "--state-dir", str(demo_state), "--audit", *period)
    rows = _month_rows(text)
    assert list(rows) == months
    for month, cells in rows.items():
        if month != "2026-03":
            assert cells == ["0"] * 9, month
    if "2026-03" in rows:
        assert rows["2026-03"][0] == "7"


def test_audit_states_the_sites_embodied_carbon_not_the_builtin_one(
    demo_state: Path, carbond: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site that overrides a GPU's embodied carbon (``[catalog.gpus.T4]``) is charged that
    figure by the daemon; the statement's assumptions name it, not the built-in catalog's."""
    monkeypatch.setenv("CARBOND_CATALOG__GPUS", '{"T4": {"embodied_kg": 20}}')
    text = carbond("report", "--state-dir", str(demo_state), "--audit")
    section = text.split("## Embodied carbon assumptions", 1)[1]
    t4 = next(line for line in section.splitlines() if line.startswith("| T4 |"))
    assert t4.split("|")[2:5] == [" 20 ", " 5 ", " config "]
    rtx = next(line for line in section.splitlines() if line.startswith("| RTX6000-Ada |"))
    assert rtx.split("|")[2:5] == [" 26.6 ", " 5 ", " paper-table-1 "]


@pytest.mark.parametrize(
    ("env", "named", "not_named"),
    [
        ({}, "lifecycle (LCA) average", "direct"),
        ({"CARBOND_ELECTRICITYMAPS__EMISSION_FACTOR_TYPE": "direct"}, "direct (", "LCA"),
        ({"CARBOND_ELECTRICITYMAPS__EMISSION_FACTOR_TYPE": "direct",
          "CARBOND_INTENSITY__SOURCE": "static"}, "lifecycle (LCA) average", "direct"),
    ],
)  # fmt: skip
def test_audit_method_names_the_configured_intensity_signal(
    demo_state: Path,
    carbond: Run,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    named: str,
    not_named: str,
) -> None:
    """The statement's method names the signal the daemon records: Electricity Maps' direct
    factors when ``emission_factor_type = "direct"``, not a lifecycle signal it never used."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    text = carbond("report", "--state-dir", str(demo_state), "--audit")
    method = text.split("## Method", 1)[1].split("##", 1)[0]
    assert named in method
    assert not_named not in method


@pytest.mark.parametrize(("name", "magic"), [("report", b"\x89PNG"), ("report.pdf", b"%PDF")])
def test_plot_writes_the_file_it_names(
    demo_state: Path, carbond: Run, tmp_path: Path, name: str, magic: bytes
) -> None:
    """``--plot report`` (no suffix) wrote ``report.png`` and said ``wrote report``."""
    path = tmp_path / name
    carbond("report", "--state-dir", str(demo_state), "--plot", str(path), "--json")
    assert path.read_bytes().startswith(magic)
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_plot_in_a_format_matplotlib_cannot_draw_is_one_line(
    demo_state: Path, carbond: Run, tmp_path: Path
) -> None:
    """``--plot report.xyz`` ended in matplotlib's ValueError traceback."""
    path = tmp_path / "report.xyz"
    err = carbond("report", "--state-dir", str(demo_state), "--plot", str(path), code=2)
    assert err.startswith(f"carbond: error: --plot {path}: cannot draw a .xyz file (use ")
    assert "png" in err and len(err.splitlines()) == 1
    assert not path.exists()


@pytest.mark.parametrize("flag", [("--json",), ("--format", "csv"), ("--format", "json")])
def test_audit_asked_for_another_format_says_so(
    demo_state: Path, carbond: Run, flag: tuple[str, ...]
) -> None:
    """``--audit --json`` printed Markdown, which the script that asked for JSON failed to
    parse; it is a usage error naming the flag (``--format md`` is what it writes)."""
    err = carbond("report", "--state-dir", str(demo_state), "--audit", *flag, code=2)
    named = " ".join(flag)
    assert (
        err == f"carbond: error: --audit writes a Markdown statement, not {named}: drop {named}\n"
    )
    statement = carbond("report", "--state-dir", str(demo_state), "--audit", "--format", "md")
    assert statement.startswith("# Location-based")


@pytest.mark.parametrize("by", ["user", "region"])
def test_audit_asked_for_a_grouping_says_so(demo_state: Path, carbond: Run, by: str) -> None:
    """``--audit --by user`` printed the statement by month and region as if it were by
    user, the grouping dropped without a word; it is a usage error naming the flag."""
    err = carbond("report", "--state-dir", str(demo_state), "--audit", "--by", by, code=2)
    assert err == (
        f"carbond: error: --audit writes the statement by month (and region), not --by {by}: "
        f"drop --by {by}\n"
    )


@pytest.mark.parametrize("audit", [(), ("--audit",)])
def test_the_plot_and_the_output_cannot_be_one_file(
    demo_state: Path, carbond: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    audit: tuple[str, ...],
) -> None:  # fmt: skip
    """``report --plot r.png -o r.png`` drew the figure, then wrote the report over it: the
    figure was lost though stderr said ``wrote r.png`` twice. Refused before anything is
    written, however the two paths spell the file."""
    monkeypatch.chdir(tmp_path)
    err = carbond("report", "--state-dir", str(demo_state), *audit, "--plot", "r.png",
                  "-o", str(tmp_path / "r.png"), code=2)  # fmt: skip
    assert err == (
        f"carbond: error: --output {tmp_path / 'r.png'} and --plot r.png are one file: name two\n"
    )
    assert not (tmp_path / "r.png").exists()


def test_many_jobs_are_drawn_as_one_collection_per_region_with_no_warning(
    demo_state: Path, tmp_path: Path
) -> None:
    """``report --plot`` drew each job's bar over its region's intensity as a line of its own:
    313 s and 2.9 GB over 200,000 jobs; matplotlib also warned on stderr (``No artists with
    labels found to put in legend`` when no intensity sample was recorded, ``loc="best"`` can
    be slow), which ``filterwarnings = error`` makes a failure here."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:
        db.execute("DELETE FROM intensity_samples")  # none recorded (e.g. a schema-1 ledger)
    db.close()
    with Ledger.open_readonly(tmp_path / "ledger.db") as ledger:
        lines = ledger_lines(ledger)
        figure = report_figure(ledger, lines)
    try:
        intensity = figure.axes[1]
        regions = {line.region for line in lines}
        assert len(regions) > 1 and len(lines) > len(regions)
        assert len(intensity.lines) + len(intensity.collections) == len(regions)
        assert intensity.get_legend() is None
    finally:
        import matplotlib.pyplot as plt  # after report_figure chose the Agg backend

        plt.close(figure)


def test_an_audit_with_no_intensity_sample_says_why_not_an_empty_table(
    demo_state: Path, carbond: Run, tmp_path: Path
) -> None:
    """The statement's "Data sources" was a table with a heading and no row when no sample was
    recorded over the period: an auditor could not tell a fault from a quiet month. It says why
    in one line: no sample in the ledger at all, none in the period, or no job and no sample."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")

    def sources(*period: str) -> str:
        text = carbond("report", "--state-dir", str(tmp_path), "--audit", *period)
        return text.split("## Data sources\n\n")[1].split("\n\n## ")[0]

    db = sqlite3.connect(tmp_path / "ledger.db")
    first = db.execute("SELECT min(at) FROM intensity_samples").fetchone()[0]
    assert "\n| grid zone | intensity source |" in sources()  # samples: the table
    period = ("--since", "2000-01-01", "--until", "2000-02-01")
    assert sources(*period) == (
        "No intensity samples: no job finished in the period, so no sample priced one."
    )
    with db:  # jobs before the first sample
        db.execute("UPDATE intensity_samples SET at = '2999-01-01T00:00:00+00:00' WHERE at = ?",
                   (first,))  # fmt: skip
        db.execute("DELETE FROM intensity_samples WHERE at < '2999'")
    assert sources("--until", "2998-01-01") == (
        "No intensity samples: none priced the period's jobs (the ledger's samples run from "
        "2999-01-01T00:00:00+00:00 to 2999-01-01T00:00:00+00:00); the emission factors above "
        "are those stored with each job's outcome."
    )
    with db:
        db.execute("DELETE FROM intensity_samples")
    rungs = "+".join(sorted(r[0] for r in db.execute(
        "SELECT DISTINCT intensity_source FROM outcomes")))  # fmt: skip
    db.close()
    assert sources() == (
        "No intensity samples: the ledger holds no intensity sample at all (the daemon records "
        "one per zone at each intensity refresh); the emission factors above are those stored "
        f"with each job's outcome (signal rung: {rungs})."
    )


def test_audit_embodied_figures_are_those_recorded_not_todays_catalog(
    demo_state: Path, carbond: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embodied assumptions were today's catalog and lifetime only: after a site changed
    a GPU's embodied carbon or ``lifetime_years``, the statement stated figures no job had been
    charged with. The grams recorded with the jobs are shown beside the catalog, which is
    labelled as of now; a job with none recorded is counted and said so."""
    shutil.copy(demo_state / "ledger.db", tmp_path / "ledger.db")
    db = sqlite3.connect(tmp_path / "ledger.db")
    recorded = dict(db.execute(
        "SELECT gpu, sum(embodied_g) FROM outcomes GROUP BY gpu"))  # fmt: skip
    per_hour = dict(db.execute(
        "SELECT gpu, sum(embodied_g) / sum(gpus * duration_s / 3600.0) FROM outcomes"
        " GROUP BY gpu"))  # fmt: skip
    monkeypatch.setenv("CARBOND_CATALOG__GPUS", '{"T4": {"embodied_kg": 20}}')
    monkeypatch.setenv("CARBOND_LIFETIME_YEARS", "3")

    def rows() -> dict[str, list[str]]:
        text = carbond("report", "--state-dir", str(tmp_path), "--audit")
        section = text.split("## Embodied carbon assumptions\n\n", 1)[1].split("\n## ")[0]
        assert "catalog as of now" in section.split("\n")[0]
        cells = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ")]
        return {c[0].strip(): [v.strip() for v in c[1:]] for c in cells[1:]}

    got = rows()
    assert got["T4"][:3] == ["20", "3", "config"]  # the catalog as of now
    for gpu, grams in recorded.items():
        assert float(got[gpu][4]) == pytest.approx(grams / 1000, rel=1e-5)
        assert float(got[gpu][5]) == pytest.approx(per_hour[gpu], rel=1e-3)
    with db:
        db.execute("UPDATE outcomes SET embodied_g = NULL WHERE gpu = 'T4'")
        t4_jobs = db.execute("SELECT count(*) FROM outcomes WHERE gpu = 'T4'").fetchone()[0]
    db.close()
    got = rows()
    assert got["T4"][4:] == ["-", "-"] and got["T4"][:3] == ["20", "3", "config"]
    text = carbond("report", "--state-dir", str(tmp_path), "--audit")
    assert f" {t4_jobs} jobs have no embodied grams recorded" in text


def test_a_zone_schema_1_did_not_record_is_unknown_not_a_question_mark_or_a_neighbours(
    tmp_path: Path, carbond: Run
) -> None:
    """Outcomes of ledger schema 1 stored no grid zone: the statement showed ``?`` for it, and
    a region whose month mixed such jobs with later ones showed the zone of whichever job came
    first. Every zone of the region's month is listed, a missing one as ``unknown`` (explained
    under the table), as the report says ``unknown`` of an energy method it lacks; CodeCarbon's
    export leaves it empty, as before."""
    from tests.daemon.reports.ledgers import migrated_v1_ledger

    migrated_v1_ledger(tmp_path)  # a schema-1 ledger, migrated as the daemon does

    def factors() -> list[list[str]]:
        text = carbond("report", "--state-dir", str(tmp_path), "--audit")
        section = text.split("## Emission factors and PUE\n\n", 1)[1].split("\n## ")[0]
        rows = [line.split(" | ")[1:3] for line in section.splitlines()[2:]
                if line[:2] == "| " and not line.startswith("| total |")]  # fmt: skip
        return [*rows, section.splitlines()[-1:]]

    note = ["Grid zone unknown: jobs whose outcome was recorded before outcomes stored their "
            "zone (ledger schema 1)."]  # fmt: skip
    assert factors() == [["ciso", "unknown"], ["qc", "unknown"], note]
    db = sqlite3.connect(tmp_path / "ledger.db")
    with db:  # one job the later schema recorded, in the same region and month
        db.execute("UPDATE outcomes SET zone = 'CA-QC' WHERE job_id = 'metered'")
        db.execute("UPDATE outcomes SET region = 'qc' WHERE job_id = 'slurm'")
    db.close()
    assert factors() == [["qc", "CA-QC, unknown"], note]
    out = carbond("export", "--state-dir", str(tmp_path), "--format", "codecarbon", "-")
    rows = {row["run_id"]: row for row in csv.DictReader(io.StringIO(out))}
    assert rows["slurm"]["region"] == rows["slurm"]["country_name"] == ""
    assert rows["metered"]["country_name"] == "Canada"


def test_a_region_with_an_unknown_and_a_recorded_zone_draws_each_job_once(
    demo_state: Path,
) -> None:
    """The intensity panel keys its lines by (region, zone), and each key drew every job of its
    region: a region whose older outcomes recorded no zone (``unknown``, ledger schema 1) and
    newer ones a zone drew each of its jobs' bars twice, in two colours. Each key draws its own
    jobs only."""
    with Ledger.open_readonly(demo_state / "ledger.db") as ledger:
        lines = ledger_lines(ledger)
        runs = [line for line in lines if line.started_at and line.finished_at]
        region = runs[0].region
        here = [i for i, line in enumerate(lines) if line.region == region and line.started_at]
        assert len(here) > 1
        mixed = list(lines)
        mixed[here[0]] = dataclasses.replace(lines[here[0]], zone=UNKNOWN_ZONE)
        figure = report_figure(ledger, mixed)
    try:
        bars = [c for c in figure.axes[1].collections if c.get_linewidth()[0] == 6]
        drawn = [len(c.get_segments()) for c in bars]
        assert sum(drawn) == len(runs)
        keys = sorted({(line.region, line.zone) for line in runs} | {(region, UNKNOWN_ZONE)})
        assert len(bars) == len(keys)
    finally:
        import matplotlib.pyplot as plt  # after report_figure chose the Agg backend

        plt.close(figure)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_stderr_does_not_fail_a_plot_that_was_written(
    demo_state: Path, tmp_path: Path
) -> None:
    """``carbond report --plot F 2>/dev/full`` drew ``F``, then its ``wrote F`` line on stderr
    failed and the command exited 1 with the report lost; that line is written by the
    error line's guarded writer now: lost with a full stderr, the report and exit code stand."""
    exe = Path(sys.executable).with_name("carbond")
    path = tmp_path / "report.png"
    argv = f"'{exe}' report --state-dir {demo_state} --plot {path} --format json 2>/dev/full"
    done = subprocess.run(["bash", "-c", argv], capture_output=True, text=True, check=False,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and done.stdout.lstrip().startswith("{")


@pytest.mark.parametrize(("embodied_kg", "shown"), [(9_999.5, "9,999.5"), (0.00001, "0.00001")])
def test_audit_writes_an_overridden_embodied_carbon_in_fixed_notation(
    demo_state: Path, carbond: Run, monkeypatch: pytest.MonkeyPatch, embodied_kg: float, shown: str
) -> None:
    """``[catalog.gpus.T4] embodied_kg = 0.00001`` read ``1e-05`` in the assumptions (``:g``;
    until 2026-12-07), as the tables' figures did before ``fixed()``; the largest allowed
    (10,000 kg) has its thousands separator, as the tables write it."""
    monkeypatch.setenv("CARBOND_CATALOG__GPUS", f'{{"T4": {{"embodied_kg": {embodied_kg}}}}}')
    text = carbond("report", "--state-dir", str(demo_state), "--audit")
    section = text.split("## Embodied carbon assumptions", 1)[1]
    t4 = next(line for line in section.splitlines() if line.startswith("| T4 |"))
    assert t4.split("|")[2].strip() == shown


def test_audit_writes_a_tiny_emission_factor_and_source_mean_in_fixed_notation(
    demo_state: Path, carbond: Run, tmp_path: Path
) -> None:
    """The emission factor and the data sources' mean intensity were written ``:.1f``: a grid
    at 0.04 gCO2e/kWh read ``0.0`` in both tables (until 2026-12-07); ``fixed()`` now, as the
    statement's other figures."""
    state = tmp_path / "state"
    shutil.copytree(demo_state, state)
    db = sqlite3.connect(state / "ledger.db")
    with db:
        db.execute("UPDATE outcomes SET realised_intensity_g_per_kwh = 0.04")
        db.execute("UPDATE intensity_samples SET intensity_g_per_kwh = 0.04")
    db.close()
    text = carbond("report", "--state-dir", str(state), "--audit")
    factors = text.split("## Emission factors and PUE\n\n", 1)[1].split("\n## ")[0]
    rows = [line.split(" | ") for line in factors.splitlines()[2:] if line[:2] == "| "]
    assert rows and {row[3] for row in rows} == {"0.04"}, factors
    sources = text.split("| mean gCO2e/kWh |\n", 1)[1].split("\n\n")[0].splitlines()[1:]
    assert sources and {line.split(" | ")[-1] for line in sources} == {"0.04 |"}, text
