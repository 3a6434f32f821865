"""CPU time inside named functions during a :mod:`bench.bench_replay` run, without a profiler.

:mod:`bench.policy_parts` and :mod:`bench.recording_cost` name the functions; each is wrapped
for the run only (``time.process_time()`` around each call: cProfile's per-call cost
overstates Python-heavy code), so the decisions and the ledger are the run's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from bench import bench_replay

__all__ = ["Part", "time_parts"]

Part = tuple[Any, str, str]  # (module or class, attribute, label)


def time_parts(parts: Sequence[Part], argv: list[str] | None = None) -> dict[str, float]:
    """Run ``bench_replay.main(argv)`` with every part timed; print and return the CPU
    seconds inside each (nested parts count in their callers too)."""
    spent = dict.fromkeys((label for _, _, label in parts), 0.0)

    def timed(f: Callable[..., Any], label: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return f(*args, **kwargs)
            finally:
                spent[label] += time.process_time() - t0

        return call

    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in parts]
    try:
        for (owner, name, label), (_, _, f) in zip(parts, originals, strict=True):
            setattr(owner, name, timed(f, label))
        bench_replay.main(argv)
    finally:
        for owner, name, f in originals:
            setattr(owner, name, f)
    print(", ".join(f"{label} {s:.2f} s" for label, s in spent.items()))
    return spent
