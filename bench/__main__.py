"""Run every ``bench/bench_*.py``, or the names given (``python -m bench sampler planner``).

Options after the names go to each named benchmark that takes any
(``python -m bench replay --policy carbon-window --jobs 10000``).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    split = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    names, options = argv[:split], argv[split:]
    names = names or sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))
    if not names:
        print("no benchmarks yet")
        return 0
    for name in names:
        print(f"== bench_{name}", flush=True)
        run = importlib.import_module(f"bench.bench_{name}").main
        if not options:
            run()
        elif inspect.signature(run).parameters:
            run(options)
        else:
            print(f"bench_{name} takes no options: {' '.join(options)}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
