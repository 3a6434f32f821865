"""carbond's benchmarks.

Each ``bench/bench_*.py`` has a ``main() -> None`` that prints a ratio or a throughput;
``make bench`` (``python -m bench``) runs them all. Results go to ``bench/RESULTS.md``.
"""
