"""A job whose command line, environment or working directory holds a NUL is not runnable,
said at its launch by the real local executor (no process can be given a NUL)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from daemon.executors.errors import JobNotRunnableError
from daemon.executors.local import LocalExecutor
from tests.daemon.executors.local_jobs import NOW, job_spec, wait_ended


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("command line", {"argv": ("printf", "a\0b")}),
        ("environment", {"env": {"CARBOND_NOTE": "a\0b"}}),
        ("working directory", {"cwd": "/tmp\0/x"}),
    ],
)
def test_a_nul_makes_the_job_not_runnable_at_its_launch(
    tmp_path: Path, where: str, change: dict[str, object]
) -> None:
    """The wrapper was started with it and died on ``Popen``'s ``ValueError: embedded null
    byte`` (a traceback in the job's .err, the job failed as "the job's wrapper ended without
    recording a status"); a NUL in the working directory raised that ValueError out of the
    launch itself. Refused at the launch, the job fails as not runnable, saying where."""
    executor = LocalExecutor(log_dir=tmp_path / "logs")
    spec = replace(job_spec(tmp_path, "job-n", "true"), **change)  # type: ignore[arg-type]
    with pytest.raises(JobNotRunnableError, match=f"job job-n: its {where} holds a NUL"):
        executor.launch(spec, NOW)
    handle = executor.launch(job_spec(tmp_path, "job-n", "true"), NOW)  # without: it runs
    assert wait_ended(executor, handle).exit_code == 0


def test_an_id_with_a_final_newline_is_no_file_name_for_the_executor(tmp_path: Path) -> None:
    """``re.match``'s ``$`` also matches before a final newline: ``job-n\\n`` passed the
    executor's file-name check (its logs would be ``job-n\\n.out``)."""
    executor = LocalExecutor(log_dir=tmp_path / "logs")
    with pytest.raises(JobNotRunnableError, match="id unusable as a file name"):
        executor.launch(job_spec(tmp_path, "job-n\n", "true"), NOW)
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())
