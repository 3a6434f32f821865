"""The recalibration checkpoint while the service runs: moved on from its reconcile step once
enough measured runs are past it (:mod:`daemon.learning.checkpoint`, whose :func:`restore` the
service's start calls)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from daemon.inventory import InventoryGpu
from daemon.learning.checkpoint import FoldInputs, advance, checkpoint_due
from daemon.ledger import Ledger, LedgerError
from policies.footprint.recalibration import RecalibrationConfig

__all__ = ["LearningCheckpoint"]

log = structlog.get_logger(__name__)


class LearningCheckpoint:
    """Moves the ledger's recalibration checkpoint on, keeping the checkpoint's inputs as of the
    config and inventory objects they were computed for (both are replaced, never changed, on
    a reload)."""

    def __init__(self) -> None:
        self._inputs: tuple[RecalibrationConfig, object, FoldInputs] | None = None

    def after_ends(
        self,
        ledger: Ledger,
        config: RecalibrationConfig,
        inventory: Sequence[InventoryGpu],
        now: datetime,
        every: int,
    ) -> None:
        """Move the checkpoint on once ``every`` measured runs are past it (or its inputs
        changed: a reload), folding at most that many runs from the ledger
        (:func:`daemon.learning.checkpoint.advance`): a restart then folds at most about that
        many. The live factors are not touched; a failed write is logged
        (``recalibration_checkpoint_failed``) and rolled back."""
        kept = self._inputs
        if kept is None or kept[0] is not config or kept[1] is not inventory:
            kept = self._inputs = (config, inventory, FoldInputs.of(config, inventory))
        inputs = kept[2]
        try:
            if checkpoint_due(ledger, inputs, every):
                advance(ledger, inventory, config, now, limit=every, inputs=inputs)
        except LedgerError as e:  # rolled back: the next start folds a longer tail
            log.warning("recalibration_checkpoint_failed", error=str(e))
