"""The Slurm executor (:mod:`.executor`) and its pure halves: the commands it runs
(:mod:`.commands`), how their answers read (:mod:`.parse`), Slurm states as carbond's
(:mod:`.states`) and GPUs others hold (:mod:`.capacity`). See docs/slurm.md."""

from __future__ import annotations

from daemon.executors.slurm.commands import Target
from daemon.executors.slurm.executor import SlurmExecutor
from daemon.executors.slurm.runner import CommandResult, Runner, SubprocessRunner

__all__ = ["CommandResult", "Runner", "SlurmExecutor", "SubprocessRunner", "Target"]
