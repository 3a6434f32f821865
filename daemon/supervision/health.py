"""What is wrong with the running daemon right now, for ``carbond doctor``: ``health.json``.

The daemon keeps one :class:`Health`: each problem under a key (``step:plan``,
``intensity:DE``, ``clock``, ``gpu:<device id>``: :func:`gpu_key`) with a one-line message and
when it began (a GPU's also with its device id, ``device_id``: what ``carbond submit`` reads). Steps
set and clear their own keys as they fail and recover; a problem set with ``for_s`` (the clock
stepped) clears itself after that long. The service loop writes the file after every step
that changed something, and at least every ``HEARTBEAT_S``, atomically (temp file + rename),
so ``doctor`` (another process) sees the problems and, from ``updated_at``, whether the daemon
is still writing at all: a full disk or a read-only state dir stops the writes, which is itself
the clue. Messages never carry a token (they come from carbond's own errors).

A step that may run longer than ``STALE_S`` (a plan of many jobs, a refresh retrying a failing
API) is not a stuck daemon: the loop says when each step begins and how long it may take
(:func:`step_allowance_s`), and the file then carries that step (``step``: its name, when it
began and ``until``, when a daemon still in it is stuck), rewritten at a step's start when the
file does not already vouch for that long (about once a heartbeat) or names another step (or
none): a daemon stuck in a step is named stuck in that step, not in the one written before it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import structlog

__all__ = [
    "HEALTH_NAME", "HEARTBEAT_S", "MAX_PERIODS_ALLOWANCE_S", "STALE_S", "Health",
    "HealthReport", "gpu_key", "read_health", "step_allowance_s",
]  # fmt: skip

HEALTH_NAME: Final = "health.json"
HEARTBEAT_S: Final = 30.0
# A live daemon that has not written the file for this long, and is in no step it said may
# take longer, is stuck (``carbond doctor``).
STALE_S: Final = 3 * HEARTBEAT_S


# The most three of a step's periods give it: what a step takes does not grow with its period
# (a refresh every day still retries its API for minutes, not days), and a step hung past its
# allowance is restarted by systemd's watchdog only then (daemon.supervision.watchdog).
MAX_PERIODS_ALLOWANCE_S: Final = 900.0


def step_allowance_s(interval_s: float, watchdog_s: float | None = None) -> float:
    """How long a step that runs every ``interval_s`` may take before the daemon in it is
    stuck: :data:`STALE_S`, three of its own periods (at most
    :data:`MAX_PERIODS_ALLOWANCE_S`), or systemd's ``WatchdogSec`` (``watchdog_s``), whichever
    is longest."""
    periods_s = min(3.0 * interval_s, MAX_PERIODS_ALLOWANCE_S)
    return max(STALE_S, periods_s, watchdog_s or 0.0)


log = structlog.get_logger(__name__)


def gpu_key(device_id: str) -> str:
    """The key of a problem about GPU ``device_id`` (``gpu:qc/1``: lost, or declared and
    unusable). Its device id, not an index: two regions' GPU 0 are two GPUs, and the
    simulated backend's meter index counts across regions."""
    return f"gpu:{device_id}"


@dataclass(frozen=True, slots=True)
class _Problem:
    message: str
    since: datetime
    until: datetime | None
    device_id: str | None = None


class Health:
    """The daemon's current problems by key (not thread-safe: the loop's thread uses it)."""

    def __init__(self) -> None:
        self._problems: dict[str, _Problem] = {}
        self._changed = True
        self._written_at: datetime | None = None
        self._write_failed = False
        self._step: tuple[str, datetime, datetime] | None = None  # (name, since, stuck after)
        self._vouched: datetime | None = None  # until when the written file says all is well
        self._written_step: str | None = None  # the step the written file names

    def set(
        self,
        key: str,
        message: str,
        now: datetime,
        *,
        for_s: float | None = None,
        device_id: str | None = None,
    ) -> None:
        """Record (or update) problem ``key``; ``for_s``: it clears itself after that long;
        ``device_id``: the GPU it is about (written as the problem's ``device_id``)."""
        old = self._problems.get(key)
        until = now + timedelta(seconds=for_s) if for_s is not None else None
        same = old is not None and (old.message, old.device_id) == (message, device_id)
        since = old.since if old is not None and same else now
        self._problems[key] = _Problem(message, since, until, device_id)
        self._changed = self._changed or not same

    def clear(self, key: str) -> None:
        """Problem ``key`` is over (nothing if there was none)."""
        if self._problems.pop(key, None) is not None:
            self._changed = True

    def begin_step(self, step: str, now: datetime, allowance_s: float) -> None:
        """The loop begins ``step`` at ``now``; it may take ``allowance_s``
        (:func:`step_allowance_s`). The next :meth:`write` records it when the file written
        last does not already vouch for that long (a heartbeat's margin is added, so steps
        beginning within a heartbeat of a write need none), or names another step: doctor
        named a daemon stuck in a reconcile "stuck in its ingest step", the step written last."""
        until = now + timedelta(seconds=allowance_s)
        self._step = (step, now, until + timedelta(seconds=HEARTBEAT_S))
        if self._vouched is None or self._vouched < until or self._written_step != step:
            self._changed = True

    def end_step(self) -> None:
        """The step begun last is over (the file is rewritten as usual, not for this)."""
        self._step = None

    def problems(self, now: datetime) -> dict[str, str]:
        """Current problems by key (expired ones dropped)."""
        for key, problem in list(self._problems.items()):
            if problem.until is not None and now >= problem.until:
                self.clear(key)
        return {key: p.message for key, p in sorted(self._problems.items())}

    def write(self, path: Path, now: datetime) -> None:
        """Write ``path`` if something changed or ``HEARTBEAT_S`` passed; never raises (a
        failed write is logged once per failure streak: the stale file tells ``doctor``)."""
        problems = self.problems(now)
        # a clock stepped back (by less than a reported step) must not stretch the heartbeat
        fresh = self._written_at is not None and (
            0 <= (now - self._written_at).total_seconds() < HEARTBEAT_S
        )
        if fresh and not self._changed:
            return
        record: dict[str, object] = {
            "updated_at": now.isoformat(),
            "pid": os.getpid(),
            "problems": {key: self._record(key, message) for key, message in problems.items()},
        }
        vouched = now + timedelta(seconds=STALE_S)
        if self._step is not None:
            name, since, until = self._step
            record["step"] = {"name": name, "since": since.isoformat(), "until": until.isoformat()}
            vouched = max(vouched, until)
        tmp = path.with_name(f".{path.name}.tmp")
        try:  # a fresh file: never written through a link (symlink or hard link) left there
            tmp.unlink(missing_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(tmp, flags, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle)
            os.replace(tmp, path)
        except OSError as exc:
            if not self._write_failed:
                log.error("health_write_failed", path=str(path), error=str(exc))
            self._write_failed = True
            return
        self._write_failed = False
        self._changed = False
        self._written_at = now
        self._vouched = vouched
        self._written_step = None if self._step is None else self._step[0]

    def _record(self, key: str, message: str) -> dict[str, str]:
        """Problem ``key`` as the file holds it."""
        problem = self._problems[key]
        record = {"message": message, "since": problem.since.isoformat()}
        if problem.device_id is not None:
            record["device_id"] = problem.device_id
        return record


@dataclass(frozen=True, slots=True)
class HealthReport:
    """``health.json`` as read back: when it was written and the problems then."""

    updated_at: datetime
    pid: int
    problems: dict[str, str]
    # the step the daemon was in when it wrote the file: (name, since, stuck after it)
    step: tuple[str, datetime, datetime] | None = None
    # when each problem began (a step failing the same way each time keeps its first failure)
    since: dict[str, datetime] = field(default_factory=dict)
    # the device id of each problem about a GPU (``gpu:qc/1``: lost, or declared unusable)
    device_ids: dict[str, str] = field(default_factory=dict)


def read_health(path: Path) -> HealthReport | None:
    """The last health the daemon wrote; None when there is no (readable, valid) file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            record = json.loads(handle.read(1 << 20))
        updated_at = datetime.fromisoformat(record["updated_at"])
        if updated_at.tzinfo is None:  # carbond writes UTC with its offset; ages need one
            raise ValueError("updated_at has no UTC offset")
        step = record.get("step")
        during = None
        if step is not None:
            during = (str(step["name"]), _aware(step["since"]), _aware(step["until"]))
        problems = record["problems"]
        return HealthReport(
            updated_at,
            int(record["pid"]),
            {str(k): str(v["message"]) for k, v in problems.items()},
            during,
            {str(k): since for k, v in problems.items() if (since := _since(v)) is not None},
            {str(k): str(v["device_id"]) for k, v in problems.items() if "device_id" in v},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _since(problem: object) -> datetime | None:
    """When ``problem`` (a record of the file) began; None when it does not say."""
    try:
        return _aware(problem["since"])  # type: ignore[index]  # a dict, or not one: caught
    except (ValueError, KeyError, TypeError):
        return None


def _aware(text: object) -> datetime:
    """``text`` as an aware time (ValueError: not one)."""
    when = datetime.fromisoformat(str(text))
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return when
