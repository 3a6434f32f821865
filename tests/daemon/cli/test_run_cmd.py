"""``carbond run`` as a real process: notify, ingest -> run -> ledger, SIGHUP, SIGTERM, kill -9."""

from __future__ import annotations

import json
import os
import pwd
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from daemon.ledger import Ledger

pytestmark = pytest.mark.slow

CONFIG = """
state_dir = "{state}"
[policy]
name = "run-now"
[intervals]
ingest_s = 0.1
plan_s = 0.2
reconcile_s = 0.1
[metrics]
port = {port}
[executors.local]
grace_s = 2
[[regions]]
name = "qc"
zone = "CA-QC"
executor = "local"
gpus = ["T4", "T4"]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# A real daemon on a loaded 2-core runner, with a cold numba cache, took over 30 s to be ready
# and over 60 s to warm a policy: every wait is on its condition, with a deadline only a hang
# reaches (a healthy run returns as soon as the condition holds).
DEADLINE_S = 300.0


def _until(what: str, check: Callable[[], bool], timeout_s: float = DEADLINE_S) -> None:
    end = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Daemon:
    """One ``carbond run`` process with a fake systemd notify socket, read as systemd does.

    The socket is drained by a thread from the start: unread, its queue (10 datagrams) filled
    with the ``WATCHDOG=1`` pings (every 0.5 s) while a test waited on something else, and the
    daemon's next ``sd_notify`` blocked its main loop (a slow warm-up under load hung it).
    """

    def __init__(self, tmp_path: Path, config: Path) -> None:
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path = tmp_path / f"notify-{time.monotonic_ns()}"
        self.notify.bind(str(path))
        self.notify.settimeout(0.1)  # how soon the reader sees close()
        self._messages: queue.Queue[str] = queue.Queue()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, name="notify-reader", daemon=True)
        self._reader.start()
        env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"}
        self.log = (tmp_path / "daemon.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(config)],
            env=env,
            stdout=self.log,
            stderr=self.log,
        )

    def _read(self) -> None:
        while not self._closing.is_set():
            try:
                self._messages.put(self.notify.recv(4096).decode())
            except TimeoutError:
                continue

    def expect(self, message: str, timeout_s: float = DEADLINE_S) -> None:
        """Wait for the daemon to notify ``message`` (one deadline for all, not per datagram)."""
        end = time.monotonic() + timeout_s
        while True:
            left_s = end - time.monotonic()
            if left_s <= 0:
                raise AssertionError(f"timed out waiting for {message} from the daemon")
            try:
                got = self._messages.get(timeout=left_s)
            except queue.Empty:
                continue  # the deadline check above says so
            if got.startswith(message):
                return

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._closing.set()
        self._reader.join()
        self.notify.close()
        self.log.close()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, Path, int, list[Daemon]]]:
    state = tmp_path / "state"
    port = _free_port()
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=state, port=port))
    started: list[Daemon] = []
    yield state, config, port, started
    for daemon in started:
        daemon.close()


def _submit(state: Path, job_id: str, argv: list[str]) -> None:
    line = {"id": job_id, "model": "llama-1b", "requests": 1, "command": argv}
    with (state / "queue.jsonl").open("a") as queue:
        queue.write(json.dumps(line) + "\n")


def _state_of(state: Path, job_id: str) -> str | None:
    try:
        with Ledger.open_readonly(state / "ledger.db") as ledger:
            return ledger.job(job_id).state
    except Exception:  # not ingested yet (or the ledger is being created)
        return None


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

    _submit(state, "hello", [sys.executable, "-c", "print('hello from a job')"])
    _until("the job to succeed", lambda: _state_of(state, "hello") == "succeeded")
    assert (state / "logs" / "hello.out").read_text() == "hello from a job\n"

    config.write_text(config.read_text() + "\nbogus_key = 1\n")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.expect("RELOADING=1")
    daemon.expect("READY=1")  # the old configuration goes on
    _submit(state, "after-bad-reload", [sys.executable, "-c", "pass"])
    _until("a job after a rejected reload", lambda: _state_of(state, "after-bad-reload")
           == "succeeded")  # fmt: skip

    config.write_text(config.read_text().replace("bogus_key = 1", "").replace("0.2", "0.3")
                      .replace("grace_s = 2", "grace_s = 3"))  # fmt: skip
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.expect("RELOADING=1")
    daemon.expect("READY=1")
    _submit(state, "after-reload", [sys.executable, "-c", "pass"])
    _until("a job after a reload", lambda: _state_of(state, "after-reload") == "succeeded")

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
    _until("the start's warm-up", lambda: _warmed(log) == ["run-now"])

    config.write_text(config.read_text().replace('name = "run-now"', 'name = "carbon-window"'))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.expect("RELOADING=1")
    daemon.expect("READY=1")
    _until("the new policy's warm-up", lambda: _warmed(log) == ["run-now", "carbon-window"])
    _submit(state, "after-reload", [sys.executable, "-c", "pass"])
    _until("a job after the reload", lambda: _state_of(state, "after-reload") in
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
        _submit(state, "survivor", [sys.executable, "-c", code])
        _until("the job to start", runs.exists)

        first.proc.kill()  # kill -9: no chance to clean up
        first.proc.wait()
        assert _state_of(state, "survivor") == "running"

        second = Daemon(tmp_path, config)
        started.append(second)
        second.expect("READY=1")
    finally:
        go.touch()  # the job ends even if the test fails
    _until("the adopted job to succeed", lambda: _state_of(state, "survivor") == "succeeded")

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

    _until("the user's job to succeed", lambda: _state_of(state, "as-nobody") == "succeeded")

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
    _submit(state, "before", job("before"))
    _until("the first job to succeed", lambda: _state_of(state, "before") == "succeeded")
    command, documented = _documented_backup_command()
    assert Path(documented).name == backup.name
    done = subprocess.run(
        [sys.executable, "-m", "daemon", command, "--config", str(config), str(backup)],
        capture_output=True, text=True, timeout=DEADLINE_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    _submit(state, "after", job("after"))
    _until("the second job to succeed", lambda: _state_of(state, "after") == "succeeded")
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(timeout=DEADLINE_S) == 0

    for leftover in ("ledger.db-wal", "ledger.db-shm"):  # the guide's restore, step by step
        (state / leftover).unlink(missing_ok=True)
    shutil.copyfile(backup, state / "ledger.db")
    os.chmod(state / "ledger.db", 0o644)
    assert _state_of(state, "after") is None
    second = Daemon(tmp_path, config)
    started.append(second)
    second.expect("READY=1")
    _until("the later job to run again", lambda: _state_of(state, "after") == "succeeded")

    assert _state_of(state, "before") == "succeeded"
    assert runs.read_text() == "before\nafter\nafter\n"
    second.proc.send_signal(signal.SIGTERM)
    assert second.proc.wait(timeout=DEADLINE_S) == 0
