"""What the log says while Slurm's controller does not answer (the service over a fake Slurm,
ten minutes of rounds every 15 s): each failure once per outage, not at each retry."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from tests.daemon.executors.fake_slurm import T0, FakeSlurm
from tests.daemon.executors.slurm_daemon import Dip, slurm_daemon


def _outage_logs(tmp_path: Path, *, outages: int = 1) -> list[dict[str, Any]]:
    """The warnings and errors of ``outages`` ten-minute outages (Slurm back for three minutes
    after each), with a job running in Slurm and one planned there for later."""
    slurm, forecast = FakeSlurm(), Dip(T0 + timedelta(hours=2))
    daemon = slurm_daemon(tmp_path, slurm, forecast)
    service = daemon.service
    line = {"id": "now", "model": "llama-1b", "requests": 4, "command": ["true"]}
    later = {**line, "id": "later", "deadline": (T0 + timedelta(hours=5)).isoformat()}
    (tmp_path / "queue.jsonl").write_text(json.dumps(later) + "\n" + json.dumps(line) + "\n")
    service.start(T0)
    service.tick(T0)
    assert {daemon.ledger.job(j).state for j in ("now", "later")} == {"running", "planned"}
    at = T0
    with capture_logs() as logs:
        for _ in range(outages):
            slurm.stopped = True
            for _ in range(40):
                at += timedelta(seconds=15)
                service.tick(at)
                service.after_step("reconcile", None, at)  # what the loop does
            slurm.stopped = False
            for _ in range(12):
                at += timedelta(seconds=15)
                service.tick(at)
    daemon.close()
    return [e for e in logs if e["log_level"] in ("warning", "error")]


def test_a_slurm_outage_logs_each_failure_once_not_at_each_retry(tmp_path: Path) -> None:
    """A command not run during an outage said when Slurm would be asked again ('asked again
    20 s after the last try'), so its message changed at each retry (10, 20, 40, 80, 120 s)
    and the failures logged once per job and message (held_watch_failed, job_withdraw_failed,
    job_hold_failed, job_release_failed) were logged again at each: five or six times an
    outage; and slurm_unreachable (a planning round's capacity check) every round, 40 times
    in ten minutes. Each is logged once per outage now, again in the next outage."""
    logs = _outage_logs(tmp_path, outages=2)

    counts = Counter(e["event"] for e in logs if e["event"] != "executor_poll_failed")
    assert [counts[e] for e in ("slurm_controller_down", "slurm_unreachable",
                                "held_watch_failed")] == [2, 2, 2]  # fmt: skip
    assert counts["job_withdraw_failed"] in (1, 2) and max(counts.values()) == 2
    said = {e["error"] for e in logs if e["event"] == "held_watch_failed"}
    assert said == {"Slurm unreachable (squeue: slurm_load_jobs error: Unable to contact "
                    "slurm controller (connect failure))"}  # fmt: skip


def test_a_slurm_outage_logs_the_failing_poll_once_not_every_reconcile(tmp_path: Path) -> None:
    """executor_poll_failed was logged at every reconcile while Slurm did not answer (every
    5 s live: 80 times in these ten minutes of 15 s rounds, each ticking and reconciling);
    it is logged once per executor and error now, again after a poll that answered."""
    logs = _outage_logs(tmp_path, outages=2)

    failed = [e for e in logs if e["event"] == "executor_poll_failed"]
    assert [e["executor"] for e in failed] == ["slurm", "slurm"]
