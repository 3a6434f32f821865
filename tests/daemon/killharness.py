"""The kill-point harness: SIGKILL the real ``carbond run`` at named points and at random
moments, restart it, and check after every kill that nothing was lost, doubled or corrupted.

One *session* is one state dir. It starts with a kill inside the first schema migration, then
runs *cycles*: append a few jobs (and now and then a garbage line) straight to the queue file,
start the daemon with ``CARBOND_KILL_AT=<point>:<nth>`` (or with none, for a kill from outside
at a random moment), wait for it to die (a point the cycle never reached is a kill from outside
after ``point_wait_s``), and check the state dir. After the last cycle the daemon runs without
a kill point until every job has ended and is stopped with SIGTERM, and the final check runs.

A job's command appends its id to ``runs.log``, so a job run twice shows there. Checked after
every kill: ``PRAGMA integrity_check`` is ``ok``, no id in ``runs.log`` twice, no job id twice
in the ledger, every job that ran and ended has its outcome and its run's end. At the end, also:
every job submitted is in the ledger exactly once and ended, each succeeded job ran exactly
once, every job succeeded unless its owner cancelled it (a cancel line for one of the last few
jobs follows some submissions; a quarter of the jobs run for 2 s, so that some cancels find
them running), a job cancelled before it started never ran, and every garbage line is in
``rejected.jsonl``.

Used by ``tests/daemon/test_killpoints.py`` (a short profile in the normal suite) and by
``make kill-harness`` (the long one): ``python -m tests.daemon.killharness --kills 500``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from daemon.killpoints import ENV, POINTS
from daemon.ledger import Ledger, LedgerError

REPO = Path(__file__).resolve().parents[2]
FINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})
GARBAGE = "this line is not json"
STARTUP_S = 120.0  # for `carbond run` to log service_started (imports on a loaded machine)
# The points a kill cycle may name after the first (a migration's): not the recalibration
# checkpoint's, which a daemon that measures no energy (this one) never reaches, nor a lost
# GPU's stop, which needs a GPU meter to see a GPU lost, nor a held job's hand-over, which
# needs a reserving executor (Slurm); their own tests kill a real process there
# (tests/daemon/learning/test_checkpoint.py, tests/daemon/test_killpoints.py,
# tests/daemon/executors/test_slurm_service.py).
HARNESS_POINTS = tuple(
    p for p in POINTS[1:] if p not in ("recalibration_checkpoint", "gpu_lost_stop", "hold_handed")
)
FINISH_S = 900.0  # for the last daemon to run every job (a loaded shared machine is slow)

CONFIG = """
state_dir = "{state}"
[policy]
name = "run-now"
[intensity]
source = "static"
[intervals]
ingest_s = 0.05
plan_s = 0.05
reconcile_s = 0.05
[queue]
compact_min_bytes = 600
retired_grace_s = 0.2
[executors.local]
grace_s = 2.0
[metrics]
port = 0
[log]
format = "json"
[[regions]]
name = "local"
zone = "CA-QC"
executor = "local"
gpus = ["T4", "T4", "T4", "T4"]
"""


_ENDED_WITHOUT_OUTCOME = (
    "SELECT j.job_id FROM jobs j JOIN runs r ON r.job_id = j.job_id "
    "LEFT JOIN outcomes o ON o.job_id = j.job_id "
    "WHERE j.state IN ('succeeded', 'failed', 'cancelled', 'expired') "
    "AND (o.job_id IS NULL OR r.finished_at IS NULL)"
)


class HarnessError(AssertionError):
    """An invariant broke; the message names the session, the kill and what broke."""


@dataclass(slots=True)
class Tally:
    """What a harness run did."""

    kills: int = 0
    point_kills: Counter[str] = field(default_factory=Counter)
    outside_kills: int = 0
    missed: int = 0
    checks: int = 0
    jobs: int = 0
    sessions: int = 0

    def add(self, other: Tally) -> None:
        """Add ``other``'s counts to this one."""
        self.kills += other.kills
        self.point_kills.update(other.point_kills)
        self.outside_kills += other.outside_kills
        self.missed += other.missed
        self.checks += other.checks
        self.jobs += other.jobs
        self.sessions += other.sessions

    def summary(self) -> str:
        """One line: kills by kind, checks, jobs."""
        points = ", ".join(f"{p} {n}" for p, n in sorted(self.point_kills.items()))
        return (
            f"{self.kills} kills in {self.sessions} sessions ({self.outside_kills} from outside "
            f"at random moments, {self.missed} from outside when the point was not reached in "
            f"time; at points: {points}); {self.checks} checks; {self.jobs} jobs; "
            "0 failures"
        )


class Session:
    """One state dir under ``root`` driven through ``kills`` kills."""

    def __init__(self, root: Path, seed: int, *, point_wait_s: float = 12.0) -> None:
        self.root = root
        self.state = root / "state"
        self.state.mkdir(parents=True)
        self.config = root / "carbond.toml"
        self.config.write_text(CONFIG.format(state=self.state))
        self.runs = root / "runs.log"
        self.runs.touch()
        self.log = root / "daemon.log"
        self.rng = random.Random(seed)
        self.point_wait_s = point_wait_s
        self.expected: list[str] = []
        self.cancelled: set[str] = set()  # jobs a cancel line was appended for
        self.garbage = 0
        self.tally = Tally(sessions=1)

    # -- the daemon -------------------------------------------------------------------------
    def _start(self, kill_at: str | None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARBOND_")}
        env.pop("NOTIFY_SOCKET", None)
        if kill_at:
            env[ENV] = kill_at
        with self.log.open("ab") as out:
            out.write(f"--- start kill_at={kill_at}\n".encode())
            return subprocess.Popen(
                [sys.executable, "-m", "daemon", "run", "--config", str(self.config)],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip

    def _started(self, daemon: subprocess.Popen[bytes], starts: int) -> bool:
        """Wait until the daemon logged its ``starts``-th ``service_started`` (False: it died
        first, e.g. at the migration point). Start-up takes seconds on a loaded machine."""
        end = time.monotonic() + STARTUP_S
        while daemon.poll() is None:
            if self.log.read_bytes().count(b'"service_started"') >= starts:
                return True
            if time.monotonic() > end:
                raise self._failure(f"the daemon did not start within {STARTUP_S:.0f} s")
            time.sleep(0.05)
        return False

    def _kill(self, daemon: subprocess.Popen[bytes], kill_at: str | None) -> str:
        """Feed jobs while waiting for a point kill; which kill it was (``missed``: the point
        was not reached within ``point_wait_s`` of start-up and the daemon was killed from
        outside; ``outside``: a random moment, half of them during start-up)."""
        starts = self.log.read_bytes().count(b'"service_started"') + 1
        if kill_at is None and self.rng.random() < 0.5:
            wait_s = self.rng.uniform(0.0, 1.5)  # somewhere in start-up
        else:
            self._started(daemon, starts)
            wait_s = self.point_wait_s if kill_at else self.rng.uniform(0.0, 2.0)
        end = time.monotonic() + wait_s
        while time.monotonic() < end and daemon.poll() is None:
            time.sleep(0.05)
            if self.rng.random() < 0.15:
                self._submit(1)
        code = daemon.poll()
        if code == -signal.SIGKILL and kill_at:
            return kill_at.split(":")[0]
        if code is not None:
            raise self._failure(f"the daemon exited {code} (kill point {kill_at})")
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        return "missed" if kill_at else "outside"

    # -- the workload -----------------------------------------------------------------------
    def _submit(self, count: int) -> None:
        with (self.state / "queue.jsonl").open("ab") as queue:
            for _ in range(count):
                job_id = f"j{len(self.expected)}"
                self.expected.append(job_id)
                # a quarter run for 2 s, so that some cancels find them running
                slow = "; sleep 2" if self.rng.random() < 0.25 else ""
                command = ["sh", "-c", f'echo {job_id} >> "{self.runs}"{slow}']
                line = {"id": job_id, "model": "llama-1b", "requests": 1, "command": command}
                queue.write((json.dumps(line) + "\n").encode())
            if self.rng.random() < 0.2:
                queue.write(f"{GARBAGE}\n".encode())
                self.garbage += 1
            if self.rng.random() < 0.2:  # the owner cancels a job: waiting, running or ended
                job_id = self.rng.choice(self.expected[-8:])
                self.cancelled.add(job_id)
                queue.write((json.dumps({"cancel": job_id}) + "\n").encode())

    # -- checks -----------------------------------------------------------------------------
    def _failure(self, what: str) -> HarnessError:
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        return HarnessError(
            f"{self.root} after kill {self.tally.kills}: {what}\n--- daemon.log tail:\n{tail}"
        )

    def check(self) -> None:
        """The invariants that hold after any kill."""
        self.tally.checks += 1
        ran = Counter(self.runs.read_text().split())
        twice = sorted(job for job, n in ran.items() if n > 1)
        if twice:
            raise self._failure(f"jobs ran twice: {twice}")
        db = self.state / "ledger.db"
        if not db.exists():
            return
        connection = sqlite3.connect(db)
        try:
            (result,) = connection.execute("PRAGMA integrity_check").fetchone()
            tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
            migrated = {"jobs", "runs", "outcomes"} <= tables  # not if killed mid-migration
            ids = [r[0] for r in connection.execute("SELECT job_id FROM jobs")] if migrated else []
            no_outcome = (
                [r[0] for r in connection.execute(_ENDED_WITHOUT_OUTCOME)] if migrated else []
            )
        finally:
            connection.close()
        if result != "ok":
            raise self._failure(f"PRAGMA integrity_check: {result}")
        if no_outcome:
            raise self._failure(f"jobs ran and ended without an outcome: {no_outcome[:5]}")
        if len(ids) != len(set(ids)):
            raise self._failure("a job id is in the ledger twice")
        unknown = set(ids) - set(self.expected)
        if unknown:
            raise self._failure(f"jobs nobody submitted: {sorted(unknown)[:5]}")

    def final_check(self) -> None:
        """The end state, once the daemon ran without a kill point until every job ended."""
        self.check()
        with Ledger.open_readonly(self.state / "ledger.db") as ledger:
            jobs = {job.job_id: job.state for job in ledger.jobs()}
            runs = {job_id: ledger.run(job_id) for job_id in jobs}
            outcomes = {job_id: ledger.outcome(job_id) for job_id in jobs}
            unstarted = {
                job_id
                for job_id, state in jobs.items()
                if state == "cancelled"
                and ledger.transitions(job_id)[-1].reason.endswith("before start")
            }
        if sorted(jobs) != sorted(self.expected):
            missing = sorted(set(self.expected) - set(jobs))
            raise self._failure(f"jobs not ingested: {missing[:10]}")
        ran = Counter(self.runs.read_text().split())
        for job_id, state in jobs.items():
            run = runs[job_id]
            if state not in FINAL:
                raise self._failure(f"{job_id} is still {state}")
            if state == "succeeded" and ran[job_id] != 1:
                raise self._failure(f"{job_id} succeeded but ran {ran[job_id]} times")
            if job_id in unstarted and (ran[job_id] or run is not None):
                raise self._failure(f"{job_id} was cancelled before it started, but it ran")
            if run is not None and (run.finished_at is None or outcomes[job_id] is None):
                raise self._failure(f"{job_id} ran but its end or outcome is not recorded")
        # a run-now job of `echo` has no reason to fail, even across kills, unless cancelled
        cancelled = {j for j, s in jobs.items() if s == "cancelled" and j in self.cancelled}
        failed = sorted(j for j, s in jobs.items() if s != "succeeded" and j not in cancelled)
        if failed:
            raise self._failure(f"jobs did not succeed: {failed[:10]}")
        path = self.state / "rejected.jsonl"
        rejected = path.read_text().splitlines() if path.exists() else []
        garbage = [r for r in map(json.loads, rejected) if r["line"] == GARBAGE]
        if len(garbage) < self.garbage:
            raise self._failure(f"{self.garbage} garbage lines, {len(garbage)} rejected")

    def _final_count(self) -> int:
        try:
            with Ledger.open_readonly(self.state / "ledger.db") as ledger:
                return sum(n for s, n in ledger.counts_by_state().items() if s in FINAL)
        except LedgerError:  # not migrated yet (the last kill was in the migration)
            return 0

    # -- the run ----------------------------------------------------------------------------
    def run(self, kills: int, outside_share: float = 0.2) -> Tally:
        """Kill the daemon ``kills`` times (the first in a migration), then finish and check."""
        plan = ["migration:1"] + [
            None if self.rng.random() < outside_share
            else f"{self.rng.choice(HARNESS_POINTS)}:{self.rng.randint(1, 2)}"
            for _ in range(kills - 1)
        ]  # fmt: skip
        return self.run_plan(plan)

    def run_plan(self, plan: list[str | None]) -> Tally:
        """One kill per entry (``<point>:<nth>``, or None for a random moment), then finish."""
        for k, kill_at in enumerate(plan):
            if k:
                self._submit(self.rng.randint(1, 4))
            daemon = self._start(kill_at)
            kind = self._kill(daemon, kill_at)
            self.tally.kills += 1
            if kind == "outside":
                self.tally.outside_kills += 1
            elif kind == "missed":
                self.tally.missed += 1
            else:
                self.tally.point_kills[kind] += 1
            self.check()
        daemon = self._start(None)
        try:
            end = time.monotonic() + FINISH_S
            while (self.state / "ledger.db").exists() is False or self._final_count() < len(
                self.expected
            ):
                if daemon.poll() is not None:
                    raise self._failure(f"the daemon exited {daemon.returncode} at the end")
                if time.monotonic() > end:
                    raise self._failure(f"not every job ended within {FINISH_S:.0f} s")
                time.sleep(0.1)
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
        self.final_check()
        self.tally.jobs = len(self.expected)
        return self.tally


def run_harness(root: Path, kills: int, *, per_session: int = 50, seed: int = 0) -> Tally:
    """``kills`` kills in sessions of ``per_session`` under ``root``; the tally.

    Raises:
        HarnessError: the first broken invariant.
    """
    total = Tally()
    session = 0
    while total.kills < kills:
        n = min(per_session, kills - total.kills)
        total.add(Session(root / f"s{session}", seed * 1000 + session).run(n))
        session += 1
        print(f"after session {session}: {total.summary()}", flush=True)
    return total


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.daemon.killharness --kills N --root DIR``: print the tally."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=500)
    parser.add_argument("--per-session", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.monotonic()
    tally = run_harness(args.root, args.kills, per_session=args.per_session, seed=args.seed)
    print(f"kill harness: {tally.summary()} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
