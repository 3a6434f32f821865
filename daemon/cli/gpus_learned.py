"""``carbond gpus --learned``: the recalibration factors learned from measured runs, per
(model, GPU type) and per (model, GPU type, runtime, precision), as a restart of ``carbond run``
would fold them from the ledger now, and which of the two levels an estimate uses.

Read-only and from the ledger alone, so it works while the daemon runs and after it stopped:
the ledger's recalibration checkpoint plus the measured runs since, or every measured run when
the checkpoint cannot be used (:func:`daemon.learning.checkpoint.peek`; nothing is written).
The fold takes ``[recalibration]`` and the regions' GPUs from the settings, as the daemon does:
a region with ``gpus = "discover"`` is discovered the way ``carbond run`` discovers it (NVML or
the simulated backend, Slurm's partition); one that cannot be is named, and runs on GPU types
no region has here are not folded (a restart skips them too). A daemon that reloaded new
thresholds judges ``in_use`` by the same settings file, so pass its ``--config``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from daemon.assemble import build_slurm_executor, gpu_discovery, with_slurm_discovery
from daemon.catalog import gpu_catalog
from daemon.cli.context import open_ledger, settings_from
from daemon.cli.output import print_json, print_table
from daemon.errors import DaemonError
from daemon.inventory import InventoryGpu, build_inventory
from daemon.learning.checkpoint import peek
from daemon.reports.render import counted
from daemon.settings import Settings
from policies.footprint.recalibration import DEFAULT_RECALIBRATION, RecalibrationFactor

__all__ = ["learned_gpus", "learned_payload"]

_COLUMNS = ("model", "gpu", "runtime", "precision", "energy_factor", "duration_factor", "samples",
            "measured_s", "in_use", "uses")  # fmt: skip


def learned_payload(settings: Settings) -> dict[str, Any]:
    """What :func:`learned_gpus` prints with ``--json``: the thresholds (``min_samples``,
    ``min_measured_s``), the measured runs that taught the factors (``runs``: the sum of their
    ``samples``; a run whose measurement is unusable, e.g. 0 J, taught nothing) of the ledger's
    measured outcome rows (``measured_rows``: failed jobs' too, and runs on GPU types no region
    has here or that do not teach their type, :func:`daemon.learning.factors.teaches`, which a
    restart skips as well),
    whether the ledger's checkpoint was used (``from_checkpoint``) or why not
    (``checkpoint_discarded``), the regions whose GPUs could not be discovered
    (``undiscovered``: region -> why), and in ``factors`` one row per (model, GPU type), its
    ``runtime`` and ``precision`` null (every run of the pair taught it), followed by one per
    runtime and precision the pair ran with: ``model, gpu, runtime, precision, energy_factor,
    duration_factor`` (measured ÷ estimated, as learned), ``samples, measured_s``, ``in_use``
    (this row's factors have the evidence to be used) and ``uses``: the level an estimate of
    that key uses now (:meth:`~policies.footprint.recalibration.Recalibration.level`):
    ``fine`` (its own runtime and precision's factors), ``coarse`` (the (model, GPU type)
    factors: the fine ones are not yet in use) or ``none`` (factor 1); a (model, GPU type)
    row says what a runtime and precision it has not learned uses.

    Raises:
        UsageError: no ledger in the state dir.
        LedgerError: it cannot be read.
    """
    wanted = settings.recalibration  # as assemble_service.configure_learning does the Learning's
    config = replace(DEFAULT_RECALIBRATION, min_samples=wanted.min_samples,
                     min_measured_s=wanted.min_measured_s)  # fmt: skip
    # GPUs discovered first (NVML, Slurm's partitions: seconds): the ledger is open only for
    # the read, so a daemon starting meanwhile spoils no read (daemon/ledger/readonly.py).
    inventory, undiscovered = _inventory(settings)
    with open_ledger(settings.state_dir) as ledger:
        folded = peek(ledger, inventory, config)
        rows = ledger.measured_rows_after(None)
    learned = folded.recalibration
    factors = sorted(learned.factors.values(), key=lambda f: (*f.key[:2], not f.coarse, f.key))
    return {
        "min_samples": config.min_samples,
        "min_measured_s": config.min_measured_s,
        "runs": folded.runs,
        "measured_rows": rows,
        "from_checkpoint": folded.from_checkpoint,
        "checkpoint_discarded": folded.discarded,
        "undiscovered": undiscovered,
        "factors": [
            {
                "model": f.model,
                "gpu": f.gpu,
                "runtime": None if f.coarse else f.runtime,
                "precision": None if f.coarse else f.precision,
                "energy_factor": f.energy_factor,
                "duration_factor": f.duration_factor,
                "samples": f.samples,
                "measured_s": f.measured_s,
                "in_use": learned.in_use(*f.key),
                "uses": _uses(learned.level(*f.key)),
            }
            for f in factors
        ],
    }


def _cell(column: str, value: Any) -> Any:
    """A table cell: a (model, GPU type) row's runtime and precision as ``*``, ``in_use`` as
    yes or no."""
    if column in ("runtime", "precision"):
        return value or "*"
    if column == "in_use":
        return "yes" if value else "no"
    return value


def _uses(level: RecalibrationFactor | None) -> str:
    """``fine``, ``coarse`` or ``none``: which factors an estimate uses (``level``)."""
    return "none" if level is None else "coarse" if level.coarse else "fine"


def learned_gpus(args: argparse.Namespace) -> int:
    """Print :func:`learned_payload` (``--json``) or a table with one line of context."""
    payload = learned_payload(settings_from(args))
    if args.json:
        print_json(payload)
        return 0
    for region, why in payload["undiscovered"].items():
        print(f"region {region}: GPUs not discovered ({why}); runs on them are not folded")
    print(f"{payload['runs']} of {payload['measured_rows']} measured rows taught the factors; "
          f"factors in use from {counted(payload['min_samples'], 'sample')} covering "
          f"{payload['min_measured_s']:g} s")  # fmt: skip
    if not payload["factors"]:
        print("nothing learned")
        return 0
    title = "Recalibration factors per (model, GPU type: runtime and precision *) and per runtime"
    rows = [[_cell(c, f[c]) for c in _COLUMNS] for f in payload["factors"]]
    print_table(title, _COLUMNS, rows)
    return 0


def _inventory(settings: Settings) -> tuple[tuple[InventoryGpu, ...], dict[str, str]]:
    """The GPUs ``carbond run`` would start with (``"discover"`` regions discovered as it
    does), and the discovering regions that got none, with why."""
    discovering = [r.name for r in settings.regions if r.gpus == "discover"]
    catalog = gpu_catalog(settings)
    why = "none found here"
    try:
        discover, release = gpu_discovery(settings)
    except DaemonError as e:  # e.g. gpu.backend = "nvml" where NVML cannot start
        discover, release, why = None, None, str(e)
    try:
        slurm = build_slurm_executor(settings)
        discover = with_slurm_discovery(discover, {"slurm": slurm} if slurm else {})
        inventory = build_inventory(settings.regions, catalog, discover)
    finally:
        if release is not None:
            release()
    found = {gpu.device.region for gpu in inventory}
    return inventory, {name: why for name in discovering if name not in found}
