"""SQL that takes a ledger back from the current schema to an older one, to test what an older
carbond's ledger becomes: ``UNDO_VERSION_n`` undoes every migration from version ``n`` on
(run it, then delete the ``schema_migrations`` rows above ``n - 1``)."""

from __future__ import annotations

__all__ = [
    "UNDO_VERSION_7",
    "UNDO_VERSION_8",
    "UNDO_VERSION_9",
    "UNDO_VERSION_10",
    "UNDO_VERSION_11",
    "UNDO_VERSION_12",
]

UNDO_VERSION_12 = """
DROP TABLE recalibration_checkpoint_factors;
CREATE TABLE recalibration_checkpoint_factors (
    model TEXT NOT NULL,
    gpu TEXT NOT NULL,
    samples INTEGER NOT NULL,
    energy_log REAL NOT NULL,
    duration_log REAL NOT NULL,
    measured_s REAL NOT NULL,
    early_json TEXT,
    PRIMARY KEY (model, gpu)
);
"""
UNDO_VERSION_11 = (
    UNDO_VERSION_12
    + """
ALTER TABLE runs DROP COLUMN stopping;
"""
)
UNDO_VERSION_10 = (
    UNDO_VERSION_11
    + """
ALTER TABLE recalibration_checkpoint_factors DROP COLUMN early_json;
"""
)
UNDO_VERSION_9 = (
    UNDO_VERSION_10
    + """
ALTER TABLE runs DROP COLUMN cancel_sent_at;
ALTER TABLE jobs DROP COLUMN cancel_requested_by;
"""
)
UNDO_VERSION_8 = (
    UNDO_VERSION_9
    + """
ALTER TABLE queue_files DROP COLUMN prefix_crc;
"""
)
UNDO_VERSION_7 = (
    UNDO_VERSION_8
    + """
DROP TABLE recalibration_checkpoint;
DROP TABLE recalibration_checkpoint_factors;
DROP INDEX outcomes_measured;
"""
)
