"""A small real daemon for the end-to-end test: ``python -m tests.daemon.e2e_daemon STATE_DIR``.

It builds the real :class:`daemon.service.Service` (queue, ledger, run-now policy, eight
declared T4s) with a minimal process executor and calls ``tick`` with the wall clock until
SIGTERM. Jobs run through a ``sh`` wrapper that claims the job with an ``O_EXCL`` marker
before running it and records the exit status atomically, so a job can never start twice and
its outcome survives the daemon. (``carbond run`` with the local executor replaces this once
both halves of issue 4 are merged.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from daemon.executors.base import ExitStatus, LaunchSpec, NotStarted, RunHandle
from daemon.intensity import StaticIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.queue import Queue
from daemon.service import Service
from daemon.settings import RegionSettings, Settings
from policies import get_policy

# $1: the job's directory; the rest: its argv. `set -C` makes `>` fail on an existing file.
WRAPPER = (
    'd="$1"; shift; set -C; { echo $$ > "$d/claim"; } 2>/dev/null || exit 0; set +C; '
    '"$@"; rc=$?; echo "$rc" > "$d/status.tmp" && mv "$d/status.tmp" "$d/status"'
)


class ProcessExecutor:
    """Starts each job's argv (no shell of ours) through the claiming wrapper, one directory
    per launch attempt under ``log_dir/<job_id>/``."""

    name = "proc"

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._children: list[subprocess.Popen[bytes]] = []

    def launch(self, spec: LaunchSpec, now: datetime) -> RunHandle:
        attempt = spec.log_dir / spec.job_id / f"a{time.time_ns()}"
        attempt.mkdir(parents=True)
        env = dict(os.environ, **spec.env)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in spec.gpu_indices)
        with (attempt / "out").open("ab") as out:
            child = subprocess.Popen(
                ["sh", "-c", WRAPPER, "wrapper", str(attempt), *spec.argv],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        self._children.append(child)
        return RunHandle(spec.job_id, self.name, str(attempt), now)

    def poll(self, handles: Sequence[RunHandle], now: datetime) -> list[ExitStatus]:
        self._children = [c for c in self._children if c.poll() is None]  # reap
        ended = []
        for handle in handles:
            status = Path(handle.token) / "status"
            if status.exists():
                ended.append(ExitStatus(handle.job_id, now, int(status.read_text().strip())))
        return ended

    def cancel(self, handle: RunHandle, now: datetime) -> None:
        claim = Path(handle.token) / "claim"
        if claim.exists():
            os.killpg(int(claim.read_text()), signal.SIGTERM)

    def adopt(self, handles: Sequence[RunHandle], now: datetime) -> list[RunHandle | ExitStatus]:
        out: list[RunHandle | ExitStatus] = []
        for handle in handles:
            if handle.token:  # spawned: running, finished, or about to claim
                out.append(handle)
                continue
            started = self._claimed_attempt(handle.job_id)
            if started is None:
                out.append(NotStarted(handle.job_id, now, None, None, "launch interrupted"))
            else:
                out.append(RunHandle(handle.job_id, self.name, str(started), handle.started_at))
        return out

    def _claimed_attempt(self, job_id: str) -> Path | None:
        """The attempt its wrapper claimed; every unclaimed attempt is claimed as abandoned,
        so a wrapper that wakes up late cannot start it."""
        for attempt in sorted((self._log_dir / job_id).glob("a*")):
            claim = attempt / "claim"
            try:
                fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if claim.read_text() != ABANDONED:
                    return attempt
                continue
            os.write(fd, ABANDONED.encode())
            os.close(fd)
        return None


ABANDONED = "abandoned"


def main(state_dir: Path) -> int:
    """Run the service until SIGTERM."""
    regions = (RegionSettings(name="local", zone="CA-QC", executor="proc", gpus=("T4",) * 8),)
    settings = Settings(
        state_dir=state_dir, regions=regions, policy={"name": "run-now"},
        queue={"compact_min_bytes": 4096, "retired_grace_s": 1.0},
    )  # fmt: skip
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    with Ledger.open(state_dir / "ledger.db") as ledger:
        queue = Queue(state_dir, ledger, compact_min_bytes=4096, retired_grace_s=1.0,
                      known_regions=["local"])  # fmt: skip
        executor = ProcessExecutor(state_dir / "logs")
        service = Service(
            settings=settings, ledger=ledger, queue=queue, executors={"proc": executor},
            inventory=build_inventory(regions), intensity=StaticIntensity(),
            policy=get_policy("run-now"),
        )  # fmt: skip
        service.start(datetime.now(UTC))
        (state_dir / "daemon.ready").write_text(str(os.getpid()))
        while not stop:
            service.tick(datetime.now(UTC))
            time.sleep(0.02)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
