"""A run row as stored and read back: the :class:`RunRecord` built from it, the row kept in
memory for a new launch, and its stored JSON lists of device ids and GPU indices."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from daemon.ledger.kept import real
from daemon.ledger.records import RunRecord
from daemon.ledger.values import dt, json_tuple, req_dt

__all__ = [
    "ACTIVE_RUN_COLUMNS",
    "active_run_record",
    "kept_run_row",
    "list_json",
    "run_record",
]


def kept_run_row(
    job_id: str,
    executor: str,
    devices: str,
    indices: str,
    expected_duration_s: float,
    launched_at: str | None,
) -> dict[str, Any]:
    """A new run row as a read returns it (token and end unknown)."""
    return {
        "job_id": job_id, "executor": executor, "token": None, "device_ids_json": devices,
        "gpu_indices_json": indices, "expected_duration_s": real(expected_duration_s),
        "launched_at": launched_at, "started_at": None, "finished_at": None, "exit_code": None,
        "signal": None, "reason": None,
    }  # fmt: skip


def list_json(items: Sequence[Any]) -> str:
    """``items`` as a stored JSON list, ``json.dumps(list(items))`` (a run's device ids and
    GPU indices repeat across runs: texts and ints are encoded once each; other values, which
    may equal them and encode otherwise, such as ``1.0`` or ``True`` for ``1``, each time)."""
    key = tuple(items)
    if all(type(item) is str or type(item) is int for item in key):
        return _exact_list_json(key)
    return json.dumps(list(key))


@functools.lru_cache(maxsize=4096)
def _exact_list_json(items: tuple[str | int, ...]) -> str:
    return json.dumps(list(items))


def run_record(
    row: sqlite3.Row | dict[str, Any], deadline: datetime | None = None, uid: int | None = None
) -> RunRecord:
    return RunRecord(
        job_id=row["job_id"], executor=row["executor"], token=row["token"],
        device_ids=json_tuple(row["device_ids_json"]),
        gpu_indices=json_tuple(row["gpu_indices_json"]),
        expected_duration_s=row["expected_duration_s"], launched_at=req_dt(row["launched_at"]),
        started_at=dt(row["started_at"]), finished_at=dt(row["finished_at"]),
        exit_code=row["exit_code"], signal=row["signal"], reason=row["reason"],
        deadline=deadline, uid=uid,
    )  # fmt: skip


# A running job's run with its job's deadline and owner, in the order active_run_record takes
ACTIVE_RUN_COLUMNS = (
    "runs.job_id, runs.executor, runs.token, runs.device_ids_json, runs.gpu_indices_json,"
    " runs.expected_duration_s, runs.launched_at, runs.started_at, runs.finished_at,"
    " runs.exit_code, runs.signal, runs.reason, jobs.deadline, jobs.uid"
)


def active_run_record(values: tuple[Any, ...]) -> RunRecord:
    """:func:`run_record` of a row of :data:`ACTIVE_RUN_COLUMNS` as a plain tuple, with its
    job's deadline and owner: the same record, its columns taken by position (a
    :class:`sqlite3.Row` finds each by name, comparing it with the names before it)."""
    (job_id, executor, token, devices, indices, expected_s, launched, started, finished,
     exit_code, signal, reason, deadline, uid) = values  # fmt: skip
    return RunRecord(
        job_id, executor, token, json_tuple(devices), json_tuple(indices), expected_s,
        req_dt(launched), dt(started), dt(finished), exit_code, signal, reason, dt(deadline), uid,
    )  # fmt: skip
