"""A launch that raises what ``subprocess`` raises for a word no command line can hold
(``ValueError: embedded null byte``) fails that job with the reason recorded; the round, the
other jobs and the next rounds go on."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.executors.base import LaunchSpec, RunHandle
from daemon.settings import RegionSettings
from daemon.testing import RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service

NOW = datetime(2024, 6, 1, tzinfo=UTC)
TWO_T4 = (RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("T4", "T4")),)


class _NulInArgv(RecordingExecutor):
    """Starts job "a" with a NUL in a word of its command line, as a launch whose argv,
    environment or working directory held one would; the other jobs as usual."""

    def launch(self, spec: LaunchSpec, now: datetime) -> RunHandle:
        if spec.job_id == "a":
            subprocess.run(["true", "a\0b"], check=False)  # raises before anything runs
        return super().launch(spec, now)


def test_a_launch_raising_value_error_fails_that_job_and_the_others_start(
    tmp_path: Path,
) -> None:
    """The ValueError escaped the dispatch: the round stopped with "b" not launched (both
    shown running), and every later round stopped the same, so no job started any more."""
    executor = _NulInArgv(auto_finish=False)
    service = make_service(tmp_path, executor, regions=TWO_T4)
    service.start(NOW)
    append(service.queue.path, job_line(id="a") + job_line(id="b"))
    report = service.tick(NOW)
    assert report.started == ("b",)
    assert service.ledger.job("a").state == "failed"
    assert service.ledger.transitions("a")[-1].reason == (
        "launch failed: local cannot start it with what it was given: embedded null byte"
    )
    append(service.queue.path, job_line(id="c"))
    assert service.tick(NOW + timedelta(seconds=60)).started == ("c",)
    assert [spec.job_id for spec in executor.launches] == ["b", "c"]
