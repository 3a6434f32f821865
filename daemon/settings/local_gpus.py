"""Two ``local`` regions that claim one GPU of this node, refused by ``carbond run`` (at start
and on SIGHUP) and failed by ``carbond doctor``'s config line (:func:`daemon.settings.
refuse_shared_local_gpus`).

A region with ``executor = "local"`` runs its jobs on this node, on the GPU at each declared
position's CUDA index (``gpus = "discover"``: every GPU NVML sees). Two such regions that
claim one index (as the example config's ``qc`` and ``ciso`` did, each from index 0) are
planned as two GPUs, while every job of both runs on the one GPU: two jobs at once on it,
each measured and charged as if it had it alone. Regions on ``simulated`` or ``slurm``
executors start no process here and are not concerned.
"""

from __future__ import annotations

from collections.abc import Sequence

from daemon.settings.regions import RegionSettings

__all__ = ["shared_local_gpus"]

_FIX = (
    "each job of either would run on it, two at once, planned and charged as separate GPUs: "
    "give each GPU of this node to one local region (a region elsewhere runs on slurm)"
)


def shared_local_gpus(regions: Sequence[RegionSettings]) -> tuple[int, str] | None:
    """The position in ``regions`` of the second local region and what is wrong (naming every
    shared GPU), else None: every local region claims CUDA index 0 (a declared list starts
    there, ``"discover"`` takes every GPU), so two local regions always share one."""
    local = [(i, r) for i, r in enumerate(regions) if r.executor == "local"]
    if len(local) < 2:
        return None
    second = local[1][0]
    discover = [r.name for _, r in local if r.gpus == "discover"]
    if discover:
        others = [r.name for _, r in local if r.name != discover[0]]
        return second, (
            f"local regions {discover[0]} (discover: every GPU of this node) and "
            f"{', '.join(others)} claim the same GPUs; {_FIX}"
        )
    claims: dict[int, list[str]] = {}
    for _, region in local:
        for index in range(len(region.gpus)):
            claims.setdefault(index, []).append(region.name)
    shared = {index: names for index, names in claims.items() if len(names) > 1}
    listed = "; ".join(f"GPU {index}: {', '.join(names)}" for index, names in shared.items())
    return second, (
        "local regions claim the same GPU of this node (list position = CUDA index): "
        f"{listed}; {_FIX}"
    )
