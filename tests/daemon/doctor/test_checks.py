"""``carbond doctor``: a healthy setup passes; each broken one fails on the right line."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from daemon.cli import build_parser
from daemon.doctor.checks import run_checks
from daemon.ledger import SCHEMA_VERSION, Ledger
from daemon.metrics.prometheus import Metrics
from daemon.queue.ingest import Queue
from forecasts import IntensitySeries, SeriesCache
from tests.daemon.cli.real_daemon import free_port
from tests.daemon.doctor.doctor_setup import CONFIG, healthy_setup, run_doctor


def _carbond(*argv: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own (it configures logging, which must not leak here),
    without a metrics endpoint (whether this machine's 9464 is free is not what these test)."""
    return subprocess.run(
        [sys.executable, "-m", "daemon", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "CARBOND_METRICS__PORT": "0"},
    )


def test_a_healthy_setup_passes(tmp_path: Path) -> None:
    _, config = healthy_setup(tmp_path)

    done = _carbond("doctor", "--config", str(config), "--json")

    payload = json.loads(done.stdout)
    assert done.returncode == 0 and payload["ok"], done.stdout
    checks = {c["check"]: c["status"] + ": " + c["detail"] for c in payload["checks"]}
    assert list(checks) == ["config", "state_dir", "ledger", "policy", "gpus", "nvml", "slurm",
                            "signals", "metrics", "queue", "wrapper", "cgroup",
                            "health"]  # fmt: skip
    assert all(v.startswith(("pass", "skip")) for v in checks.values())
    assert "CA-QC 31 g/kWh (static" in checks["signals"]
    assert "token NOT set" in checks["signals"]


def _cache_ending(state: Path, days: int) -> datetime:
    """Two weeks of CA-QC's hourly intensity in ``state``'s cache, ending ``days`` days ago
    (on the hour); the start of its newest point."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    values = 30 + np.arange(24 * 14) % 24
    start = end - timedelta(hours=len(values))
    SeriesCache(state / "cache" / "intensity").store(
        IntensitySeries("CA-QC", start, 3600, values.astype(float), source="electricitymaps")
    )
    return end - timedelta(hours=1)


def test_the_signals_line_says_a_zone_s_cached_history_is_too_old(tmp_path: Path) -> None:
    """A cache whose newest point is 90 days old: until 2026-12-07 doctor said only
    ``CA-QC 31 g/kWh (static, 0.0 h old)``, nothing of the history it had and why it was not
    used (``carbond intensity`` said it; the daemon plans on the same static value); until
    2026-12-08 only the forecaster's ``history forecast: history ends 90.0 days before now``,
    not in the words of the daemon's health problem, nor naming the setting."""
    state, config = healthy_setup(tmp_path)
    newest = _cache_ending(state, 90)

    _, checks = run_doctor(config)

    assert (
        f"CA-QC 31 g/kWh (static, 0.0 h old: history too old: its newest point is for "
        f"{newest.isoformat()}, over signals.max_history_gap_s (7 days) before now); "
    ) in checks["signals"], checks["signals"]
    assert "no provider configured" not in checks["signals"]  # doctor's chain is offline
    assert "history ends" not in checks["signals"]  # said once, as the daemon says it


def test_the_signals_line_judges_the_history_by_the_config_s_max_history_gap(
    tmp_path: Path,
) -> None:
    """A 3-day-old cache with ``signals.max_history_gap_s`` one day: the daemon plans on the
    static value (``intensity:CA-QC: history too old``); until 2026-12-08 doctor's chain kept
    its own 7-day default and said ``history-forecast`` with nothing wrong."""
    state, config = healthy_setup(tmp_path)
    config.write_text(config.read_text() + "[signals]\nmax_history_gap_s = 86400\n")
    newest = _cache_ending(state, 3)

    _, checks = run_doctor(config)

    assert (
        f"CA-QC 31 g/kWh (static, 0.0 h old: history too old: its newest point is for "
        f"{newest.isoformat()}, over signals.max_history_gap_s (1 day) before now); "
    ) in checks["signals"], checks["signals"]


def test_the_signals_line_says_nothing_of_a_fresh_history(tmp_path: Path) -> None:
    state, config = healthy_setup(tmp_path)
    _cache_ending(state, 1)

    _, checks = run_doctor(config)

    assert "CA-QC " in checks["signals"] and "(history-forecast, " in checks["signals"]
    assert "too old" not in checks["signals"], checks["signals"]


@pytest.mark.parametrize(
    ("credential", "says"),
    [
        (None, "token NOT set here (no $CREDENTIALS_DIRECTORY: a LoadCredential= token reaches "
               "only the daemon)"),
        ("\n", "token NOT set (live API unused)"),
        ("s3cret\n", "token set"),
    ],
)  # fmt: skip
def test_the_token_line_says_whether_the_unit_s_credential_could_be_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, credential: str | None, says: str
) -> None:
    """The install guide writes the token to the unit's credential file, then runs doctor from
    a shell, where no $CREDENTIALS_DIRECTORY exists: doctor said "token NOT set (live API
    unused)", as if the file were empty, though the daemon would get the token."""
    _, config = healthy_setup(tmp_path)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("CARBOND_ELECTRICITYMAPS__TOKEN", raising=False)
    if credential is not None:
        creds = tmp_path / "credentials"
        creds.mkdir()
        (creds / "electricitymaps__token").write_text(credential)
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))

    _, checks = run_doctor(config)

    assert says in checks["signals"]
    assert "s3cret" not in checks["signals"]


def _world_writable_state(state: Path, config: Path) -> None:
    os.chmod(state, 0o777)


def _group_writable_state(state: Path, config: Path) -> None:
    os.chmod(state, 0o775)


def _symlinked_state(state: Path, config: Path) -> None:
    real = state.with_name("real-state")
    state.rename(real)
    state.symlink_to(real)


def _group_writable_logs(state: Path, config: Path) -> None:
    (state / "logs").mkdir(mode=0o775)
    os.chmod(state / "logs", 0o775)


def _symlinked_queue(state: Path, config: Path) -> None:
    """Doctor followed it and reported the target's size as a pass (issue 13, defect 7)."""
    (state / "queue.jsonl").unlink()
    (state / "elsewhere").write_text("x" * 100 + "\n")
    (state / "queue.jsonl").symlink_to(state / "elsewhere")


def _squatted_spool(state: Path, config: Path) -> None:
    (state / "queue.d" / f"{os.getuid() + 1}.jsonl").write_text("")


def _group_writable_queue(state: Path, config: Path) -> None:
    os.chmod(state / "queue.jsonl", 0o664)


def _partial_line(state: Path, config: Path) -> None:
    with (state / "queue.jsonl").open("a") as queue:
        queue.write('{"model": "llama-1b"')


def _no_regions(state: Path, config: Path) -> None:
    config.write_text(f'state_dir = "{state}"\n[policy]\nname = "run-now"\n')


def _unknown_policy(state: Path, config: Path) -> None:
    config.write_text(config.read_text().replace("run-now", "no-such-policy"))


def _bad_config(state: Path, config: Path) -> None:
    config.write_text(config.read_text() + "\n[metrics]\nport = -1\n")


@pytest.mark.parametrize(
    ("breakage", "check", "words"),
    [
        (_world_writable_state, "state_dir", "writable by group or others"),
        (_group_writable_state, "state_dir", "writable by group or others"),
        (_symlinked_state, "state_dir", "is a symlink"),
        (_group_writable_logs, "state_dir", "logs is writable by group or others"),
        (_symlinked_queue, "queue", "is a symlink"),
        (_squatted_spool, "queue", "named for uid"),
        (_group_writable_queue, "queue", "writable by other users"),
        (_partial_line, "queue", "unfinished line"),
        (_no_regions, "gpus", "no [[regions]]"),
        (_unknown_policy, "config", "unknown policy 'no-such-policy'"),
        (_bad_config, "config", "metrics.port"),
    ],
)
def test_each_problem_fails_its_line(
    tmp_path: Path,
    breakage: Callable[[Path, Path], None],
    check: str,
    words: str,
) -> None:
    state, config = healthy_setup(tmp_path)
    breakage(state, config)

    code, checks = run_doctor(config)

    assert code == 1
    assert checks[check].startswith("fail: ") and words in checks[check], checks[check]
    failed = [name for name, value in checks.items() if value.startswith("fail")]
    assert failed == [check]


def test_human_output_is_one_line_per_check_and_failure_exits_1(tmp_path: Path) -> None:
    state, config = healthy_setup(tmp_path)
    os.chmod(state, 0o777)

    done = _carbond("doctor", "--config", str(config))

    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 13
    assert [line[:4] for line in lines].count("FAIL") == 1


def test_a_fifo_queue_fails_without_hanging(tmp_path: Path) -> None:
    """Doctor hung forever opening it (issue 13, defect 7): a process, so a hang is a timeout."""
    state, config = healthy_setup(tmp_path)
    (state / "queue.jsonl").unlink()
    os.mkfifo(state / "queue.jsonl")
    done = subprocess.run([sys.executable, "-m", "daemon", "doctor", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1
    [queue] = [line for line in done.stdout.splitlines() if " queue" in line[:12]]
    assert queue.startswith("FAIL") and "not a regular file" in queue, done.stdout


def test_a_fifo_site_csv_fails_without_hanging(tmp_path: Path) -> None:
    """A ``pv_csv`` naming a FIFO hung doctor (and `carbond run` at start, or the running
    daemon at a reload) forever, opening it for a writer that never came."""
    _, config = healthy_setup(tmp_path)
    os.mkfifo(tmp_path / "pv.csv")
    config.write_text(config.read_text() + f"[regions.site]\npv_csv = '{tmp_path / 'pv.csv'}'\n")
    done = subprocess.run([sys.executable, "-m", "daemon", "doctor", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1
    [check] = [line for line in done.stdout.splitlines() if " config" in line[:12]]
    assert check.startswith("FAIL") and "pv.csv: cannot read (not a regular file)" in check


@pytest.mark.parametrize(
    ("site", "message"),
    [
        (
            "pv_csv = '{missing}'\n",
            r"toml:\d+: regions\.qc\.site\.pv_csv: .*missing\.csv: cannot read",
        ),
        ("pv_csv = '{latin1}'\n", r"latin1\.csv: not a UTF-8 CSV file"),
    ],
)
def test_a_site_that_carbond_run_refuses_fails_the_config_check(
    tmp_path: Path, site: str, message: str
) -> None:
    """The settings load, but `carbond run` builds the sites and refuses one whose measured
    CSV cannot be read: doctor says so instead of passing."""
    _, config = healthy_setup(tmp_path)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"datetime,power_w,note\n2023-06-05T00:00Z,1,caf\xe9\n")
    body = site.format(missing=tmp_path / "missing.csv", latin1=latin1)
    config.write_text(config.read_text() + "[regions.site]\n" + body)
    code, checks = run_doctor(config)
    assert code == 1
    assert checks["config"].startswith("fail: ")
    assert re.search(message, checks["config"]), checks["config"]
    assert checks["state_dir"].startswith("pass")  # the other checks still run


SLURM_CONFIG = """
state_dir = "{state}"
[policy]
name = "run-now"
[executors.slurm]
bin_dir = "{bin}"
[[regions]]
name = "qc"
zone = "CA-QC"
executor = "slurm"
gpus = "discover"
[regions.slurm]
partition = "{partition}"
"""
RECORDED_NODES = (
    Path(__file__).parents[1]
    / "executors"
    / "slurm_outputs"
    / "states"
    / "scontrol_show_node_idle.txt"
)


def _sbatch_takes_all(bin_dir: Path) -> None:
    """An ``sbatch`` in ``bin_dir`` that takes every job ``--test-only`` plans."""
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'sbatch: Job 7 to start at now' >&2\n")
    (bin_dir / "sbatch").chmod(0o755)


@pytest.mark.parametrize(
    ("scontrol", "partition", "status", "words"),
    [
        (f"cat {RECORDED_NODES}", "alpha", "pass", "qc (partition alpha): 2x T4"),
        (f"cat {RECORDED_NODES}", "nosuch", "fail", "partition nosuch): no node of the partition"),
        ("echo 'scontrol: fatal: Could not establish a configuration source' >&2; exit 1",
         "alpha", "fail", "qc (partition alpha): scontrol failed: scontrol: fatal: Could not"),
    ],
)  # fmt: skip
def test_the_slurm_line_asks_each_partition_as_the_daemon_would(
    tmp_path: Path, scontrol: str, partition: str, status: str, words: str
) -> None:
    """Doctor passed a Slurm region whose partition does not exist or whose Slurm cannot be
    reached (the daemon then starts it without GPUs), and its nvml line said the region would
    get simulated stand-ins."""
    state, config = healthy_setup(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\n{scontrol}\n")
    (bin_dir / "scontrol").chmod(0o755)
    _sbatch_takes_all(bin_dir)
    config.write_text(SLURM_CONFIG.format(state=state, bin=bin_dir, partition=partition))

    code, checks = run_doctor(config)

    assert checks["slurm"].startswith(f"{status}: ") and words in checks["slurm"], checks
    assert code == (1 if status == "fail" else 0)
    assert "simulated" not in checks["nvml"]  # its GPUs come from Slurm, not NVML


def test_a_discovered_region_is_not_warned_as_a_region_without_gpus(tmp_path: Path) -> None:
    """``carbond doctor`` printed ``region_without_gpus`` warnings (one per ``gpus =
    "discover"`` region) above its table, then passed the slurm line with the GPUs Slurm
    has: the operator read that the regions had no GPUs. Their GPUs are asked on the slurm
    line only; nothing is warned."""
    state, config = healthy_setup(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\ncat {RECORDED_NODES}\n")
    (bin_dir / "scontrol").chmod(0o755)
    _sbatch_takes_all(bin_dir)
    config.write_text(SLURM_CONFIG.format(state=state, bin=bin_dir, partition="alpha"))

    with capture_logs() as logs:
        code, checks = run_doctor(config)

    assert code == 0 and checks["gpus"].startswith("pass: ") and checks["slurm"].startswith("pass")
    assert [e for e in logs if e["event"] == "region_without_gpus"] == []


def test_the_slurm_line_notes_a_partition_that_is_not_up(tmp_path: Path) -> None:
    """A partition an operator set down passed doctor without a word (its nodes have their
    GPUs), though ``carbond run`` plans no job onto it while it is down: the slurm line
    still passes, noting it."""
    state, config = healthy_setup(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    partitions = RECORDED_NODES.parent / "scontrol_show_partition_down.txt"
    (bin_dir / "scontrol").write_text(
        f'#!/bin/sh\ncase "$*" in *partition*) cat {partitions} ;;\n'
        f"*) cat {RECORDED_NODES} ;; esac\n"
    )
    (bin_dir / "scontrol").chmod(0o755)
    _sbatch_takes_all(bin_dir)
    config.write_text(SLURM_CONFIG.format(state=state, bin=bin_dir, partition="alpha"))

    code, checks = run_doctor(config)

    assert code == 0
    assert checks["slurm"] == (
        "pass: qc (partition alpha): 2x T4 (note: partition DOWN in Slurm: no job is planned "
        "there until it is up)"
    )


_SBATCH = """#!/bin/sh
printf '%s\\n' "$@" > {argv}
cat > {script}
case "$*" in *--reservation=nosuch*)
    echo 'allocation failure: Requested reservation is invalid' >&2; exit 1 ;;
  *--tres-per-task*)
    echo "sbatch: unrecognized option '--tres-per-task=cpu=1'" >&2
    echo 'Try "sbatch --help" for more information' >&2; exit 255 ;; esac
echo 'sbatch: Job 7 to start at 2026-12-07T15:42:28 using 1 processors on nodes n1' >&2
"""


@pytest.mark.parametrize(
    ("options", "status", "words"),
    [
        ('["--mem=1G", "--reservation=nosuch"]', "fail", "qc (partition alpha): sbatch refuses "
         "its jobs (`sbatch --test-only` with carbond's options and the region's "
         "sbatch_options; every launch would fail): allocation failure: Requested reservation "
         "is invalid"),
        ('["--mem=1G", "--tres-per-task=cpu=1"]', "fail", "qc (partition alpha): sbatch "
         "refuses its jobs (`sbatch --test-only` with carbond's options and the region's "
         "sbatch_options; every launch would fail): sbatch: unrecognized option "
         "'--tres-per-task=cpu=1'"),
        ('["--mem=1G", "--reservation=maint"]', "pass", "qc (partition alpha): 2x T4"),
    ],
)  # fmt: skip
def test_the_slurm_line_asks_sbatch_to_test_the_regions_jobs(
    tmp_path: Path, options: str, status: str, words: str
) -> None:
    """sbatch_options are read at config load against sbatch 22.05's table, but only the
    cluster knows its reservations, accounts, features and what its own sbatch takes: doctor
    passed a region whose every launch sbatch then refused. The slurm line now asks
    ``sbatch --test-only`` with carbond's own argv for a one-GPU job of the region, the
    region's options last and the batch script on its input, and fails in sbatch's words."""
    state, config = healthy_setup(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\ncat {RECORDED_NODES}\n")
    argv, script = tmp_path / "argv", tmp_path / "script"
    (bin_dir / "sbatch").write_text(_SBATCH.format(argv=argv, script=script))
    for tool in ("scontrol", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    config.write_text(SLURM_CONFIG.format(state=state, bin=bin_dir, partition="alpha")
                      + f"sbatch_options = {options}\n")  # fmt: skip

    code, checks = run_doctor(config)

    assert checks["slurm"] == f"{status}: {words}", checks
    assert code == (1 if status == "fail" else 0)
    words_given = argv.read_text().splitlines()
    assert words_given[0] == "--test-only" and "--gres=gpu:t4:1" in words_given  # as launched
    assert "--partition=alpha" in words_given and "--parsable" in words_given
    assert words_given[-2:] == ["--mem=1G", options.split('"')[3]]  # the region's, last
    assert script.read_text().startswith("#!/bin/sh\n")  # the batch script, as launches give it


@pytest.mark.parametrize(
    ("sbatch", "why"),
    [
        (None, "is missing"),
        ("#!/bin/sh\nexit 0\n", "is not executable by uid"),
        ("dir", "is not a file"),
    ],
)
def test_the_slurm_line_fails_when_sbatch_cannot_run(
    tmp_path: Path, sbatch: str | None, why: str
) -> None:
    """With ``scontrol`` answering from ``bin_dir`` but no ``sbatch`` there (or one that is
    not executable), doctor passed the slurm line: its ``sbatch --test-only`` could not run,
    which it read as an sbatch that does not answer. Every launch would fail; the line now
    fails naming the path."""
    state, config = healthy_setup(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\ncat {RECORDED_NODES}\n")
    (bin_dir / "scontrol").chmod(0o755)
    if sbatch == "dir":
        (bin_dir / "sbatch").mkdir()
    elif sbatch is not None:
        (bin_dir / "sbatch").write_text(sbatch)
        (bin_dir / "sbatch").chmod(0o644)
    config.write_text(SLURM_CONFIG.format(state=state, bin=bin_dir, partition="alpha"))

    code, checks = run_doctor(config)

    assert code == 1
    assert checks["slurm"].startswith(
        f"fail: qc (partition alpha): sbatch {bin_dir / 'sbatch'} {why}"
    ), checks
    assert "every launch would fail" in checks["slurm"]


def test_without_slurm_regions_the_slurm_line_is_skipped(tmp_path: Path) -> None:
    _, config = healthy_setup(tmp_path)
    assert run_doctor(config)[1]["slurm"].startswith("skip: no region runs on Slurm")


def test_a_missing_state_dir_that_run_would_create_passes(tmp_path: Path) -> None:
    """Doctor failed (exit 1) on a state dir that did not exist yet, which `carbond run`
    creates at start below a writable parent: a fresh install could not pass doctor."""
    state = tmp_path / "new" / "state"
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=state, policy="run-now"))

    done = _carbond("doctor", "--config", str(config), "--json")

    payload = json.loads(done.stdout)
    checks = {c["check"]: c["status"] + ": " + c["detail"] for c in payload["checks"]}
    assert done.returncode == 0 and payload["ok"], done.stdout
    assert checks["state_dir"] == (
        f"pass: {state} does not exist yet: `carbond run` creates it at start "
        f"(mode 0755, below {tmp_path})"
    )
    assert not state.exists() and not (tmp_path / "new").exists()  # doctor creates nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any directory")
def test_a_missing_state_dir_below_an_unwritable_parent_fails(tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir(mode=0o555)
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=parent / "state", policy="run-now"))

    code, checks = run_doctor(config)

    assert code == 1 and checks["state_dir"].startswith(
        f"fail: {parent / 'state'} does not exist and uid {os.geteuid()} cannot create it "
        f"({parent} is not writable;"
    )


def test_a_missing_state_dir_below_an_unsafe_parent_fails(tmp_path: Path) -> None:
    parent = tmp_path / "open"
    parent.mkdir()
    parent.chmod(0o777)  # writable by others and not sticky: run refuses it
    config = tmp_path / "carbond.toml"
    config.write_text(CONFIG.format(state=parent / "state", policy="run-now"))

    code, checks = run_doctor(config)

    assert code == 1 and checks["state_dir"].startswith("fail: ")
    assert "writable by group or others and not sticky" in checks["state_dir"]


def test_a_ledger_path_that_is_not_a_file_is_named_so_not_missing(tmp_path: Path) -> None:
    # It said "no ledger (has `carbond run` started with this state_dir?)": the daemon had.
    state, config = healthy_setup(tmp_path)
    for leftover in state.glob("ledger.db*"):
        leftover.unlink()
    (state / "ledger.db").mkdir()

    _, checks = run_doctor(config)

    said = f"{state / 'ledger.db'}: not a regular file, so not a ledger (move it aside)"
    assert checks["ledger"] == f"fail: {said}"
    done = _carbond("jobs", "--config", str(config))
    assert (done.returncode, done.stderr) == (2, f"carbond: error: {said}\n")


@pytest.mark.parametrize(
    "content",
    ["garbage\n", '{"updated_at": "2026-01-01T00:00:00", "pid": 1, "problems": {}}\n'],
)
def test_an_unreadable_health_file_is_named_so_not_missing(tmp_path: Path, content: str) -> None:
    """A garbage ``health.json`` read as "no health.json yet (the daemon has not run here)",
    and one whose ``updated_at`` had no UTC offset ended doctor in a ``TypeError`` traceback."""
    state, config = healthy_setup(tmp_path)
    (state / "health.json").write_text(content)

    _, checks = run_doctor(config)

    assert checks["health"].startswith(f"fail: {state / 'health.json'} cannot be read as")


def test_a_newer_ledger_whose_tables_changed_fails_as_newer(tmp_path: Path) -> None:
    """The jobs were counted before the version was read: a later schema without the
    ``transitions`` table failed as "no such table" instead of saying to upgrade carbond."""
    state, config = healthy_setup(tmp_path)
    db = sqlite3.connect(state / "ledger.db")
    db.executescript(
        "DROP TABLE transitions;"
        f"INSERT INTO schema_migrations VALUES ({SCHEMA_VERSION + 1}, 'later', 'x');"
    )
    db.close()

    _, checks = run_doctor(config)

    assert checks["ledger"] == (
        f"fail: {state / 'ledger.db'}: schema v{SCHEMA_VERSION + 1} is newer than this carbond "
        f"(v{SCHEMA_VERSION}): `carbond run` refuses it; upgrade carbond"
    )


@pytest.mark.parametrize(
    ("change", "backlog"),
    [("copy", 0), ("append", 3), ("replace", None), ("truncate", None)],
)
def test_the_queue_backlog_is_what_the_daemon_would_still_read(
    tmp_path: Path, change: str, backlog: int | None
) -> None:
    """The backlog matched the file by inode: after a copy of the state dir (a restore), doctor
    said the whole queue was not ingested, though the daemon knows the copy by its bytes (the
    CRC-32 before the offset) and goes on from the offset; a file truncated in place showed no
    backlog, though the daemon reads it again from the start. None: all of the file is new."""
    state, config = healthy_setup(tmp_path)
    queue = state / "queue.jsonl"
    line = b'{"id": "a", "model": "llama-3.2-1b", "command": ["true"]}\n'
    queue.write_bytes(line * 3)
    with Ledger.open(state / "ledger.db") as ledger:
        Queue(state, ledger).ingest(datetime.now(UTC))
    data = {
        "copy": line * 3,
        "append": line * 3 + b"{}\n",
        "replace": line.replace(b'"a"', b'"b"') * 3,
        "truncate": line,
    }[change]
    if change == "truncate":  # in place: the same inode
        queue.write_bytes(data)
    else:
        copy = queue.with_name("copy")
        copy.write_bytes(data)
        os.chmod(copy, 0o600)
        os.replace(copy, queue)

    _, checks = run_doctor(config)

    expected = len(data) if backlog is None else backlog
    assert f"{len(data)} bytes, {expected} byte(s) not ingested yet" in checks["queue"]


def test_a_file_name_another_user_chose_cannot_drive_the_operators_terminal(
    tmp_path: Path,
) -> None:
    """Anyone may create files in ``queue.d`` (1733): one named with an escape sequence was
    printed raw in the queue line of the doctor that root ran (a retitled or cleared screen,
    a line that reads PASS)."""
    state, config = healthy_setup(tmp_path)
    (state / "queue.d" / "\x1b[2J\x1b[32mPASS\r.jsonl").write_text("")

    done = _carbond("doctor", "--config", str(config))

    [queue] = [line for line in done.stdout.splitlines() if line.startswith("FAIL  queue")]
    assert "\x1b" not in done.stdout and "\r" not in done.stdout
    assert "queue.d/\\x1b[2J\\x1b[32mPASS\\r.jsonl is not named <uid>.jsonl" in queue


def test_a_pid_reused_since_the_daemon_stopped_is_not_taken_for_it(tmp_path: Path) -> None:
    """After a crash or a reboot the pid in ``health.json`` belongs to some other process:
    doctor took it for the daemon and failed, "pid N last wrote health.json ... ago: stuck"."""
    state, config = healthy_setup(tmp_path)
    other = subprocess.Popen(["sleep", "60"])  # alive, and no ledger open
    try:
        (state / "health.json").write_text(json.dumps(
            {"updated_at": "2026-01-01T00:00:00+00:00", "pid": other.pid, "problems": {}}
        ))  # fmt: skip

        _, checks = run_doctor(config)
    finally:
        other.kill()
        other.wait()

    assert checks["health"].startswith(f"skip: daemon not running (pid {other.pid} wrote ")


@pytest.mark.parametrize("alive", [True, False])
def test_a_health_file_from_the_future_says_the_clock_stepped_back(
    tmp_path: Path, alive: bool
) -> None:
    """After the clock stepped back an hour, ``health.json``'s ``updated_at`` is in the
    future: doctor said "wrote health.json -3600 s ago" and passed a daemon that had not
    written it since (stuck), until the clock caught up an hour later."""
    state, config = healthy_setup(tmp_path)
    holder = "import sys, time; f = open(sys.argv[1]); print(flush=True); time.sleep(60)"
    argv = [sys.executable, "-c", holder, str(state / "ledger.db")] if alive else ["true"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as process:
        try:
            assert process.stdout is not None
            process.stdout.readline()  # the ledger is open (or the process is gone)
            if not alive:
                process.wait()
            written = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            (state / "health.json").write_text(json.dumps(
                {"updated_at": written, "pid": process.pid, "problems": {}}
            ))  # fmt: skip

            code, checks = run_doctor(config)
        finally:
            process.kill()

    health = checks["health"]
    assert "-3600 s" not in health and f"at {written}, 3600 s ahead of this clock" in health
    if alive:
        assert code == 1 and health.startswith("fail: ")
        assert "the clock was stepped back and it has not written it since" in health
    else:
        assert health.startswith("skip: daemon not running")


def test_the_config_line_names_the_default_file_it_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a server, ``carbond doctor`` with no ``--config`` reads /etc/carbond/carbond.toml,
    and its config line said it had read "defaults and environment"."""
    _, config = healthy_setup(tmp_path)
    monkeypatch.delenv("CARBOND_CONFIG", raising=False)
    monkeypatch.setattr("daemon.settings.DEFAULT_CONFIG_PATH", config)

    checks = {c.name: c for c in run_checks(None, datetime.now(UTC))}

    assert checks["config"].detail == f"{config}: 1 region(s), policy run-now"


def test_the_policy_check_says_when_the_forecast_ends_before_the_look_ahead(
    tmp_path: Path,
) -> None:
    """A 4 h forecast under carbon-window's 24 h look-ahead passed without a word, the planner
    seeing the forecast's last value, flat, past its end: the policy line now says so."""
    _, config = healthy_setup(tmp_path, policy="carbon-window")
    assert "note" not in run_doctor(config)[1]["policy"]
    config.write_text(config.read_text() + "\n[intensity]\nhorizon_s = 14400\n")
    code, checks = run_doctor(config)
    assert code == 0
    assert checks["policy"] == (
        "pass: carbon-window; note: it looks 24 h ahead, the forecast reaches 4 h "
        "(intensity.horizon_s): past that it plans on the forecast's last value, flat"
    )


def test_a_held_metrics_port_says_the_daemon_runs_without_metrics(tmp_path: Path) -> None:
    """Doctor's failing ``metrics`` line said `carbond run` "would stop at start", but the
    daemon logs ``metrics_unavailable`` and runs on without ``/metrics``
    (tests/daemon/cli/test_run_metrics_port.py; docs/operations.md's doctor table): an operator
    reading doctor believed a squatter on the port kept the scheduler down."""
    _, config = healthy_setup(tmp_path)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        config.write_text(f"{config.read_text()}[metrics]\nport = {port}\n")
        code, checks = run_doctor(config)
    assert code == 1
    detail = checks["metrics"]
    assert detail.startswith(f"fail: 127.0.0.1:{port}: cannot listen (")
    assert "stop at start" not in detail
    assert "run without /metrics" in detail and "metrics_unavailable" in detail


def test_the_metrics_port_is_free_served_by_carbond_or_refused(tmp_path: Path) -> None:
    """A metrics port another program holds passed doctor, then stopped ``carbond run`` at
    start; one a running carbond serves is no problem."""
    _, config = healthy_setup(tmp_path)
    text = config.read_text()
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    config.write_text(f"{text}[metrics]\nport = {port}\n")
    with held:
        code, checks = run_doctor(config)
        assert code == 1
        assert checks["metrics"].startswith(f"fail: 127.0.0.1:{port}: cannot listen (")
    with Metrics() as metrics:
        metrics.start(port)
        (tmp_path / "state" / "health.json").write_text(_health_of(os.getpid()))
        assert (
            run_doctor(config)[1]["metrics"]
            == f"pass: 127.0.0.1:{port}: served by a running carbond"
        )
    assert run_doctor(config)[1]["metrics"] == f"pass: 127.0.0.1:{port} is free"
    config.write_text(f"{text}[metrics]\nport = 0\n")
    assert run_doctor(config)[1]["metrics"] == "skip: metrics.port = 0: no endpoint"


def _health_of(pid: int) -> str:
    """A ``health.json`` as the daemon of pid ``pid`` writes it, now, with no problem."""
    now = datetime.now(UTC).isoformat()
    return json.dumps({"updated_at": now, "pid": pid, "problems": {}})


def test_a_port_served_by_another_state_dir_s_carbond_fails(tmp_path: Path) -> None:
    """A carbond of another state dir (a second instance, a user's own daemon) serving the
    port passed as "served by a running carbond": the daemon of this state dir then ran
    without /metrics and Prometheus scraped the other one's series. The holder is told from
    ``/proc`` (this process here) against the pid this state dir's ``health.json`` names."""
    state, config = healthy_setup(tmp_path)
    with Metrics() as metrics:
        port = metrics.start(0)
        config.write_text(f"{config.read_text()}[metrics]\nport = {port}\n")
        code, checks = run_doctor(config)  # no daemon has run here
        assert code == 1
        assert checks["metrics"].startswith(
            f"fail: 127.0.0.1:{port}: served by another carbond (pid {os.getpid()} ("
        )
        assert f"not the daemon of {state}" in checks["metrics"]
        (state / "health.json").write_text(_health_of(os.getpid() + 100_000))  # another's
        assert run_doctor(config)[1]["metrics"].startswith("fail: ")
        (state / "health.json").write_text(_health_of(os.getpid()))  # this state dir's
        assert run_doctor(config)[1]["metrics"] == (
            f"pass: 127.0.0.1:{port}: served by a running carbond"
        )


def test_a_free_port_the_running_daemon_does_not_serve_fails(tmp_path: Path) -> None:
    """``metrics.port`` changed and reloaded (SIGHUP keeps the port the daemon started with,
    logging ``reload_needs_restart``): doctor passed the new port as free while the running
    daemon served the old one, and Prometheus, pointed at the new one, scraped nothing. A
    running daemon of this state dir is this process here: it holds the ledger open and is
    the pid ``health.json`` names."""
    state, config = healthy_setup(tmp_path)
    port = free_port()
    config.write_text(f"{config.read_text()}[metrics]\nport = {port}\n")
    (state / "health.json").write_text(_health_of(os.getpid()))
    assert run_doctor(config)[1]["metrics"] == f"pass: 127.0.0.1:{port} is free"  # none runs
    with (state / "ledger.db").open("rb"):  # the daemon: it holds its ledger open
        code, checks = run_doctor(config)
    assert code == 1
    assert checks["metrics"] == (
        f"fail: 127.0.0.1:{port} is free: the running daemon (pid {os.getpid()}) does not serve "
        "it (a reload keeps the metrics.port it started with, and one it could not bind at "
        "start stays unserved): restart it (`systemctl restart carbond`)"
    )


def test_a_cache_dir_the_daemon_cannot_write_fails_the_signals_check(tmp_path: Path) -> None:
    """``signals.cache_dir`` that cannot be written passed doctor; the daemon then ran without
    a cache (no intensity history across restarts), saying so only in its log."""
    _, config = healthy_setup(tmp_path)
    text = config.read_text()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    uid = os.geteuid()
    for cache_dir, problem in (
        (blocker, f"signals.cache_dir {blocker} is not a directory"),
        (blocker / "cache", f"signals.cache_dir {blocker / 'cache'} does not exist and uid "
                            f"{uid} cannot create it"),
    ):  # fmt: skip
        config.write_text(f'{text}[signals]\ncache_dir = "{cache_dir}"\n')
        code, checks = run_doctor(config)
        assert code == 1
        assert checks["signals"].startswith("fail: ")
        assert f"{problem}: the daemon runs without a cache" in checks["signals"]
    config.write_text(f'{text}[signals]\ncache_dir = "{tmp_path / "new" / "cache"}"\n')
    assert run_doctor(config)[1]["signals"].startswith("pass: ")


def test_carbond_help_names_every_check_doctor_runs(tmp_path: Path) -> None:
    """``carbond --help`` said doctor checks "config, state dir, ledger, policy, GPUs/NVML,
    signal sources, queue, wrapper": no Slurm, metrics port or daemon health, three of its
    twelve lines (the README's command list and doctor's own description name them all)."""
    names = [c.name for c in run_checks(tmp_path / "absent.toml", datetime.now(UTC))]
    assert len(names) == 13, names
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    line = next(a.help for a in sub._choices_actions if a.dest == "doctor") or ""
    said = line.lower().replace("state dir", "state_dir").replace("/", ", ")
    missing = [name for name in names if not re.search(rf"\b{name}", said)]
    assert not missing, (missing, line)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("cache", "must be an absolute path, got 'cache': the daemon runs from /, where a "
                  "relative one names another directory"),
        ("", "must not be empty (leave it out for <state_dir>/cache/intensity)"),
    ],
)  # fmt: skip
def test_a_relative_cache_dir_is_a_config_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    """A relative ``signals.cache_dir`` (or an empty one, the working directory) passed
    doctor, checked where doctor ran; the daemon, run from / by systemd, looked for it there
    (``/cache``, read-only under ``ProtectSystem=strict``) and ran without a cache."""
    _, config = healthy_setup(tmp_path)
    monkeypatch.chdir(tmp_path)  # where doctor would have found ./cache writable
    text = config.read_text()
    config.write_text(f'{text}[signals]\ncache_dir = "{value}"\n')
    line = len(text.splitlines()) + 2
    code, checks = run_doctor(config)
    assert code == 1
    assert checks["config"] == f"fail: {config}:{line}: signals.cache_dir: {problem}"


def test_a_discovering_region_leaves_no_log_line_beside_the_report(tmp_path: Path) -> None:
    """The gpus check built the inventory without discovery, so a ``gpus = "discover"``
    region logged ``region_without_gpus`` on stderr (a JSON warning that it has no GPU) while
    the nvml line said it discovers a simulated A100-80GB and the check passed."""
    state, config = healthy_setup(tmp_path)
    config.write_text(
        f'state_dir = "{state}"\n[gpu]\nbackend = "simulated"\n'
        '[[regions]]\nname = "a"\nzone = "DE"\ngpus = "discover"\n'
    )
    done = _carbond("doctor", "--config", str(config), "--json")
    checks = {c["check"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["gpus"]["status"] == "pass"
    assert "a discover simulated A100-80GB" in checks["nvml"]["detail"]
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("bin", "must be an absolute path, got 'bin': the daemon runs from /, where a relative "
                "one names another directory"),
        ("./bin", "must be an absolute path, got 'bin'"),
        ("", "must not be empty (leave it out to find the Slurm commands on PATH)"),
    ],
)  # fmt: skip
def test_a_relative_slurm_bin_dir_is_a_config_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    """A relative ``executors.slurm.bin_dir`` (or an empty one, the working directory) passed
    the config check: the Slurm commands run from / (as the daemon does under systemd), so
    ``bin`` named ``/bin/scontrol``, not the ``./bin/scontrol`` beside the config, and doctor's
    slurm line reported what another Slurm (or none) said. It is a config problem at its line,
    as a relative ``signals.cache_dir`` is."""
    state, config = healthy_setup(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\ncat {RECORDED_NODES}\n")
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.chdir(tmp_path)  # where doctor found ./bin/scontrol
    config.write_text(SLURM_CONFIG.format(state=state, bin=value, partition="alpha"))
    line = SLURM_CONFIG.splitlines().index('bin_dir = "{bin}"') + 1
    code, checks = run_doctor(config)
    assert code == 1
    assert checks["config"].startswith(f"fail: {config}:{line}: executors.slurm.bin_dir: {problem}")


_SBATCH_NO_T4 = """#!/bin/sh
printf '%s\\n' "$*" >> {calls}
case "$*" in *--gres=gpu:t4:1*)
    echo 'allocation failure: Requested node configuration is not available' >&2; exit 1 ;;
esac
echo 'sbatch: Job 7 to start at 2026-12-07T15:42:28 using 1 processors on nodes n2' >&2
"""


def test_the_slurm_line_tries_a_job_of_each_gpu_type_the_region_would_use(
    tmp_path: Path,
) -> None:
    """A partition with T4s on n1 and L4s on n2, and a ``--constraint`` only n2 meets: the
    trial asked an untyped ``--gres=gpu:1``, which Slurm placed on n2, so the line passed,
    and every job carbond planned on the T4s (submitted ``--gres=gpu:t4:1``) was refused.
    It now tries one job per GPU type, with the typed request the daemon submits, and names
    the type sbatch refuses."""
    state, config = healthy_setup(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    nodes = tmp_path / "nodes.txt"
    nodes.write_text(RECORDED_NODES.read_text().replace("Partitions=beta", "Partitions=alpha"))
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\ncat {nodes}\n")
    calls = tmp_path / "calls"
    (bin_dir / "sbatch").write_text(_SBATCH_NO_T4.format(calls=calls))
    for tool in ("scontrol", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    config.write_text(SLURM_CONFIG.format(state=state, bin=bin_dir, partition="alpha")
                      + 'sbatch_options = ["--constraint=fast"]\n')  # fmt: skip

    code, checks = run_doctor(config)

    assert code == 1
    assert checks["slurm"] == (
        "fail: qc (partition alpha): sbatch refuses its jobs on its t4 GPUs (`sbatch "
        "--test-only` with carbond's options for them, --gres=gpu:t4:1, and the region's "
        "sbatch_options; every launch on them would fail): allocation failure: Requested node "
        "configuration is not available"
    ), checks
    tried = calls.read_text().splitlines()
    assert [[w for w in c.split() if w.startswith("--gres")] for c in tried] == [
        ["--gres=gpu:l4:1"], ["--gres=gpu:t4:1"],
    ]  # fmt: skip
    assert all(c.split()[-1] == "--constraint=fast" for c in tried)
