"""What a Slurm job is submitted as, from its :class:`~daemon.executors.base.LaunchSpec`:
whether it may be submitted at all (:func:`check`), how many GPUs it asks for
(:func:`gpus`), and the node and GRES type of its planned GPUs (:func:`node`,
:func:`gres_type`) from its region's :class:`~daemon.executors.slurm.capacity.Layout`."""

from __future__ import annotations

import os
import pwd
from collections.abc import Collection

from daemon.executors.base import LaunchSpec
from daemon.executors.errors import JobNotRunnableError, LaunchRefusedError
from daemon.executors.slurm.capacity import Layout
from daemon.executors.slurm.owners import refuse_root

__all__ = ["check", "gpus", "gres_type", "node"]


def check(spec: LaunchSpec, regions: Collection[str], allow_root: bool) -> None:
    """Refuse ``spec`` before ``sbatch`` where it cannot or may not run.

    Raises:
        JobNotRunnableError: an empty command.
        LaunchRefusedError: a region not in ``regions``, a root job when not
            ``allow_root``, another user's job while the daemon is not root, or an owner with
            no passwd entry.
    """
    if not spec.argv:
        raise JobNotRunnableError(f"job {spec.job_id}: empty command")
    if spec.region not in regions:
        raise LaunchRefusedError(f"job {spec.job_id}: region {spec.region!r} is no Slurm region")
    refuse_root(spec.job_id, spec.uid, allow_root)
    euid = os.geteuid()
    if euid not in (0, spec.uid):
        raise LaunchRefusedError(
            f"job {spec.job_id}: submitted by uid {spec.uid} but the daemon runs as uid "
            f"{euid} and is not root; it cannot submit jobs as another user"
        )
    try:
        pwd.getpwuid(spec.uid)
    except KeyError:  # sbatch takes it; slurmctld then requeues it every 2 min, for ever
        raise LaunchRefusedError(
            f"job {spec.job_id}: its owner, uid {spec.uid}, has no user on this host (no "
            "passwd entry): Slurm would accept its sbatch but never start it (slurmctld "
            "cannot give it credentials and requeues it), so it is not submitted"
        ) from None


def node(layout: Layout | None, spec: LaunchSpec) -> str | None:
    """The node of the planned GPUs, when they are all on one known node."""
    if layout is None:
        return None
    nodes = {layout.node_of(device_id) for device_id in spec.device_ids}
    return nodes.pop() if len(nodes) == 1 and None not in nodes else None


def gres_type(layout: Layout | None, spec: LaunchSpec) -> str:
    """The GRES type of the planned GPUs, when they all have the same one (else empty: any
    type)."""
    if layout is None:
        return ""
    types = {layout.type_of(device_id) for device_id in spec.device_ids}
    return types.pop() if len(types) == 1 else ""


def gpus(spec: LaunchSpec) -> int:
    """How many GPUs the job asks Slurm for."""
    return max(1, len(spec.device_ids) or len(spec.gpu_indices))
