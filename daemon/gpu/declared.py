"""One declared local GPU against the board NVML has at its CUDA index: the one judgement that
``carbond doctor``'s ``nvml`` line (:mod:`daemon.gpu.configured`) and the daemon at start and
reload (:func:`daemon.measurement.start.declared_unusable`) both phrase, each in its own words.

The kinds, in the order they are judged (the first that applies is the one reported):

- ``ABSENT``: NVML has no GPU at the index (never there, or lost or unpowered before this
  start: NVML skips it at discovery);
- ``OTHER_TYPE``: NVML has there a board the catalog knows as another GPU (the planner would fit
  and price jobs on the declared one, and its metered runs would teach that one's factors);
- ``MIG``: the board is in MIG mode (its index in ``CUDA_VISIBLE_DEVICES`` reaches no MIG
  instance, :data:`daemon.gpu.factory.MIG_NOT_SCHEDULABLE`);
- ``UNKNOWN_BOARD``: a board the catalog has no entry for (``NVIDIA H100 NVL`` where ``H100-SXM``
  is declared). Not refused: an operator may declare a close type on purpose, and the daemon
  plans on the declared type's figures; both sides say so and name the fix, a
  ``[catalog.gpus.NAME]`` table with ``nvml_names`` (docs/gpus.md, "A GPU the catalog lacks").
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from daemon.gpu.backend import GpuDevice
from policies.errors import UnknownGpuError
from policies.footprint.gpus import GpuCatalog

__all__ = ["DeclaredMismatch", "MismatchKind", "check_declared", "define_board_hint"]


class MismatchKind(enum.Enum):
    """How the board at a declared GPU's index differs from the declaration."""

    ABSENT = "absent"
    OTHER_TYPE = "other-type"
    MIG = "mig"
    UNKNOWN_BOARD = "unknown-board"

    @property
    def refused(self) -> bool:
        """Whether carbond runs no job on the GPU (doctor fails it, the daemon keeps it out of
        planning); only ``UNKNOWN_BOARD`` is planned on, as the declared type."""
        return self is not MismatchKind.UNKNOWN_BOARD


@dataclass(frozen=True, slots=True)
class DeclaredMismatch:
    """A declared GPU (``declared``, the catalog's name; ``index``, its CUDA index) that NVML's
    ``device`` (None for ``ABSENT``) does not simply match; ``seen_type`` is the catalog's name
    of the board (``OTHER_TYPE`` and ``MIG``; None for an absent or unknown board)."""

    kind: MismatchKind
    index: int
    declared: str
    device: GpuDevice | None
    seen_type: str | None


def check_declared(
    index: int, declared: str, devices: Sequence[GpuDevice], catalog: GpuCatalog
) -> DeclaredMismatch | None:
    """How the GPU NVML has at ``index`` (among ``devices``) differs from catalog GPU
    ``declared`` (a name or alias), or None when it is that GPU and schedulable.

    Raises:
        UnknownGpuError: ``declared`` is not in ``catalog`` (settings validation refuses it).
    """
    wanted = catalog.get(declared).name
    device = next((d for d in devices if d.index == index), None)
    if device is None:
        return DeclaredMismatch(MismatchKind.ABSENT, index, wanted, None, None)
    try:
        seen: str | None = catalog.get(device.name).name
    except UnknownGpuError:
        seen = None
    if seen is not None and seen != wanted:
        kind = MismatchKind.OTHER_TYPE
    elif device.mig_enabled:
        kind = MismatchKind.MIG
    elif seen is None:
        kind = MismatchKind.UNKNOWN_BOARD
    else:
        return None
    return DeclaredMismatch(kind, index, wanted, device, seen)


def define_board_hint(mismatch: DeclaredMismatch) -> str:
    """What an operator does about an ``UNKNOWN_BOARD``: define the board, or name it an alias
    of the declared type if its figures are the board's (shared by doctor and the daemon)."""
    board = mismatch.device.name if mismatch.device is not None else "?"
    return (
        f"planned on as {mismatch.declared} (its power, memory and rates); to price it as "
        f'itself define it, [catalog.gpus.NAME] with nvml_names = ["{board}"], or add that '
        f"nvml_names to [catalog.gpus.{mismatch.declared}] if it is one (docs/gpus.md)"
    )
