"""A small real daemon for the end-to-end test: ``python -m tests.daemon.e2e_daemon STATE_DIR``.

It builds the real :class:`daemon.service.Service` (queue, ledger, run-now policy, eight
declared T4s) with the real :class:`daemon.executors.local.LocalExecutor` (whose wrapper
claims each start with ``O_EXCL`` and records the exit status, so a job never starts twice and
its outcome survives the daemon) and calls ``tick`` with the wall clock until SIGTERM.
(``carbond run`` replaces this once it exists: it adds the APScheduler loop, systemd notify
and metrics around the same Service.)
"""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from daemon.compose import build_service
from daemon.executors.local import LocalExecutor
from daemon.intensity import StaticIntensity
from daemon.ledger import Ledger
from daemon.settings import RegionSettings, Settings


def main(state_dir: Path) -> int:
    """Run the service until SIGTERM."""
    regions = (RegionSettings(name="local", zone="CA-QC", executor="local", gpus=("T4",) * 8),)
    settings = Settings(
        state_dir=state_dir, regions=regions, policy={"name": "run-now"},
        queue={"compact_min_bytes": 4096, "retired_grace_s": 1.0},
    )  # fmt: skip
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    with Ledger.open(state_dir / "ledger.db") as ledger:
        executor = LocalExecutor(log_dir=state_dir / "logs", grace_s=5.0)
        service = build_service(settings, ledger, {"local": executor}, intensity=StaticIntensity())
        service.start(datetime.now(UTC))
        (state_dir / "daemon.ready").write_text(str(os.getpid()))
        while not stop:
            service.tick(datetime.now(UTC))
            time.sleep(0.02)
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
