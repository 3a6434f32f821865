"""Everything that touches the world: settings, queue, ledger, executors, service, CLI."""

import os

# NumPy and SciPy each load their own OpenBLAS, which at import starts a thread for every
# further core, and each such thread spins ~0.1 s waiting for work before it sleeps: ~0.2 s
# of CPU for every `carbond` command on a 2-core machine (docs/operations.md), more on a head
# node's many cores, for the small matrices carbond multiplies. One thread unless the operator
# sets OPENBLAS_NUM_THREADS. Set here, before any module of ``daemon`` imports NumPy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
