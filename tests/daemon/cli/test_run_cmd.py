"""``carbond run`` as a real process: notify, ingest -> run -> ledger, SIGHUP, SIGTERM, kill -9."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.daemon.cli.real_daemon import (
    CONFIG,
    DEADLINE_S,
    Daemon,
    free_port,
    state_of,
    submit,
    until,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, Path, int, list[Daemon]]]:
    state = tmp_path / "state"
    port = free_port()
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=state, port=port))
    started: list[Daemon] = []
    yield state, config, port, started
    for daemon in started:
        daemon.close()


def _warmed(log: Path) -> list[str]:
    """The policies the daemon logged ``planner_warm`` for, in order."""
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [e["policy"] for e in events if e.get("event") == "planner_warm"]


def test_run_notifies_runs_jobs_reloads_and_stops(
    setup: tuple[Path, Path, int, list[Daemon]], tmp_path: Path
) -> None:
    state, config, port, started = setup
    daemon = Daemon(tmp_path, config)
    started.append(daemon)
    daemon.expect("READY=1")
    daemon.expect("WATCHDOG=1")

    submit(state, "hello", [sys.executable, "-c", "print('hello from a job')"])
    until("the job to succeed", lambda: state_of(state, "hello") == "succeeded")
    assert (state / "logs" / "hello.out").read_text() == "hello from a job\n"

    config.write_text(config.read_text() + "\nbogus_key = 1\n")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.expect("RELOADING=1")
    daemon.expect("READY=1")  # the old configuration goes on
    submit(state, "after-bad-reload", [sys.executable, "-c", "pass"])
    until("a job after a rejected reload", lambda: state_of(state, "after-bad-reload")
           == "succeeded")  # fmt: skip

    config.write_text(config.read_text().replace("bogus_key = 1", "").replace("0.2", "0.3")
                      .replace("grace_s = 2", "grace_s = 3"))  # fmt: skip
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.expect("RELOADING=1")
    daemon.expect("READY=1")
    submit(state, "after-reload", [sys.executable, "-c", "pass"])
    until("a job after a reload", lambda: state_of(state, "after-reload") == "succeeded")

    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=DEADLINE_S).text
    assert 'carbond_jobs{state="succeeded"} 3.0' in metrics
    assert 'carbond_decisions_total{action="start",policy="run-now"} 3.0' in metrics

    daemon.proc.send_signal(signal.SIGTERM)
    daemon.expect("STOPPING=1")
    assert daemon.proc.wait(timeout=DEADLINE_S) == 0
    log = (tmp_path / "daemon.log").read_text()
    assert '"reload_rejected"' in log and "bogus_key" in log
    assert '"reload_applied"' in log and '"plan": 0.3' in log
    assert '"reload_needs_restart"' in log and '"sections": ["executors"]' in log


def test_the_policy_in_use_has_its_decision_series_at_0_before_its_first_decision(
    setup: tuple[Path, Path, int, list[Daemon]], tmp_path: Path
) -> None:
    """Prometheus' increase() and rate() count nothing for a series' first sample: a policy's
    first decision (and its started job's grams) was missing from the dashboard's rates. The
    policy in use, at start and after a reload that changes it, is exported at 0 at once."""
    _, config, port, started = setup
    daemon = Daemon(tmp_path, config)
    started.append(daemon)
    daemon.expect("READY=1")

    def scrape() -> str:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=DEADLINE_S).text

    def zeros(policy: str) -> list[str]:
        return [f'carbond_decisions_total{{action="{action}",policy="{policy}"}} 0.0'
                for action in ("start", "hold", "reject")] + [
                f'carbond_{kind}_emissions_grams_total{{policy="{policy}"}} 0.0'
                for kind in ("expected", "run_now")]  # fmt: skip

    text = scrape()
    assert all(line in text for line in zeros("run-now")), text

    config.write_text(config.read_text().replace('name = "run-now"', 'name = "carbon-window"'))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.expect("RELOADING=1")
    daemon.expect("READY=1")
    text = scrape()
    assert all(line in text for line in zeros("carbon-window")), text

    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=DEADLINE_S) == 0


def test_a_reload_that_changes_the_policy_warms_it_in_the_warmup_thread(
    setup: tuple[Path, Path, int, list[Daemon]], tmp_path: Path
) -> None:
    """A SIGHUP from run-now to carbon-window compiled the new policy in its first plan, in
    the main thread (~20 s on a fresh install, the jobs submitted meanwhile unread): the
    reload warms it as the start does, and a job submitted after it still runs."""
    state, config, _, started = setup
    daemon = Daemon(tmp_path, config)
    started.append(daemon)
    daemon.expect("READY=1")
    log = tmp_path / "daemon.log"
    until("the start's warm-up", lambda: _warmed(log) == ["run-now"])

    config.write_text(config.read_text().replace('name = "run-now"', 'name = "carbon-window"'))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.expect("RELOADING=1")
    daemon.expect("READY=1")
    until("the new policy's warm-up", lambda: _warmed(log) == ["run-now", "carbon-window"])
    submit(state, "after-reload", [sys.executable, "-c", "pass"])
    until("a job after the reload", lambda: state_of(state, "after-reload") in
           {"planned", "running", "succeeded"})  # fmt: skip

    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=DEADLINE_S) == 0


def test_the_configured_intensity_source_is_exported_at_start_and_after_a_reload(
    setup: tuple[Path, Path, int, list[Daemon]], tmp_path: Path
) -> None:
    """The alert on a zone planned on its static average fired for ever where the operator
    chose ``source = "static"``: the daemon exports the source it runs with, so the alert can
    tell a choice from a fallback."""
    _, config, port, started = setup
    config.write_text(config.read_text() + '[intensity]\nsource = "static"\n')
    daemon = Daemon(tmp_path, config)
    started.append(daemon)
    daemon.expect("READY=1")

    def sources() -> list[str]:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=DEADLINE_S).text
        return re.findall(r'^carbond_intensity_source\{source="([a-z]+)"\} 1\.0$', text, re.M)

    assert sources() == ["static"]

    config.write_text(config.read_text().replace('source = "static"', 'source = "embedded"'))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.expect("RELOADING=1")
    daemon.expect("READY=1")
    assert sources() == ["embedded"]

    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=DEADLINE_S) == 0


def test_kill_9_leaves_the_job_running_and_the_next_daemon_adopts_it(
    setup: tuple[Path, Path, int, list[Daemon]], tmp_path: Path
) -> None:
    state, config, _, started = setup
    go, runs = tmp_path / "go", tmp_path / "runs"
    code = (
        "import pathlib, time\n"
        f"with open({str(runs)!r}, 'a') as f: f.write('ran\\n')\n"
        f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.02)\n"
    )
    try:
        first = Daemon(tmp_path, config)
        started.append(first)
        first.expect("READY=1")
        submit(state, "survivor", [sys.executable, "-c", code])
        until("the job to start", runs.exists)

        first.proc.kill()  # kill -9: no chance to clean up
        first.proc.wait()
        assert state_of(state, "survivor") == "running"

        second = Daemon(tmp_path, config)
        started.append(second)
        second.expect("READY=1")
    finally:
        go.touch()  # the job ends even if the test fails
    until("the adopted job to succeed", lambda: state_of(state, "survivor") == "succeeded")

    assert runs.read_text() == "ran\n"  # ran exactly once
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(timeout=DEADLINE_S) == 0
    assert '"job_adopted"' in (tmp_path / "daemon.log").read_text()


@pytest.mark.root
def test_a_job_runs_as_the_user_who_queued_it(
    setup: tuple[Path, Path, int, list[Daemon]], tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the daemon switches to the submitter's uid only as root")
    nobody = pwd.getpwnam("nobody")  # an existing unprivileged user
    state, config, _, started = setup
    daemon = Daemon(tmp_path, config)
    started.append(daemon)
    daemon.expect("READY=1")
    spool = state / "queue.d" / f"{nobody.pw_uid}.jsonl"
    line = {"id": "as-nobody", "model": "llama-1b", "requests": 1, "command": ["id", "-u"]}
    spool.write_text(json.dumps(line) + "\n")
    os.chown(spool, nobody.pw_uid, nobody.pw_gid)  # the file's owner is the submitter
    os.chmod(spool, 0o644)

    until("the user's job to succeed", lambda: state_of(state, "as-nobody") == "succeeded")

    out = state / "logs" / "as-nobody.out"
    assert out.read_text() == f"{nobody.pw_uid}\n"
    assert out.stat().st_uid == nobody.pw_uid


def _documented_backup_command() -> list[str]:
    """The arguments of the backup command docs/operations.md gives."""
    guide = (Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text()
    found = re.search(r"^sudo carbond (backup) (/var/backups/carbond-ledger\.db)$", guide,
                      re.MULTILINE)  # fmt: skip
    assert found, "docs/operations.md shows no backup command"
    return list(found.groups())


def test_the_documented_backup_restores_a_ledger_the_daemon_reopens(
    setup: tuple[Path, Path, int, list[Daemon]], tmp_path: Path
) -> None:
    """The guide had no backup procedure; a plain copy of ``ledger.db`` taken while the daemon
    runs misses what is still in ``ledger.db-wal`` and, restored, runs the queue again. The
    documented backup, taken live, and the documented restore give back every job it held;
    only a job submitted after the backup runs again, as the guide says."""
    state, config, _, started = setup
    runs, backup = tmp_path / "runs", tmp_path / "carbond-ledger.db"

    def job(name: str) -> list[str]:
        return [sys.executable, "-c", f"open({str(runs)!r}, 'a').write({name + chr(10)!r})"]

    first = Daemon(tmp_path, config)
    started.append(first)
    first.expect("READY=1")
    submit(state, "before", job("before"))
    until("the first job to succeed", lambda: state_of(state, "before") == "succeeded")
    command, documented = _documented_backup_command()
    assert Path(documented).name == backup.name
    done = subprocess.run(
        [sys.executable, "-m", "daemon", command, "--config", str(config), str(backup)],
        capture_output=True, text=True, timeout=DEADLINE_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    submit(state, "after", job("after"))
    until("the second job to succeed", lambda: state_of(state, "after") == "succeeded")
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(timeout=DEADLINE_S) == 0

    for leftover in ("ledger.db-wal", "ledger.db-shm"):  # the guide's restore, step by step
        (state / leftover).unlink(missing_ok=True)
    shutil.copyfile(backup, state / "ledger.db")
    os.chmod(state / "ledger.db", 0o644)
    assert state_of(state, "after") is None
    second = Daemon(tmp_path, config)
    started.append(second)
    second.expect("READY=1")
    until("the later job to run again", lambda: state_of(state, "after") == "succeeded")

    assert state_of(state, "before") == "succeeded"
    assert runs.read_text() == "before\nafter\nafter\n"
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(timeout=DEADLINE_S) == 0
