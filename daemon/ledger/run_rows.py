"""A run row as stored and read back: the :class:`RunRecord` built from it, the row kept in
memory for a new launch, and its stored JSON lists of device ids and GPU indices."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from daemon.ledger.base import dt, json_tuple, req_dt
from daemon.ledger.kept import real
from daemon.ledger.records import RunRecord

__all__ = ["kept_run_row", "list_json", "run_record"]


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
