"""``carbond doctor``'s ``gpus`` line: local regions that claim one GPU of this node.

A region with ``executor = "local"`` runs its jobs on this node, on the GPU at each declared
position's CUDA index (``gpus = "discover"``: every GPU NVML sees). Two such regions that
claim one index (as the example config's ``qc`` and ``ciso`` did, each from index 0) are
planned as two GPUs, while every job of both runs on the one GPU: two jobs at once on it,
each measured and charged as if it had it alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from daemon.settings import RegionSettings

__all__ = ["shared_local_gpus"]

_FIX = (
    "each job of either would run on it, two at once, planned and charged as separate GPUs: "
    "give each GPU of this node to one local region (a region elsewhere runs on slurm)"
)


def shared_local_gpus(regions: Sequence[RegionSettings]) -> str | None:
    """What is wrong when two ``local`` regions claim one GPU of this node, else None."""
    local = [r for r in regions if r.executor == "local"]
    discover = [r.name for r in local if r.gpus == "discover"]
    claims: dict[int, list[str]] = {}
    for region in local:
        if region.gpus != "discover":
            for index in range(len(region.gpus)):
                claims.setdefault(index, []).append(region.name)
    if discover and len(local) > 1:  # discover takes every GPU of the node
        others = [r.name for r in local if r.name != discover[0]]
        return (
            f"local regions {discover[0]} (discover: every GPU of this node) and "
            f"{', '.join(others)} claim the same GPUs; {_FIX}"
        )
    shared = {index: names for index, names in claims.items() if len(names) > 1}
    if not shared:
        return None
    listed = "; ".join(f"GPU {index}: {', '.join(names)}" for index, names in shared.items())
    return (
        "local regions claim the same GPU of this node (list position = CUDA index): "
        f"{listed}; {_FIX}"
    )
