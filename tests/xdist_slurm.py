"""``make test``'s scheduler: xdist's ``--dist loadgroup`` with every test under ``tests/slurm/``
in one work unit, so those tests (which share one local Slurm cluster, reset before and after
each) run one at a time on one worker while the other workers take the rest.

xdist's own grouping, by an ``xdist_group`` mark, renames each marked test's node id in the
worker (``item._nodeid``); pytest 9.2 keeps node ids elsewhere, so the rename is lost and such
tests are spread over the workers like any other. The scheduler, which sees only node ids,
groups these by where they live instead, and tests/conftest.py refuses a test on the cluster
that lives elsewhere. As the largest unit, xdist hands it out first (its default
``--loadscope-reorder``), so the Slurm tests' waiting overlaps the CPU-bound tests.

Imported only where xdist runs (``pytest_xdist_make_scheduler``).
"""

from __future__ import annotations

from xdist.scheduler import LoadGroupScheduling

SLURM_GROUP = "slurm"
SLURM_NODEIDS = "tests/slurm/"  # node ids are relative to the rootdir, where pyproject.toml is


class SlurmGroupScheduling(LoadGroupScheduling):
    """LoadGroupScheduling, with the tests under ``tests/slurm/`` as the group ``slurm``."""

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith(SLURM_NODEIDS):
            return SLURM_GROUP
        return str(super()._split_scope(nodeid))
