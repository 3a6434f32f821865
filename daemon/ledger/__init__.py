"""The ledger: jobs, transitions, decisions, runs, outcomes, intensity samples, queue offsets."""

from daemon.ledger.accounting import missed_by_run_now
from daemon.ledger.decisions import alternative_json
from daemon.ledger.errors import LedgerError, UnknownJobError
from daemon.ledger.export import export_table
from daemon.ledger.measured import MeasuredRun
from daemon.ledger.records import (
    DecisionRecord,
    EndedCounterfactual,
    JobRecord,
    LatestPlan,
    QueueFileRecord,
    RunRecord,
    StartedRun,
    TransitionRecord,
    WaitingCounterfactual,
)
from daemon.ledger.run_batches import RunEnd, RunStart
from daemon.ledger.schema import MIGRATIONS, SCHEMA_VERSION
from daemon.ledger.store import Ledger
from daemon.ledger.table_rows import EXPORTABLE

__all__ = [
    "EXPORTABLE",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "DecisionRecord",
    "EndedCounterfactual",
    "JobRecord",
    "LatestPlan",
    "Ledger",
    "LedgerError",
    "MeasuredRun",
    "QueueFileRecord",
    "RunEnd",
    "RunRecord",
    "RunStart",
    "StartedRun",
    "TransitionRecord",
    "UnknownJobError",
    "WaitingCounterfactual",
    "alternative_json",
    "export_table",
    "missed_by_run_now",
]
