"""Ledgers the report tests build on: one a carbond of ledger schema 1 recorded, migrated
(``migrated_v1_ledger``, its rows ``V1_ROWS``), and a copy of a ledger with each finished job
many times over (``ledger_copies``)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from daemon.ledger import MIGRATIONS, Ledger

# Two outcomes as a carbond of ledger schema 1 recorded them: a job its GPU meter followed
# (method, energy and grams) and one nothing metered (a Slurm job: the prediction only).
_V1_SPEC = '{"id": "%s", "name": "%s", "model": "llama-3.2-1b", "requests": 2}'
V1_ROWS = f"""
INSERT INTO jobs VALUES ('metered', 1000, 1000, 'metered', 'succeeded', 0,
    '2026-05-31T10:00:00+00:00', NULL, '{_V1_SPEC % ("metered", "metered")}', 'q:1',
    '2026-05-31T11:00:00+00:00', NULL);
INSERT INTO jobs VALUES ('slurm', 1000, 1000, 'slurm', 'succeeded', 0,
    '2026-05-31T10:00:00+00:00', NULL, '{_V1_SPEC % ("slurm", "slurm")}', 'q:2',
    '2026-05-31T11:00:00+00:00', NULL);
INSERT INTO decisions (job_id, at, policy, action, reason, region, gpu) VALUES
    ('metered', '2026-05-31T10:00:00+00:00', 'run-now', 'start', 'now', 'qc', 'T4'),
    ('slurm', '2026-05-31T10:00:00+00:00', 'run-now', 'start', 'now', 'ciso', 'A100');
INSERT INTO outcomes (job_id, started_at, finished_at, duration_s, gpus, pue,
    measured_energy_j, energy_method, realised_intensity_g_per_kwh, intensity_source,
    operational_g, embodied_g, total_g, predicted_energy_j, predicted_total_g, run_now_total_g,
    recorded_at) VALUES
    ('metered', '2026-05-31T10:00:00+00:00', '2026-05-31T11:00:00+00:00', 3600, 1, 1.0,
     3600000.0, 'counter', 30.0, 'electricitymaps', 30.0, 2.0, 32.0, 3500000.0, 31.0, 60.0,
     '2026-05-31T11:00:00+00:00'),
    ('slurm', '2026-05-31T10:00:00+00:00', '2026-05-31T11:00:00+00:00', 3600, 1, 1.2,
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3500000.0, 230.0, 300.0,
     '2026-05-31T11:00:00+00:00');
INSERT INTO schema_migrations VALUES (1, '{MIGRATIONS[0][1]}', '2026-05-31T09:00:00Z');
"""


def migrated_v1_ledger(state: Path) -> None:
    """A ledger at ``state`` with ``V1_ROWS`` as a carbond of ledger schema 1 wrote them, then
    migrated as the daemon does when it starts."""
    db = sqlite3.connect(state / "ledger.db")
    db.executescript(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
        "description TEXT NOT NULL, applied_at TEXT NOT NULL);\n" + MIGRATIONS[0][2] + V1_ROWS
    )
    db.close()
    Ledger.open(state / "ledger.db").close()


def ledger_copies(state: Path, into: Path, copies: int) -> int:
    """``state``'s ledger at ``into`` with each finished job also there ``copies`` more times
    under new ids (``<id>~<n>``); returns the jobs with an outcome."""
    shutil.copy(state / "ledger.db", into / "ledger.db")
    db = sqlite3.connect(into / "ledger.db")
    with db:
        for table in ("jobs", "outcomes"):
            names = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            values = ", ".join("job_id || '~' || ?" if n == "job_id" else n for n in names)
            for n in range(copies):
                db.execute(
                    f"INSERT INTO {table} ({', '.join(names)}) SELECT {values} FROM {table}"
                    " WHERE job_id IN (SELECT job_id FROM outcomes) AND job_id NOT LIKE '%~%'",
                    (n,),
                )
    jobs: int = db.execute("SELECT count(*) FROM outcomes").fetchone()[0]
    db.close()
    return jobs
