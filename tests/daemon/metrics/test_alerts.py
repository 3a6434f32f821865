"""The example alert rules fire on the conditions their descriptions claim: ``promtool test
rules`` on synthetic series (skipped, saying so, where Prometheus' promtool is not installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "examples/prometheus/carbond-alerts.yml"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package prometheus); cannot run the rules")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _test_rules(tmp_path: Path, series: dict[str, str], *cases: dict[str, Any]) -> None:
    """``promtool test rules`` of one test group: ``series`` (selector -> values, one a
    minute) and ``cases`` (its ``alert_rule_test`` entries). The file is JSON: YAML reads it."""
    group = {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "alert_rule_test": list(cases),
    }
    spec = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [group]}
    path = tmp_path / "carbond-alerts-test.yml"
    path.write_text(json.dumps(spec, indent=1))
    done = _run("test", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def _alert(name: str, at: str, *alerts: dict[str, Any]) -> dict[str, Any]:
    """An ``alert_rule_test`` entry: ``name`` at ``at`` fires exactly ``alerts`` (each its
    ``exp_labels`` and every one of its ``exp_annotations``: promtool compares them all)."""
    return {"alertname": name, "eval_time": at, "exp_alerts": list(alerts)}


UP = 'up{job="carbond",instance="gpu1:9464"}'
JOBS = 'carbond_jobs{job="carbond",instance="gpu1:9464",state="queued"}'
GPU1 = {"job": "carbond", "instance": "gpu1:9464"}
DOWN = (
    "No metrics from carbond for 5 minutes: queued jobs are not planned or started. Check "
    "`systemctl status carbond` and `journalctl -u carbond`."
)


def _down(summary: str, **labels: str) -> dict[str, Any]:
    return {
        "exp_labels": {"severity": "critical", "job": "carbond", **labels},
        "exp_annotations": {"summary": summary, "description": DOWN},
    }


def test_the_rules_are_valid() -> None:
    done = _run("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_daemon_down_is_one_alert_naming_its_instance(tmp_path: Path) -> None:
    """Scrapes fail from minute 2: one alert after 5 minutes, for that instance (not a second
    one without labels once ``carbond_jobs`` is gone too)."""
    down = _down("carbond is down on gpu1:9464", instance="gpu1:9464")
    _test_rules(
        tmp_path,
        {UP: "1 1 0x30", JOBS: "0 0 _x30"},
        _alert("CarbondDown", "5m"),
        _alert("CarbondDown", "8m", down),
        _alert("CarbondDown", "20m", down),
    )


def test_an_endpoint_without_carbond_metrics_is_down(tmp_path: Path) -> None:
    """Another exporter answers on gpu2's port (up, but no ``carbond_jobs``): gpu2 is down,
    though gpu1's carbond is fine."""
    gpu2, gpu2_labels = 'up{job="carbond",instance="gpu2:9464"}', {"instance": "gpu2:9464"}
    _test_rules(
        tmp_path,
        {UP: "1x10", JOBS: "0x10", gpu2: "1x10"},
        _alert("CarbondDown", "4m"),
        _alert("CarbondDown", "6m", _down("carbond is down on gpu2:9464", **gpu2_labels)),
    )


def test_no_carbond_target_at_all_is_down(tmp_path: Path) -> None:
    _test_rules(
        tmp_path,
        {'up{job="node",instance="gpu1:9100"}': "1x10"},
        _alert("CarbondDown", "4m"),
        _alert("CarbondDown", "6m", _down("carbond is down")),
    )


def test_a_stale_signal_fires_after_3_hours_and_15_minutes(tmp_path: Path) -> None:
    age = 'carbond_intensity_age_seconds{job="carbond",instance="gpu1:9464",zone="DE"}'
    stale = {
        "exp_labels": {"severity": "warning", "zone": "DE"},
        "exp_annotations": {
            "summary": "carbon-intensity signal for DE is 3h 16m 0s old",
            "description": "carbond plans on a cached, forecast or static value for this zone "
            "(the fallback chain); check the Electricity Maps token and network, "
            "`carbond doctor`.",
        },
    }
    _test_rules(
        tmp_path,
        {age: "9000+60x60"},  # over 3 h from minute 31, firing 15 minutes later
        _alert("CarbondSignalStale", "45m"),
        _alert("CarbondSignalStale", "46m", stale),
    )


def test_a_zone_on_its_static_average_fires_after_30_minutes(tmp_path: Path) -> None:
    """The static rung's age is 0 (CarbondSignalStale never fires for it): the rung gauge
    says so. DE is live for 10 minutes, then static; FR stays live."""
    de = 'carbond_intensity_rung{job="carbond",instance="gpu1:9464",zone="DE",rung="%s"}'
    fr = 'carbond_intensity_rung{job="carbond",instance="gpu1:9464",zone="FR",rung="live"}'
    static = {
        "exp_labels": {"severity": "warning", "zone": "DE"},
        "exp_annotations": {
            "summary": "carbond plans DE on its static annual average",
            "description": "No live, cached or recent history for this zone: carbond cannot "
            "shift work by time there. Check the Electricity Maps token and network, "
            "`carbond doctor`.",
        },
    }
    _test_rules(
        tmp_path,
        {de % "live": "1x10 _x60", de % "static": "_x10 1x60", fr: "1x70"},
        _alert("CarbondSignalStatic", "39m"),
        _alert("CarbondSignalStatic", "40m", static),
    )


def test_a_static_source_chosen_in_the_config_is_no_fallback(tmp_path: Path) -> None:
    """``[intensity] source = "static"`` exports the rung ``static`` for good: that alert
    fired for ever on a choice. gpu1 chose static; gpu2 runs the chain and falls back to
    static in FR from minute 10 (fires, for FR only); gpu1's DE never does."""
    gpu1, gpu2 = 'job="carbond",instance="gpu1:9464"', 'job="carbond",instance="gpu2:9464"'
    fallback = {
        "exp_labels": {"severity": "warning", "zone": "FR"},
        "exp_annotations": {
            "summary": "carbond plans FR on its static annual average",
            "description": "No live, cached or recent history for this zone: carbond cannot "
            "shift work by time there. Check the Electricity Maps token and network, "
            "`carbond doctor`.",
        },
    }
    _test_rules(
        tmp_path,
        {
            f'carbond_intensity_source{{{gpu1},source="static"}}': "1x90",
            f'carbond_intensity_rung{{{gpu1},zone="DE",rung="static"}}': "1x90",
            f'carbond_intensity_source{{{gpu2},source="chain"}}': "1x90",
            f'carbond_intensity_rung{{{gpu2},zone="FR",rung="live"}}': "1x10 _x80",
            f'carbond_intensity_rung{{{gpu2},zone="FR",rung="static"}}': "_x10 1x80",
        },
        _alert("CarbondSignalStatic", "39m"),
        _alert("CarbondSignalStatic", "40m", fallback),
        _alert("CarbondSignalStatic", "90m", fallback),
    )


def test_step_errors_fire_past_3_in_15_minutes(tmp_path: Path) -> None:
    errors = 'carbond_step_errors_total{job="carbond",instance="gpu1:9464",step="plan"}'
    failing = {
        "exp_labels": {"severity": "warning", "step": "plan", **GPU1},
        "exp_annotations": {
            "summary": "carbond step plan keeps failing",
            "description": "The service step raised 4 times in 15 minutes (logged as step_failed).",
        },
    }
    _test_rules(
        tmp_path,
        {errors: "0x10 1 2 3 4x10"},  # 3 errors by minute 13, the 4th at 14
        _alert("CarbondStepErrors", "13m"),
        _alert("CarbondStepErrors", "14m", failing),
    )


def test_a_missed_deadline_fires_for_15_minutes_with_the_number_of_jobs(tmp_path: Path) -> None:
    """The ledger's count goes 2 -> 3 at minute 10, 3 -> 5 at 20: the alert says how many
    jobs (whole ones: not a rate extrapolated over the window) for 15 minutes each; a restart
    (no samples for 3 minutes, the same count after) is no miss."""
    missed = 'carbond_ledger_deadlines_missed{job="carbond",instance="gpu1:9464"}'

    def fired(jobs: int) -> dict[str, Any]:
        return {
            "exp_labels": {"severity": "warning", **GPU1},
            "exp_annotations": {
                "summary": "a carbond job ended after its deadline or expired unstarted",
                "description": f"{jobs} more job(s) missed their deadline in the last 15 "
                "minutes; see `carbond jobs --state expired` and `carbond report --by job`.",
            },
        }

    _test_rules(
        tmp_path,
        {missed: "2x9 3x9 5x15 _x3 5x30"},
        _alert("CarbondDeadlineMissed", "9m"),
        _alert("CarbondDeadlineMissed", "10m", fired(1)),
        _alert("CarbondDeadlineMissed", "20m", fired(3)),
        _alert("CarbondDeadlineMissed", "25m", fired(2)),
        _alert("CarbondDeadlineMissed", "35m"),
        _alert("CarbondDeadlineMissed", "50m"),
    )


def _step_failing(step: str, errors: int) -> dict[str, Any]:
    return {
        "exp_labels": {"severity": "warning", "step": step, **GPU1},
        "exp_annotations": {
            "summary": f"carbond step {step} keeps failing",
            "description": f"The service step raised {errors} times in 15 minutes "
            "(logged as step_failed).",
        },
    }


def test_a_step_failing_every_run_fires_though_it_runs_every_5_minutes(tmp_path: Path) -> None:
    """refresh_intensity runs every 5 minutes (``intervals.refresh_s``): failing every run is
    3 errors in 15 minutes, never "> 3". Its 2nd failure in a row, over half its runs in 15
    minutes, fires; a single one does not."""
    labels = 'job="carbond",instance="gpu1:9464",step="refresh_intensity"'
    runs = " ".join(f"{n}x4" for n in range(1, 18))  # one run every 5 minutes from minute 0
    errors = "0x19 " + " ".join(f"{n}x4" for n in range(1, 13))  # each run from minute 20 fails
    _test_rules(
        tmp_path,
        {
            f"carbond_step_seconds_count{{{labels}}}": runs,
            f"carbond_step_errors_total{{{labels}}}": errors,
        },
        _alert("CarbondStepErrors", "24m"),
        _alert("CarbondStepErrors", "25m", _step_failing("refresh_intensity", 2)),
        _alert("CarbondStepErrors", "60m", _step_failing("refresh_intensity", 3)),
    )


def test_one_failed_refresh_does_not_fire(tmp_path: Path) -> None:
    labels = 'job="carbond",instance="gpu1:9464",step="refresh_intensity"'
    _test_rules(
        tmp_path,
        {
            f"carbond_step_seconds_count{{{labels}}}": " ".join(f"{n}x4" for n in range(1, 13)),
            f"carbond_step_errors_total{{{labels}}}": "0x19 1x40",
        },
        _alert("CarbondStepErrors", "22m"),
        _alert("CarbondStepErrors", "30m"),
    )
