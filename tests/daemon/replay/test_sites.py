"""Replays with on-site PV and batteries: shares, offsets, figures and the planner's use of
local surplus; with zero PV and no battery every figure equals a replay without a site."""

from __future__ import annotations

import csv
import json
from dataclasses import fields, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from daemon.cli import main
from daemon.replay.driver import ReplaySetup, replay_policy
from daemon.replay.errors import ReplayInputError
from daemon.replay.inputs import ReplayInputs, load_setup, parse_duration_s
from daemon.replay.sites import account_sites
from daemon.replay.summary import summarise
from daemon.reports.summary import ReportRow
from tests.daemon.replay.conftest import CLUSTER, START, write_azure
from tests.daemon.replay.site_cluster import BATTERY, SITE_PV, site_cluster


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """Chat requests in bursts every 20 minutes of an hour."""
    rows = [(minute * 60.0 + i, 800, 150) for minute in (0, 20, 40) for i in range(80)]
    return write_azure(tmp_path / "AzureLLMInferenceTrace_conv.csv", rows)


def _setup(trace: Path, cluster: Path, intensity: list[Path], slack: str = "12h") -> ReplaySetup:
    inputs = ReplayInputs((trace,), "azure", cluster, tuple(intensity), START, 1.0, 64, 8.0,
                          "llama-1b", "vllm", 8, 300, "seasonal-24h")  # fmt: skip
    return load_setup(inputs, parse_duration_s(slack))


@pytest.mark.parametrize("policy", ["run-now", "carbon-window"])
def test_zero_pv_and_no_battery_change_nothing(
    trace: Path, cluster_file: Path, intensity_files: list[Path], tmp_path: Path, policy: str
) -> None:
    plain = replay_policy(_setup(trace, cluster_file, intensity_files), policy)
    zero_pv = site_cluster(tmp_path, SITE_PV.format(kwp=0.0))
    sited = replay_policy(_setup(trace, zero_pv, intensity_files), policy)
    assert len(sited.sites) == 1 and sited.sites[0].flows.offset == 0.0
    assert len(plain.outcomes) == len(sited.outcomes) > 0
    for a, b in zip(plain.outcomes, sited.outcomes, strict=True):
        assert (a.job_id, a.region, a.started_at, a.energy_j) == (
            b.job_id,
            b.region,
            b.started_at,
            b.energy_j,
        )
        assert b.operational_g == pytest.approx(a.operational_g, rel=1e-9)
        assert b.embodied_g == a.embodied_g
        assert b.pv_j == b.battery_j == 0.0
        assert b.grid_j == pytest.approx(a.grid_j, rel=1e-12)
    rows_a, rows_b = summarise([plain]), summarise([sited])
    for key in ("total_g", "operational_g", "embodied_g", "energy_kwh", "grid_kwh", "jobs"):
        assert rows_b[0][key] == pytest.approx(rows_a[0][key], rel=1e-9), key
    assert rows_b[0]["offset_share"] == rows_a[0]["offset_share"] == 0.0


def test_pv_and_battery_offset_the_load_and_balance_at_every_step(
    trace: Path, intensity_files: list[Path], tmp_path: Path
) -> None:
    setup = _setup(
        trace, site_cluster(tmp_path, SITE_PV.format(kwp=0.5) + BATTERY), intensity_files
    )
    run = replay_policy(setup, "run-now")
    flows = run.sites[0].flows
    scale = float(np.max(flows.pv_j + flows.gpu_j))
    assert np.all(np.abs(flows.imbalance_j()) <= 1e-9 * scale)
    assert np.all(flows.soc >= 0.2 - 1e-12) and np.all(flows.soc <= 1 + 1e-12)
    at_site = [o for o in run.outcomes if o.region == "california"]
    assert at_site and any(o.pv_j > 0 for o in at_site)
    for o in at_site:  # the shares add up to the job's facility energy (PUE 1.1)
        assert o.pv_j + o.battery_j + o.grid_j == pytest.approx(o.energy_j * 1.1, rel=1e-9)
    # The jobs' shares add up to the site's GPU flows.
    assert sum(o.pv_j for o in at_site) == pytest.approx(flows.gpu_pv_j.sum(), rel=1e-6)
    assert sum(o.battery_j for o in at_site) == pytest.approx(flows.gpu_battery_j.sum(), rel=1e-6)
    row = summarise([run])[0]
    assert 0 < row["offset_share"] < 1
    by_day = row["offset_share_by_day"]
    assert set(by_day) and all(0 <= v <= 1 for v in by_day.values())
    assert row["offset_by_day"] == by_day  # its name until 2026-12-07, deprecated


def test_carbon_window_moves_work_into_the_surplus(
    trace: Path, intensity_files: list[Path], tmp_path: Path
) -> None:
    """California alone, with a PV array larger than its one GPU: with a 12 h slack the planner
    waits for the sun rather than run at once on the 400 g/kWh night grid."""
    path = tmp_path / "california.toml"
    path.write_text("[[regions]]\n" + CLUSTER.split("[[regions]]")[2] + SITE_PV.format(kwp=2.0))
    setup = _setup(trace, path, intensity_files)
    rows = {r["policy"]: r for r in summarise([replay_policy(setup, p)
                                               for p in ("run-now", "carbon-window")])}  # fmt: skip
    assert rows["carbon-window"]["deadline_misses"] == 0
    assert rows["carbon-window"]["pv_kwh"] > rows["run-now"]["pv_kwh"]
    assert rows["carbon-window"]["total_g"] < rows["run-now"]["total_g"]


def test_a_site_kept_out_of_planning_changes_no_decision(
    trace: Path, intensity_files: list[Path], tmp_path: Path
) -> None:
    """``plan = false``: the planner decides as without the site, accounting still splits."""
    plain = tmp_path / "plain.toml"
    plain.write_text("[[regions]]\n" + CLUSTER.split("[[regions]]")[2])
    blind = tmp_path / "blind.toml"
    blind.write_text(plain.read_text() + SITE_PV.format(kwp=2.0) + "plan = false\n")
    base = replay_policy(_setup(trace, plain, intensity_files), "carbon-window")
    run = replay_policy(_setup(trace, blind, intensity_files), "carbon-window")
    assert [(o.job_id, o.started_at) for o in run.outcomes] == [
        (o.job_id, o.started_at) for o in base.outcomes
    ]
    assert sum(o.pv_j for o in run.outcomes) > 0


def test_replay_cli_prints_site_table_and_draws_the_site(
    trace: Path, intensity_files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = site_cluster(tmp_path, SITE_PV.format(kwp=0.5) + BATTERY)
    out = tmp_path / "out"
    argv = ["replay", "--jobs", str(trace), "--jobs-format", "azure", "--cluster", str(cluster),
            "--start", "2023-06-05", "--days", "1", "--slack", "4h", "--policy", "run-now",
            "--model", "llama-1b", "--requests-per-job", "64", "--tick", "300", "--time-scale",
            "8", "--out", str(out), "--forecaster", "seasonal-24h"]  # fmt: skip
    for path in intensity_files:
        argv += ["--intensity", str(path)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "On-site energy" in text
    png = out / "slack_4h" / "site-california.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # jobs.csv names the share as the report and replay --json do (offset_share); the old
    # column, `offset` until 2026-12-07, stays beside it a release, deprecated, the same value
    with (out / "slack_4h" / "jobs.csv").open(newline="") as handle:
        jobs = list(csv.DictReader(handle))
    assert list(jobs[0])[-5:] == ["grid_j", "pv_j", "battery_j", "offset_share", "offset"]
    assert any(0 < float(j["offset_share"]) <= 1 for j in jobs)
    assert all(j["offset"] == j["offset_share"] for j in jobs)
    assert main([*argv, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["pv_kwh"] > 0 and rows[0]["offset_share_by_day"]
    assert rows[0]["offset_by_day"] == rows[0]["offset_share_by_day"]
    # the share covered on site has `carbond report --json`'s name; the old one stays a release
    assert "offset_share" in {f.name for f in fields(ReportRow)}
    assert 0 < rows[0]["offset_share"] < 1 and rows[0]["offset"] == rows[0]["offset_share"]
    # no spatial/temporal split with a site: grid grams alone split run-now's own saving of 0
    # into two opposite parts (the PV a job would have had at another start is not known)
    assert rows[0]["spatial_saving"] is None and rows[0]["temporal_saving"] is None


@pytest.mark.parametrize(
    ("site", "message"),
    [
        ("\n[regions.site]\npv_kwp = 3.0\n",
         r"site-cluster\.toml:\d+: regions\.california\.site\.pv_kwp: .*latitude and longitude"),
        (SITE_PV.format(kwp=1.0) + BATTERY.replace("min_soc = 0.2", "min_soc = 0.9"),
         r"regions\.california\.site\.battery\.initial_soc: initial_soc 0.8 is below min_soc 0.9"),
        ("\n[regions.site]\npv_csv = 'missing.csv'\n",
         r"site-cluster\.toml:\d+: regions\.california\.site\.pv_csv: .*missing\.csv"),
        (SITE_PV.format(kwp=1.0) + "pv_csv = 'pv.csv'\n",
         r"regions\.california\.site\.pv_csv: pv_kwp and pv_csv both set"),
        (SITE_PV.format(kwp=1.0) + "other_load_w = 300\nother_load_csv = 'load.csv'\n",
         r"regions\.california\.site\.other_load_csv: other_load_w and other_load_csv both set"),
    ],
)  # fmt: skip
def test_bad_site_config_names_file_and_field(tmp_path: Path, site: str, message: str) -> None:
    from daemon.replay.cluster import load_cluster

    with pytest.raises(ReplayInputError, match=message):
        load_cluster(site_cluster(tmp_path, site))


@pytest.mark.parametrize(
    ("first", "rows", "ok"),
    [
        ("2022-06-05T12:00:00Z", 2, False),  # another year: its last value held a whole replay
        ("2023-06-05T00:00:00Z", 12, False),  # ends 12 h into a day's replay
        ("2023-06-05T01:00:00Z", 24, False),  # starts an hour late
        # the span, not the jobs' deadlines (12 h of slack): runs past it held its last value
        ("2023-06-05T00:00:00Z", 24, False),
        ("2023-06-05T00:00:00Z", 48, True),
    ],
)
def test_measured_site_csv_must_cover_the_replay(
    trace: Path, intensity_files: list[Path], tmp_path: Path, first: str, rows: int, ok: bool
) -> None:
    start = datetime.fromisoformat(first)
    pv = tmp_path / "pv.csv"
    pv.write_text("datetime,power_w\n" + "".join(
        f"{(start + timedelta(hours=k)).isoformat()},500\n" for k in range(rows)
    ))  # fmt: skip
    cluster = site_cluster(tmp_path, f"\n[regions.site]\npv_csv = '{pv}'\n")
    if ok:
        assert _setup(trace, cluster, intensity_files).cluster.regions[1].site is not None
        return
    covers = r"regions\.california\.site\.pv_csv: .*pv\.csv covers"
    with pytest.raises(ReplayInputError, match=covers):
        _setup(trace, cluster, intensity_files)


def test_a_site_needs_its_zone_alone(tmp_path: Path) -> None:
    from daemon.replay.cluster import load_cluster

    text = (
        CLUSTER
        + SITE_PV.format(kwp=1.0)
        + CLUSTER.split("[[regions]]")[2]
        .replace("california", "california-2")
        .join(["[[regions]]", ""])
    )
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ReplayInputError, match="zone US-CAL-CISO is shared with california-2"):
        load_cluster(path)


def test_replay_power_model_selects_the_study_curve(
    trace: Path, cluster_file: Path, intensity_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["replay", "--jobs", str(trace), "--jobs-format", "azure", "--cluster",
            str(cluster_file), "--start", "2023-06-05", "--days", "0.5", "--slack", "0",
            "--policy", "run-now", "--model", "llama-1b", "--requests-per-job", "64", "--tick",
            "300", "--forecaster", "seasonal-24h", "--json"]  # fmt: skip
    for path in intensity_files:
        argv += ["--intensity", str(path)]
    energy = {}
    for model in ("calibrated", "study"):
        assert main([*argv, "--power-model", model]) == 0
        energy[model] = json.loads(capsys.readouterr().out)[0]["energy_kwh"]
    assert 0 < energy["study"] != energy["calibrated"]


@pytest.mark.shared_data
def test_the_studys_solar_case_on_the_real_2023_traces(shared_data: Path) -> None:
    """One day of the README's case (examples/cluster-study-solar.toml, Azure 2023 traces,
    US-CAL-CISO 2023): with a 4 h slack carbon-window covers more of its energy on site than
    run-now, draws less from the grid and emits less, missing no deadline."""
    inputs = ReplayInputs(
        (shared_data / "llm_traces/azure_2023/AzureLLMInferenceTrace_conv.csv",
         shared_data / "llm_traces/azure_2023/AzureLLMInferenceTrace_code.csv"), "azure",
        Path(__file__).parents[3] / "examples/cluster-study-solar.toml",
        (shared_data / "carbon_intensity/electricitymaps_hpe_sustain-cluster/"
         "US-CAL-CISO_2023_hourly.csv",),
        START, 1.0, 2048, 1.0, "llama-3b", "vllm", 8, 300, "blend",
    )  # fmt: skip
    setup = load_setup(inputs, parse_duration_s("4h"))
    rows = {r["policy"]: r for r in summarise([replay_policy(setup, p)
                                               for p in ("run-now", "carbon-window")])}  # fmt: skip
    now, window = rows["run-now"], rows["carbon-window"]
    assert now["deadline_misses"] == window["deadline_misses"] == 0
    assert 0.4 < now["offset_share"] < window["offset_share"] < 1.0
    assert window["grid_kwh"] < now["grid_kwh"]
    assert window["total_g"] < now["total_g"]


def test_outcomes_away_from_sites_are_all_grid(
    trace: Path, cluster_file: Path, intensity_files: list[Path]
) -> None:
    """The driver's outcomes come all grid (kept as they are); any other outcome gets its
    facility energy as grid and no PV or battery."""
    setup = _setup(trace, cluster_file, intensity_files)
    run = replay_policy(setup, "run-now")
    pue = {r.name: r.pue for r in setup.cluster.regions}
    assert run.outcomes and all(
        (o.grid_j, o.pv_j, o.battery_j) == (o.energy_j * pue[o.region], 0.0, 0.0)
        for o in run.outcomes
    )
    stale = [replace(o, grid_j=0.0, pv_j=1.0) for o in run.outcomes[:3]]
    again, _ = account_sites(setup, [*stale, *run.outcomes])
    assert again[3:] == list(run.outcomes) and all(
        a is b for a, b in zip(again[3:], run.outcomes, strict=True)
    )
    assert again[:3] == list(run.outcomes[:3])


@pytest.mark.parametrize("days_before", [0, 1])
def test_a_pv_csv_without_a_day_before_the_replay_is_noted(
    trace: Path, intensity_files: list[Path], tmp_path: Path, days_before: int
) -> None:
    """Planners forecast measured PV from the day before; on a replay's first day that
    precedes a CSV starting with the replay, which was said nowhere (planners read its first
    row all day): the replay now notes it, naming the region, the file and until when."""
    first = START - timedelta(days=days_before)
    pv = tmp_path / "pv.csv"
    pv.write_text("datetime,power_w\n" + "".join(
        f"{(first + timedelta(hours=k)).isoformat()},500\n" for k in range(72)
    ))  # fmt: skip
    setup = _setup(trace, site_cluster(tmp_path, f"\n[regions.site]\npv_csv = '{pv}'\n"),
                   intensity_files)  # fmt: skip
    noted = [note for note in setup.notes if "pv_csv" in note]
    if days_before:
        assert noted == []
        return
    assert len(noted) == 1 and noted[0].startswith(f"regions.california.site.pv_csv: {pv} ")
    until = START + timedelta(days=1)
    assert f"until {until:%Y-%m-%d %H:%M} planners see no PV ahead" in noted[0]


def test_a_replay_setup_reads_each_site_csv_once(
    trace: Path, intensity_files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the cluster file built its sites (reading every measured CSV), then the
    coverage check and the first-day notes built them again: each CSV was read three times
    before the first policy ran (long 1-minute CSVs of a year took seconds each). The sites
    read with the cluster are the ones checked and noted; accounting reads them too."""
    import daemon.sites.model

    reads: list[Path] = []
    real = daemon.sites.model.load_power_csv

    def counted(path: Path) -> object:
        reads.append(Path(path))
        return real(path)

    monkeypatch.setattr(daemon.sites.model, "load_power_csv", counted)
    pv, load = tmp_path / "pv.csv", tmp_path / "load.csv"
    for path, power in ((pv, 500), (load, 200)):
        path.write_text("datetime,power_w\n" + "".join(
            f"{(START - timedelta(days=1) + timedelta(hours=k)).isoformat()},{power}\n"
            for k in range(96)
        ))  # fmt: skip
    site = f"\n[regions.site]\npv_csv = '{pv}'\nother_load_csv = '{load}'\n"
    setup = _setup(trace, site_cluster(tmp_path, site), intensity_files)
    assert sorted(reads) == [load, pv]
    run = replay_policy(setup, "carbon-window")
    outcomes, records = account_sites(setup, run.outcomes)
    assert sorted(reads) == [load, pv] and len(records) == 1
    flows = records[0].flows  # accounted from the rows read: 500 W of PV, 200 W of load
    assert flows.pv_j[0] == pytest.approx(500 * flows.step_s)
    assert flows.other_j[0] == pytest.approx(200 * flows.step_s)
    assert len(outcomes) == len(run.outcomes)


@pytest.mark.parametrize("days_before", [0, 1])
def test_an_other_load_csv_without_a_day_before_the_replay_is_noted(
    trace: Path, intensity_files: list[Path], tmp_path: Path, days_before: int
) -> None:
    """Planners forecast a measured other load from the day before, as measured PV; where that
    precedes the CSV's first row they hold its first row (the conservative side for a load:
    0 W would promise its share of the PV to the GPUs). A replay noted the PV CSV's first
    day and not the load's, whose first day planned on a flat load: it is noted alike."""
    first = START - timedelta(days=days_before)
    load = tmp_path / "load.csv"
    load.write_text("datetime,power_w\n" + "".join(
        f"{(first + timedelta(hours=k)).isoformat()},{250 if k == 0 else 100 + k}\n"
        for k in range(72)
    ))  # fmt: skip
    site = SITE_PV.format(kwp=1.0) + f"other_load_csv = '{load}'\n"
    setup = _setup(trace, site_cluster(tmp_path, site), intensity_files)
    noted = [note for note in setup.notes if "other_load_csv" in note]
    if days_before:
        assert noted == []
        return
    assert len(noted) == 1
    assert noted[0].startswith(f"regions.california.site.other_load_csv: {load} starts ")
    until = START + timedelta(days=1)
    assert f"until {until:%Y-%m-%d %H:%M} planners see its first row's power (250 W)" in noted[0]
    # what the note says: a day ahead, before the first row, the first row's power is held
    site_model = setup.cluster.sites()["california"]
    ahead = site_model.other_forecast_w(START, START + timedelta(hours=6), 3600, 1)
    assert float(ahead[0]) == 250.0
