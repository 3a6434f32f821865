"""The command line a replay test gives ``carbond replay`` or ``carbond tune`` for its input
files (``input_options``), as :func:`tests.daemon.replay.conftest.replay_inputs` gives the
driver."""

from __future__ import annotations

from pathlib import Path


def input_options(trace: Path, cluster_file: Path, intensity_files: list[Path]) -> list[str]:
    """The command line's input options: the Azure trace, the cluster and the intensity files,
    from 2023-06-05."""
    argv = ["--jobs", str(trace), "--jobs-format", "azure", "--cluster", str(cluster_file),
            "--start", "2023-06-05"]  # fmt: skip
    for path in intensity_files:
        argv += ["--intensity", str(path)]
    return argv
