"""A ledger an older carbond wrote, opened by this one: read before the daemon migrates it,
then migrated with every job and figure kept."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.doctor.checks import run_checks
from daemon.ledger import MIGRATIONS, SCHEMA_VERSION, Ledger, LedgerError

NOW = datetime(2026, 6, 1, tzinfo=UTC)

SPEC = (
    '{"id": "%s", "name": "%s", "model": "llama-3.2-1b", "params_b": null, "input_tokens": 128, '
    '"output_tokens": 150, "requests": 2, "batch_size": 1, "tensor_parallel": 1, '
    '"deadline": null, "command": ["true"], "regions": [], "gpu_types": [], '
    '"min_gpu_memory_gb": 0.0, "priority": 0, "tags": [], "precision": "fp16", '
    '"runtime": "hf-eager"}'
)
DONE, LIVE = SPEC % ("done", "done"), SPEC % ("live", "live")
# What a carbond of schema version 1 left: a finished job with its decision, run and measured
# outcome, a running one, and the queue file's offset.
VERSION_1_ROWS = f"""
INSERT INTO jobs VALUES ('done', 1000, 1000, 'done', 'succeeded', 0,
    '2026-05-31T10:00:00+00:00', NULL, '{DONE}', 'queue.jsonl:1',
    '2026-05-31T11:00:00+00:00', NULL);
INSERT INTO jobs VALUES ('live', 1000, 1000, 'live', 'running', 0,
    '2026-05-31T10:00:01+00:00', NULL, '{LIVE}', 'queue.jsonl:2',
    '2026-05-31T10:30:00+00:00', NULL);
INSERT INTO decisions (job_id, at, policy, action, reason, region, gpu)
    VALUES ('done', '2026-05-31T10:00:00+00:00', 'run-now', 'start', 'now', 'qc', 'T4');
INSERT INTO runs (job_id, executor, token, device_ids_json, gpu_indices_json, launched_at)
    VALUES ('live', 'simulated', '{{}}', '["qc/0"]', '[0]', '2026-05-31T10:30:00+00:00');
INSERT INTO outcomes (job_id, measured_energy_j, energy_method, total_g, recorded_at)
    VALUES ('done', 3600000.0, 'counter', 31.0, '2026-05-31T11:00:00+00:00');
INSERT INTO queue_files VALUES ('queue.jsonl', 42, 800, 2, NULL);
"""


def _ledger_of_version_1(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
        "description TEXT NOT NULL, applied_at TEXT NOT NULL);\n"
        + MIGRATIONS[0][2]
        + VERSION_1_ROWS
        + f"INSERT INTO schema_migrations VALUES (1, '{MIGRATIONS[0][1]}', '2026-05-31T09:00:00Z');"
    )
    db.close()


def _config(tmp_path: Path, state: Path) -> Path:
    config = tmp_path / "carbond.toml"
    config.write_text(
        f'state_dir = "{state}"\n[policy]\nname = "run-now"\n'
        '[[regions]]\nname = "qc"\nzone = "CA-QC"\nexecutor = "local"\ngpus = ["T4"]\n'
    )
    return config


def test_a_read_the_old_schema_lacks_says_the_daemon_migrates_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _ledger_of_version_1(path)

    with Ledger.open_readonly(path) as reader:
        assert [job.job_id for job in reader.jobs()] == ["done", "live"]
        with pytest.raises(LedgerError) as caught:
            reader.queue_files()
    assert str(caught.value) == (
        f"{path}: no such column: tail (its schema is version 1, older than this carbond's "
        f"{SCHEMA_VERSION}: the daemon migrates it when it starts; restart it after upgrading "
        "carbond)"
    )

    with Ledger.open(path) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
        assert ledger.queue_files()["queue.jsonl"].byte_offset == 800
        outcome = ledger.outcome("done")
        assert outcome is not None
        assert (outcome["energy_j"], outcome["region"], outcome["gpu"]) == (3600000.0, "qc", "T4")
        assert {job.job_id: job.state for job in ledger.jobs()} == {
            "done": "succeeded",
            "live": "running",
        }


def test_doctor_on_a_ledger_an_older_carbond_wrote_names_the_schema(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    _ledger_of_version_1(state / "ledger.db")
    (state / "queue.jsonl").write_bytes(b"")

    checks = {c.name: c for c in run_checks(_config(tmp_path, state), NOW)}

    assert checks["ledger"].status == "pass"
    assert (  # then a note: the test's ledger is readable by other users
        f"schema v1, 1 running, 1 succeeded (the daemon migrates it to v{SCHEMA_VERSION} "
        "when it starts); note: readable by other users"
    ) in checks["ledger"].detail
    assert checks["queue"].status == "fail"
    assert "its schema is version 1, older than this carbond's" in checks["queue"].detail


def test_doctor_fails_a_ledger_newer_than_this_carbond_as_the_daemon_refuses_it(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    Ledger.open(state / "ledger.db").close()
    db = sqlite3.connect(state / "ledger.db")
    db.execute(f"INSERT INTO schema_migrations VALUES ({SCHEMA_VERSION + 1}, 'later', 'x')")
    db.commit()
    db.close()

    checks = {c.name: c for c in run_checks(_config(tmp_path, state), NOW)}

    assert checks["ledger"].status == "fail"
    assert checks["ledger"].detail.endswith(
        f"schema v{SCHEMA_VERSION + 1} is newer than this carbond (v{SCHEMA_VERSION}): "
        "`carbond run` refuses it; upgrade carbond"
    )
    with pytest.raises(LedgerError, match="newer than this carbond"):
        Ledger.open(state / "ledger.db")


def test_a_ledger_a_fork_migrated_under_the_same_numbers_is_refused(tmp_path: Path) -> None:
    # A development branch numbered its queue-files migration 2, where this carbond's 2 adds
    # the outcomes' energy columns: counting versions alone took it for a ledger of schema 2.
    state = tmp_path / "state"
    state.mkdir()
    path = state / "ledger.db"
    _ledger_of_version_1(path)
    fork = "queue files: bytes before the offset, over-long line being skipped"
    db = sqlite3.connect(path)
    db.executescript(
        "ALTER TABLE queue_files ADD COLUMN tail BLOB;"
        f"INSERT INTO schema_migrations VALUES (2, '{fork}', '2026-05-31T09:00:00Z');"
    )
    db.close()
    expected = (
        f"{path}: migration 2 of this ledger is {fork!r}, not this carbond's "
        f"{MIGRATIONS[1][1]!r}: another build of carbond wrote it (a fork or a development "
        "branch); open it with that build, or start from a new state_dir"
    )

    with pytest.raises(LedgerError) as opened:
        Ledger.open(path)
    assert str(opened.value) == expected
    with pytest.raises(LedgerError) as read:
        Ledger.open_readonly(path)
    assert str(read.value) == expected
    checks = {c.name: c for c in run_checks(_config(tmp_path, state), NOW)}
    assert (checks["ledger"].status, checks["ledger"].detail) == ("fail", expected)
