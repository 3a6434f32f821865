"""`carbond intensity` and `carbond forecast backtest` end to end.

The provider is a real local HTTP server (127.0.0.1, port 0, in a thread) that plays
Electricity Maps: documented payloads first, then 500s, 429 with Retry-After, timeouts, HTML
error pages and malformed JSON. The CLI must go from live values to cached values flagged
stale, and never print a traceback.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from structlog.testing import capture_logs

from daemon.cli import main
from daemon.intensity.signals import refresh_signals
from forecasts import SignalChain
from forecasts.refresh import OUTAGE_PAUSE_S
from tests.daemon.helpers import backtest_trace

TOKEN = "cli-test-token"


def _point(t: datetime, value: float) -> dict[str, Any]:
    return {
        "zone": "DE",
        "carbonIntensity": value,
        "datetime": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "updatedAt": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "createdAt": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "emissionFactorType": "lifecycle",
        "isEstimated": False,
        "estimationMethod": None,
    }


class _FakeElectricityMaps(BaseHTTPRequestHandler):
    mode: ClassVar[str] = "ok"
    seen_tokens: ClassVar[list[str | None]] = []

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""

    def _send(
        self,
        status: int,
        body: str,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    _FAILURES: ClassVar[dict[str, tuple[int, str, str, dict[str, str]]]] = {
        "500": (500, '{"error": "internal"}', "application/json", {}),
        "429": (429, '{"error": "rate limited"}', "application/json", {"Retry-After": "1"}),
        "html": (200, "<html><body>502 Bad Gateway</body></html>", "text/html", {}),
        "badjson": (200, '{"zone": "DE", "carbonIntensity": ', "application/json", {}),
    }

    def do_GET(self) -> None:
        self.seen_tokens.append(self.headers.get("auth-token"))
        url = urlparse(self.path)
        zone = parse_qs(url.query).get("zone", ["?"])[0]
        if self.mode == "timeout":
            time.sleep(0.6)  # longer than the 0.2 s read timeout
        if self.mode == "echo":  # a hostile server hands the token back in a header
            echo = f"text/html; token={self.headers.get('auth-token')}"
            self._send(200, "<html>", echo, {"X-Token": str(self.headers.get("auth-token"))})
        elif self.mode in self._FAILURES:
            status, body, content_type, headers = self._FAILURES[self.mode]
            self._send(status, body, content_type, headers)
        elif zone != "DE":
            self._send(404, f'{{"error": "Zone {zone} does not exist"}}')
        else:
            self._send(*self._documented(url.path))

    @staticmethod
    def _documented(path: str) -> tuple[int, str]:
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        if path.endswith("/latest"):
            return 200, json.dumps(_point(hour, 302))
        if path.endswith("/history"):
            history = [_point(hour - timedelta(hours=k), 300 + k) for k in range(24, 0, -1)]
            return 200, json.dumps({"zone": "DE", "history": history})
        return 403, '{"error": "forecast not in your plan"}'


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (timeout test) breaks the pipe; that is expected."""


@pytest.fixture
def fake_em(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_FakeElectricityMaps]]:
    server = _QuietServer(("127.0.0.1", 0), _FakeElectricityMaps)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    _FakeElectricityMaps.mode = "ok"
    _FakeElectricityMaps.seen_tokens = []
    port = server.server_address[1]
    monkeypatch.setenv("CARBOND_ELECTRICITYMAPS__BASE_URL", f"http://127.0.0.1:{port}/v3")
    monkeypatch.setenv("CARBOND_ELECTRICITYMAPS__TOKEN", TOKEN)
    monkeypatch.setenv("CARBOND_ELECTRICITYMAPS__CONNECT_TIMEOUT_S", "0.2")
    monkeypatch.setenv("CARBOND_ELECTRICITYMAPS__READ_TIMEOUT_S", "0.2")
    monkeypatch.setenv("CARBOND_ELECTRICITYMAPS__MAX_RETRIES", "1")
    monkeypatch.delenv("CARBOND_CONFIG", raising=False)
    try:
        yield _FakeElectricityMaps
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# Not tests/daemon/cli/cli_run.run_cli on purpose: these tests read `intensity --json`'s object
# (an empty dict where stdout is no JSON object, as on a one-line error) and must never see a
# traceback, whichever rung answered.
def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, json.loads(out) if out.strip().startswith("{") else {}, err


def test_live_then_stale_cache_through_every_failure(
    fake_em: type[_FakeElectricityMaps], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = ("intensity", "--zone", "DE", "--json", "--cache-dir", str(tmp_path))
    code, live, _ = _run(capsys, *args, "--forecast-hours", "6")
    assert code == 0
    assert (live["rung"], live["stale"], live["intensity_g_per_kwh"]) == ("live", False, 302.0)
    assert live["source"] == "electricitymaps"
    assert {"zone", "intensity_g_per_kwh", "datetime", "source", "stale", "age_s"} <= set(live)
    assert len(live["forecast"]["points"]) == 6 and live["forecast"]["forecaster"]
    assert TOKEN in fake_em.seen_tokens

    for mode in ("500", "429", "timeout", "html", "badjson", "echo"):
        fake_em.mode = mode
        code, cached, err = _run(capsys, *args)
        assert code == 0, (mode, err)
        assert (cached["rung"], cached["stale"]) == ("cache", True), mode
        assert cached["intensity_g_per_kwh"] == 302.0
        assert TOKEN not in json.dumps(cached) + err


def test_unknown_zone_without_cache_is_one_line_error(
    fake_em: type[_FakeElectricityMaps], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _run(capsys, "intensity", "--zone", "XX-NOPE", "--cache-dir", str(tmp_path))
    assert code == 1
    assert err.startswith("carbond: error: XX-NOPE: no intensity signal")
    assert err.count("\n") == 1 and TOKEN not in err


def test_static_zone_offline(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, reading, _ = _run(
        capsys, "intensity", "--zone", "CA-QC", "--offline", "--json", "--cache-dir", str(tmp_path)
    )
    assert code == 0
    assert (reading["rung"], reading["intensity_g_per_kwh"], reading["stale"]) == (
        "static",
        31.0,
        True,
    )


def test_human_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert (
        main(["intensity", "--zone", "US-NW-PACE", "--offline", "--cache-dir", str(tmp_path)]) == 0
    )
    out = capsys.readouterr().out
    assert "US-NW-PACE" in out and "647" in out and "static" in out


def test_a_static_forecast_does_not_claim_a_backtested_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Offline with no history the forecast is the static annual value with an assumed p90
    error (half the value); its table said "p90 error from backtest", as a scored one's does."""
    argv = ["intensity", "--zone", "CA-QC", "--offline", "--cache-dir", str(tmp_path),
            "--forecast-hours", "2"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "forecast: static (static, p90 error assumed, not backtested)" in out
    assert "from backtest" not in out


def test_a_forecast_from_one_backtest_issue_says_not_enough_history(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Four days of a flat trace: one backtest issue, its errors all 0, were printed as the
    forecast's p90 error (0.0) and 24 h MAPE, "from backtest"; now not enough history, in the
    table's title and in --json (no MAPE, the note)."""
    start = datetime(2023, 1, 1, tzinfo=UTC)
    lines = ["datetime,zone,carbon_intensity_g_per_kwh"]
    lines += [f"{(start + timedelta(hours=k)).isoformat()},XX,200" for k in range(96)]
    trace = tmp_path / "t.csv"
    trace.write_text("\n".join(lines) + "\n")
    argv = ["intensity", "--zone", "XX", "--offline", "--cache-dir", str(tmp_path / "c"),
            "--trace", str(trace), "--at", "2023-01-04T23:30Z",
            "--forecast-hours", "2"]  # fmt: skip
    code, result, _ = _run(capsys, *argv, "--json")
    forecast = result["forecast"]
    assert code == 0 and forecast["rung"] == "history-forecast"
    assert forecast["mape_24h_pct"] is None
    assert forecast["error_note"] == ("not enough history (1 backtest issue, 10 needed): the "
                                      "default forecaster, none picked from so few")  # fmt: skip
    assert forecast["forecaster"] == "seasonal-24h"
    assert all(p["abs_error_p90_g_per_kwh"] > 0 for p in forecast["points"])
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())  # the title is wrapped to the table
    assert "p90 error assumed: not enough history (1 backtest issue, 10 needed)" in out
    assert "from backtest" not in out


def test_the_table_names_the_zone_as_its_row_does(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Zone keys are matched without case; ``--zone ca-qc`` titled the table "ca-qc carbon
    intensity" over a row (and a --json) saying CA-QC."""
    assert main(["intensity", "--zone", "ca-qc", "--offline", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "CA-QC carbon intensity (lifecycle)" in out and "ca-qc" not in out


def test_backtest_command_on_a_small_trace(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    trace = backtest_trace(tmp_path / "t.csv", datetime(2023, 1, 1, tzinfo=UTC))
    code, result, _ = _run(
        capsys, "forecast", "backtest", "--trace", str(trace), "--zone", "XX", "--json"
    )
    assert code == 0
    assert {s["horizon_h"] for s in result["scores"]} == {1, 6, 24, 48}
    assert {s["forecaster"] for s in result["scores"]} >= {"persistence", "blend"}
    assert result["chosen"] in {s["forecaster"] for s in result["scores"]}
    png = tmp_path / "fig" / "mape.png"
    assert (
        main(["forecast", "backtest", "--trace", str(trace), "--zone", "XX", "--plot", str(png)])
        == 0
    )
    assert "chosen:" in capsys.readouterr().out
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_trace_too_short_for_the_backtest_is_bad_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Nine days of a trace are too few for a 48 h backtest after its 8 days of warm-up: the
    error exited 1, as a failure of carbond's own; it is the input's (exit 2) and says what
    to change."""
    start = datetime(2023, 1, 1, tzinfo=UTC)
    lines = ["datetime,zone,carbon_intensity_g_per_kwh"]
    lines += [f"{(start + timedelta(hours=k)).isoformat()},XX,{200 + k % 24}" for k in range(216)]
    trace = tmp_path / "t.csv"
    trace.write_text("\n".join(lines) + "\n")
    code, out, err = _run(capsys, "forecast", "backtest", "--trace", str(trace), "--zone", "XX")
    assert (code, out) == (2, {})
    assert err == (f"carbond: error: {trace}: XX: 216 points of 3600s are too few for a 48 h "
                   "backtest after 8 days of warm-up; give a longer trace or a shorter "
                   "--horizon-hours\n")  # fmt: skip
    assert main(["forecast", "backtest", "--trace", str(trace), "--zone", "XX",
                 "--horizon-hours", "6"]) == 0  # fmt: skip


@pytest.mark.parametrize("at", ["2022-06-01T00:00Z", "2026-06-01T00:00Z"])
def test_a_time_the_trace_does_not_cover_names_its_span(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, at: str
) -> None:
    """``--at`` before the trace's first point fell back to the static value with "note: the
    trace ends 2023-01-11...", as if the time were past its end; the note gives the span, on
    stderr as a ``carbond: note:`` line (until 2026-12-07 on stdout, inside the table's
    output, while docs/signals.md described notes on stderr)."""
    start = datetime(2023, 1, 1, tzinfo=UTC)
    lines = ["datetime,zone,carbon_intensity_g_per_kwh"]
    lines += [f"{(start + timedelta(hours=k)).isoformat()},CA-QC,{30 + k % 5}" for k in range(240)]
    trace = tmp_path / "t.csv"
    trace.write_text("\n".join(lines) + "\n")
    argv = ["intensity", "--zone", "CA-QC", "--offline", "--cache-dir", str(tmp_path / "c"),
            "--trace", str(trace), "--at", at]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "static" in out and "note" not in out  # the table alone on stdout
    *problem, covers = err.splitlines()
    assert covers == (
        "carbond: note: the trace covers 2023-01-01T00:00:00+00:00 to "
        "2023-01-11T00:00:00+00:00; use --at TIME to read a time it covers"
    )
    # the reading's problem (JSON's "problem"), a note on stderr too
    [line] = problem
    assert line.startswith("carbond: note: live: no provider configured; history forecast: ")


@pytest.mark.parametrize(
    ("name", "problem"),
    [("mape.txt", "cannot draw a .txt file (use "), ("folder", "a folder, not a file to draw in"),
     ("no-folder/mape.png", None), ("mape", None)],
)  # fmt: skip
def test_backtest_checks_its_plot_before_the_backtest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, problem: str | None
) -> None:
    """``--plot mape.txt`` ran the backtest, then ended in matplotlib's traceback; a folder
    ``F`` was drawn as ``F.png`` beside it, exit 0, and a name without a suffix as
    ``NAME.png``. A format matplotlib cannot write or a folder is now a one-line error, exit
    2, before the trace is read (here it does not exist); a file is drawn at its own name, its
    folder made where missing."""
    plot = tmp_path / name
    if name == "folder":
        plot.mkdir()
    argv = ["forecast", "backtest", "--zone", "XX", "--every-hours", "24", "--plot", str(plot)]
    if problem is not None:
        assert main([*argv, "--trace", str(tmp_path / "missing.csv")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"carbond: error: --plot {plot}: {problem}") and err.count("\n") == 1
        assert not list(tmp_path.glob("*.png"))
        return
    start = datetime(2023, 1, 1, tzinfo=UTC)
    lines = ["datetime,zone,carbon_intensity_g_per_kwh"]
    lines += [f"{(start + timedelta(hours=k)).isoformat()},XX,{200 + k % 24}" for k in range(480)]
    trace = tmp_path / "t.csv"
    trace.write_text("\n".join(lines) + "\n")
    assert main([*argv, "--trace", str(trace)]) == 0
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_backtest_checks_that_its_plot_can_be_written_before_the_backtest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``--plot /proc/x.png`` passed the check (``os.access`` says yes to root for any folder)
    and failed after the whole backtest; now a file is created where the plot goes first: one
    line naming it, as ``report --plot`` words it (exit 1, a file system failure), before the
    trace is read (here it does not exist)."""
    plot = Path("/proc/x.png")
    argv = ["forecast", "backtest", "--zone", "XX", "--plot", str(plot),
            "--trace", str(tmp_path / "missing.csv")]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"carbond: error: {plot}: cannot write: ") and err.count("\n") == 1
    assert "missing.csv" not in err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_report_checks_its_plot_with_the_same_check(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``report --plot /proc/x.png`` alike, before the ledger is opened (here there is none);
    the check leaves no file behind where it can write."""
    argv = ["report", "--state-dir", str(tmp_path), "--plot", "/proc/x.png"]
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith("carbond: error: /proc/x.png: cannot write: ")
    assert main([*argv[:-1], str(tmp_path / "x.png")]) == 2  # no ledger: after the check
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("horizon", "at"), [("6", 6), ("48", 24), ("2", 1)])
def test_backtest_says_at_which_horizon_it_chose(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, horizon: str, at: int
) -> None:
    """The choice is the lowest MAE at 24 h, or at the longest horizon scored below it: with
    ``--horizon-hours 6`` it is made at 6 h, yet the table said ``(lowest MAE at 24 h)``, a
    horizon not even scored, and ``--help`` said "at the horizon" (48 h by default, where it
    is not made). Both now say the horizon it was made at, and ``--json`` gives it."""
    trace = backtest_trace(tmp_path / "t.csv", datetime(2023, 1, 1, tzinfo=UTC))
    argv = ["forecast", "backtest", "--trace", str(trace), "--zone", "XX", "--horizon-hours",
            horizon]  # fmt: skip
    code, result, _ = _run(capsys, *argv, "--json")
    assert code == 0 and result["chosen_at_h"] == at
    maes = {s["forecaster"]: s["mae_g_per_kwh"] for s in result["scores"] if s["horizon_h"] == at}
    assert maes[result["chosen"]] == min(maes.values())
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"chosen: {result['chosen']} (lowest MAE at {at} h)" in out
    with pytest.raises(SystemExit):
        main(["forecast", "backtest", "--help"])
    assert "at the horizon)" not in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "argv",
    [
        ["forecast", "backtest", "--trace", "/nonexistent.csv", "--zone", "XX"],
        ["forecast", "backtest", "--trace", __file__, "--zone", "XX"],
    ],
)
def test_backtest_bad_trace_is_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main(argv) == 2  # a trace the user named: bad input
    err = capsys.readouterr().err
    assert err.startswith("carbond: error: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["intensity", "--zone", "CA-QC", "--offline", "--forecast-hours", "1e9"],
         "--forecast-hours: '1e9': a number from 0.01 to 720"),  # ran without end
        (["intensity", "--zone", "CA-QC", "--offline", "--forecast-hours", "nan"],
         "--forecast-hours: 'nan': a number from 0.01 to 720"),  # a ValueError traceback
        (["intensity", "--zone", "CA-QC", "--offline", "--step-minutes", "1e-9"],
         "--step-minutes: '1e-9': a number from 1 to 1440"),
        (["forecast", "backtest", "--trace", "t.csv", "--zone", "X", "--horizon-hours", "inf"],
         "--horizon-hours: 'inf': a number from 0.01 to 720"),
        (["forecast", "backtest", "--trace", "t.csv", "--zone", "X", "--every-hours", "1e-9"],
         "--every-hours: '1e-9': a number from 0.25 to 8760"),
    ],
)  # fmt: skip
def test_a_horizon_or_step_that_would_not_end_is_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert needle in capsys.readouterr().err


def test_refresh_signals_logs_one_event_per_zone() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    with capture_logs() as events:
        readings = refresh_signals(SignalChain(), ["CA-QC", "XX-NOPE"], now)
    assert readings["CA-QC"].rung == "static"
    names = [(e["event"], e["zone"]) for e in events]
    assert ("intensity_refreshed", "CA-QC") in names
    assert ("intensity_missing", "XX-NOPE") in names


def test_token_from_a_systemd_credential_file(
    fake_em: type[_FakeElectricityMaps],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "electricitymaps__token").write_text("from-credential\n")
    monkeypatch.delenv("CARBOND_ELECTRICITYMAPS__TOKEN")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    code, reading, err = _run(
        capsys, "intensity", "--zone", "DE", "--json", "--cache-dir", str(tmp_path / "cache")
    )
    assert code == 0 and reading["rung"] == "live"
    assert fake_em.seen_tokens[0] == "from-credential"
    assert "from-credential" not in json.dumps(reading) + err


def test_a_token_is_used_without_its_surrounding_whitespace(
    fake_em: type[_FakeElectricityMaps],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token with a newline (``echo TOKEN > file``, a variable set from it) failed every
    call with "request failed: InvalidHeader"; a blank one counted as set (doctor said so)."""
    from daemon.settings import load_settings

    monkeypatch.setenv("CARBOND_ELECTRICITYMAPS__TOKEN", " with-space\r\n")
    code, reading, _ = _run(
        capsys, "intensity", "--zone", "DE", "--json", "--cache-dir", str(tmp_path / "cache")
    )
    assert code == 0 and reading["rung"] == "live"
    assert fake_em.seen_tokens[0] == "with-space"
    monkeypatch.setenv("CARBOND_ELECTRICITYMAPS__TOKEN", " \n")
    assert load_settings(None).electricitymaps.token is None


def test_the_daemon_logs_failed_provider_calls_without_the_token(
    fake_em: type[_FakeElectricityMaps], tmp_path: Path
) -> None:
    from daemon.assemble_service import build_service
    from daemon.ledger import Ledger
    from daemon.settings import RegionSettings, load_settings
    from daemon.testing import RecordingExecutor

    settings = load_settings(
        None,
        state_dir=tmp_path,
        intensity={"source": "chain"},
        regions=(RegionSettings(name="de", zone="DE", gpus=("T4",)),),
    )
    now = datetime.now(UTC)
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        service = build_service(settings, ledger, {"local": RecordingExecutor()})
        try:
            for mode in ("500", "echo"):
                fake_em.mode = mode
                with capture_logs() as events:
                    service.refresh_intensity(now)
                now += timedelta(seconds=OUTAGE_PAUSE_S)  # a 500 on latest pauses the provider
                failed = [e for e in events if e["event"] == "intensity_provider_failed"]
                assert [e["zone"] for e in failed] == ["DE"], mode
                assert ("HTTP 500" if mode == "500" else "not JSON") in failed[0]["problem"]
                assert TOKEN not in repr(events)
            fake_em.mode = "ok"  # live works; the forecast's 403 is logged once, then backed off
            with capture_logs() as events:
                service.refresh_intensity(now)
            failed = [e for e in events if e["event"] == "intensity_provider_failed"]
            assert [e["problem"].split(":")[0] for e in failed] == ["provider forecast"]
            with capture_logs() as events:
                service.refresh_intensity(now)
            assert "intensity_provider_failed" not in [e["event"] for e in events]
        finally:
            service.close()
