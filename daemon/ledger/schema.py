"""The ledger's versioned schema: an ordered list of migrations, applied once each.

Each migration runs in its own transaction together with its row in ``schema_migrations``, so
a crash leaves the database at a whole version. Add a migration to the end; never edit one
that has shipped, its description included: a ledger whose migration N has another description
was written by another build (a fork) and is refused. Times are RFC 3339 UTC text; JSON
columns hold JSON text.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

_V1: Final = """
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    submitted_at TEXT NOT NULL,
    deadline TEXT,
    spec_json TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    cancel_requested_at TEXT
);
CREATE INDEX jobs_state ON jobs (state);

CREATE TABLE transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs (job_id),
    from_state TEXT,
    to_state TEXT NOT NULL,
    at TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX transitions_job ON transitions (job_id);

CREATE TABLE decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs (job_id),
    at TEXT NOT NULL,
    policy TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    region TEXT,
    gpu TEXT,
    device_ids_json TEXT,
    planned_start TEXT,
    expected_duration_s REAL,
    expected_energy_j REAL,
    expected_intensity_g_per_kwh REAL,
    expected_operational_g REAL,
    expected_embodied_g REAL,
    expected_total_g REAL,
    run_now_total_g REAL,
    run_now_json TEXT,
    alternatives_json TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX decisions_job ON decisions (job_id);

CREATE TABLE runs (
    job_id TEXT PRIMARY KEY REFERENCES jobs (job_id),
    executor TEXT NOT NULL,
    token TEXT,
    device_ids_json TEXT NOT NULL,
    gpu_indices_json TEXT NOT NULL,
    expected_duration_s REAL NOT NULL DEFAULT 0,
    launched_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    exit_code INTEGER,
    signal INTEGER,
    reason TEXT
);

CREATE TABLE outcomes (
    job_id TEXT PRIMARY KEY REFERENCES jobs (job_id),
    started_at TEXT,
    finished_at TEXT,
    duration_s REAL,
    gpus INTEGER,
    measured_energy_j REAL,
    energy_method TEXT,
    realised_intensity_g_per_kwh REAL,
    intensity_source TEXT,
    intensity_age_s REAL,
    pue REAL,
    operational_g REAL,
    embodied_g REAL,
    total_g REAL,
    predicted_energy_j REAL,
    predicted_duration_s REAL,
    predicted_intensity_g_per_kwh REAL,
    predicted_total_g REAL,
    run_now_total_g REAL,
    details_json TEXT,
    recorded_at TEXT NOT NULL
);

CREATE TABLE intensity_samples (
    zone TEXT NOT NULL,
    at TEXT NOT NULL,
    intensity_g_per_kwh REAL NOT NULL,
    source TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (zone, at, source)
);

CREATE TABLE queue_files (
    path TEXT PRIMARY KEY,
    inode INTEGER,
    byte_offset INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    retired_at TEXT
);

CREATE TABLE compactions (
    src TEXT PRIMARY KEY,
    dst TEXT NOT NULL,
    inode INTEGER,
    byte_offset INTEGER NOT NULL,
    line_no INTEGER NOT NULL,
    started_at TEXT NOT NULL
);
"""

# Every finished job's accounting (issue 14): the energy its grams use whatever the method
# (``energy_method`` names it: nvml-counter, nvml-power-integral, slurm-sacct, estimated, ...),
# and where it ran, so reports group outcomes without replaying decisions. Older rows: the
# measured energy is the energy used; where they ran comes from their latest decision.
_V2: Final = """
ALTER TABLE outcomes ADD COLUMN energy_j REAL;
ALTER TABLE outcomes ADD COLUMN region TEXT;
ALTER TABLE outcomes ADD COLUMN zone TEXT;
ALTER TABLE outcomes ADD COLUMN gpu TEXT;
UPDATE outcomes SET energy_j = measured_energy_j;
UPDATE outcomes SET
    region = (SELECT d.region FROM decisions d WHERE d.job_id = outcomes.job_id
              ORDER BY d.seq DESC LIMIT 1),
    gpu = (SELECT d.gpu FROM decisions d WHERE d.job_id = outcomes.job_id
           ORDER BY d.seq DESC LIMIT 1);
CREATE INDEX outcomes_finished ON outcomes (finished_at);
CREATE INDEX intensity_samples_at ON intensity_samples (zone, at);
"""

# On-site energy (issue 16): a finished job's facility energy (energy_j x PUE) split by source
# at a region with a site (PV, battery, grid); NULL elsewhere and for older rows (all grid).
_V3: Final = """
ALTER TABLE outcomes ADD COLUMN site_pv_j REAL;
ALTER TABLE outcomes ADD COLUMN site_battery_j REAL;
ALTER TABLE outcomes ADD COLUMN site_grid_j REAL;
"""

# Queue-file identity beyond the inode (a file truncated and refilled past the old offset keeps
# its inode: the bytes just before the offset must still be there), and an over-long line being
# skipped until its newline (so it is rejected once and never buffered).
_V4: Final = """
ALTER TABLE queue_files ADD COLUMN tail BLOB;
ALTER TABLE queue_files ADD COLUMN skipping INTEGER NOT NULL DEFAULT 0;
"""

# Jobs per state, kept by triggers in the same transaction as every change of ``jobs`` (the
# daemon reports them after each reconcile; counting every row each round grew with the history).
_V5: Final = """
CREATE TABLE job_state_counts (
    state TEXT PRIMARY KEY,
    jobs INTEGER NOT NULL
);
INSERT INTO job_state_counts SELECT state, count(*) FROM jobs GROUP BY state;
CREATE TRIGGER job_state_counts_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_state_counts VALUES (new.state, 1)
        ON CONFLICT (state) DO UPDATE SET jobs = jobs + 1;
END;
CREATE TRIGGER job_state_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_state_counts SET jobs = jobs - 1 WHERE state = old.state;
END;
CREATE TRIGGER job_state_counts_update AFTER UPDATE OF state ON jobs
WHEN old.state IS NOT new.state BEGIN
    UPDATE job_state_counts SET jobs = jobs - 1 WHERE state = old.state;
    INSERT INTO job_state_counts VALUES (new.state, 1)
        ON CONFLICT (state) DO UPDATE SET jobs = jobs + 1;
END;
"""

# The counts of version 5 go: a trigger on ``jobs`` made every state change ~2x the work (a fifth
# to a quarter of a replay's SQLite time), and the counts are as cheap from the rows themselves
# (``Ledger.counts_by_state``: the active jobs on the ``jobs_state`` index, the finished ones
# followed through the transitions added since).
_V6: Final = """
DROP TRIGGER job_state_counts_insert;
DROP TRIGGER job_state_counts_delete;
DROP TRIGGER job_state_counts_update;
DROP TABLE job_state_counts;
"""

# The recalibration factors a restart would fold from the measured outcomes up to a watermark,
# so a restart folds only the outcomes recorded since (daemon.learning.checkpoint): one row
# saying what was folded and under which inputs, one row per (model, GPU type) folded. The
# partial index keeps the measured outcomes in the order a restart folds them (``recorded_at``,
# then rowid), so the rows since a watermark, and the count up to it, are read without a scan.
_V7: Final = """
CREATE TABLE recalibration_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL,
    folded_recorded_at TEXT NOT NULL,
    folded_rowid INTEGER NOT NULL,
    measured_rows INTEGER NOT NULL,
    measured_rowid_sum INTEGER NOT NULL,
    succeeded_jobs INTEGER NOT NULL,
    transitions_seq INTEGER NOT NULL,
    decisions_seq INTEGER NOT NULL,
    runs_folded INTEGER NOT NULL,
    written_at TEXT NOT NULL
);
CREATE TABLE recalibration_checkpoint_factors (
    model TEXT NOT NULL,
    gpu TEXT NOT NULL,
    samples INTEGER NOT NULL,
    energy_log REAL NOT NULL,
    duration_log REAL NOT NULL,
    measured_s REAL NOT NULL,
    PRIMARY KEY (model, gpu)
);
CREATE INDEX outcomes_measured ON outcomes (recorded_at)
    WHERE measured_energy_j IS NOT NULL AND duration_s;
"""

# Queue-file identity that survives a copy of the state dir (``cp -a``, ``rsync``, a restore):
# the CRC-32 of every byte before the offset. A file with another inode whose bytes up to the
# offset are the same is the same file, read on from its offset (NULL: older rows, computed at
# the next pass).
_V8: Final = """
ALTER TABLE queue_files ADD COLUMN prefix_crc INTEGER;
"""

# When the owner's cancel was first sent to a run (its executor asked to stop it; NULL: never):
# a run that then exits 0 was stopped early, also when the daemon that sent the cancel died
# before the run ended and a restarted one records the end. Who asked to cancel a job (the uid
# of the queue file's owner: the job's owner or root; NULL: no request, or one recorded before),
# so a job root cancelled is not recorded as cancelled by its owner.
_V9: Final = """
ALTER TABLE runs ADD COLUMN cancel_sent_at TEXT;
ALTER TABLE jobs ADD COLUMN cancel_requested_by INTEGER;
"""

# The observations a recalibration factor not yet in use keeps for its time-weighted median
# (policies.footprint.recalibration: JSON {"energy": [[log, s], ...], "duration": [...]}; NULL:
# none, an established factor). An older carbond's checkpoint (means, not medians) is dropped:
# derived state, the next start folds the measured runs from scratch.
_V10: Final = """
ALTER TABLE recalibration_checkpoint_factors ADD COLUMN early_json TEXT;
DELETE FROM recalibration_checkpoint;
DELETE FROM recalibration_checkpoint_factors;
"""

# Why a run whose job has ended is still being stopped (its GPU was lost: the job is recorded
# failed at once, its processes get SIGTERM, then SIGKILL after the executor's grace); NULL once
# its executor reports it gone. A restarted daemon goes on stopping the runs it names.
_V11: Final = """
ALTER TABLE runs ADD COLUMN stopping TEXT;
"""

# The recalibration factors are kept per (model, GPU type, runtime, precision) as well as per
# (model, GPU type) (policies.footprint.recalibration; the coarse rows have an empty runtime and
# precision), so the factors' table gets those two columns in its key. An older carbond's
# checkpoint (one factor per pair, runtimes mixed) is dropped: derived state, the next start
# folds the measured runs from scratch.
_V12: Final = """
DROP TABLE recalibration_checkpoint_factors;
CREATE TABLE recalibration_checkpoint_factors (
    model TEXT NOT NULL,
    gpu TEXT NOT NULL,
    runtime TEXT NOT NULL,
    precision TEXT NOT NULL,
    samples INTEGER NOT NULL,
    energy_log REAL NOT NULL,
    duration_log REAL NOT NULL,
    measured_s REAL NOT NULL,
    early_json TEXT,
    PRIMARY KEY (model, gpu, runtime, precision)
);
DELETE FROM recalibration_checkpoint;
"""

# (version, description, SQL script)
MIGRATIONS: Final[tuple[tuple[int, str, str], ...]] = (
    (1, "jobs, transitions, decisions, runs, outcomes, intensity samples, queue offsets", _V1),
    (2, "outcomes: energy used for the grams, region, zone and GPU of every finished job", _V2),
    (3, "outcomes: on-site PV, battery and grid energy of jobs at regions with a site", _V3),
    (4, "queue files: bytes before the offset, over-long line being skipped", _V4),
    (5, "jobs per state, kept by triggers", _V5),
    (6, "jobs per state counted from the jobs and transitions, not kept by triggers", _V6),
    (
        7,
        "recalibration checkpoint: the factors folded up to a watermark; measured outcomes index",
        _V7,
    ),
    (8, "queue files: CRC-32 of the bytes before the offset, so a copied file is read on", _V8),
    (9, "runs: when a cancel was first sent; jobs: the uid that asked to cancel", _V9),
    (10, "recalibration checkpoint: the observations of each factor not yet in use", _V10),
    (11, "runs: why a run whose job ended is still being stopped (a lost GPU)", _V11),
    (12, "recalibration checkpoint: factors per runtime and precision as well", _V12),
)
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]
