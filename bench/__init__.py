"""carbond's benchmarks.

Each ``bench/bench_*.py`` has a ``main() -> None`` that prints a ratio or a throughput;
``make bench`` (``python -m bench``) runs them all. Results go to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

__all__ = ["REPO_ROOT", "shared_data_dir"]

REPO_ROOT: Final = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The third-party data folder: ``$CARBOND_SHARED_DATA`` or ``../shared/data``."""
    return Path(os.environ.get("CARBOND_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
