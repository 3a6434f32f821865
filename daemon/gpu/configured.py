"""The configured GPUs against what NVML sees: ``carbond doctor``'s ``nvml`` line.

The line describes the GPUs the regions name, not the backend's own defaults: regions that
declare their GPUs (checked against NVML's devices, index by index, when they run locally and
NVML is in use), regions that discover them (what NVML finds, or the simulated stand-ins of
``gpu.simulated_gpus`` the daemon falls back to, named as such), and whether local GPUs will
be metered or their grams estimated. A GPU in MIG mode is named as not schedulable by carbond
(:func:`daemon.gpu.factory.schedulable`): a discovering region does not get it, and a local
region that declares it fails the line. A declared GPU is judged as the daemon judges it
(:func:`daemon.gpu.declared.check_declared`): what the daemon keeps out of planning fails the
line; a board the catalog lacks, which the daemon plans on as the declared type, is a note.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from daemon.gpu.backend import GpuDevice
from daemon.gpu.declared import MismatchKind, check_declared, define_board_hint
from daemon.gpu.errors import NvmlUnavailableError
from daemon.gpu.nvml import NvmlBackend
from daemon.settings import RegionSettings, Settings
from policies.footprint import GpuCatalog

__all__ = ["describe_configured_gpus"]

Status = Literal["pass", "fail", "skip"]

_MIG = " (MIG mode: not schedulable by carbond)"  # daemon.gpu.factory.MIG_NOT_SCHEDULABLE


def describe_configured_gpus(
    settings: Settings, catalog: GpuCatalog, nvml_module: Any | None = None
) -> tuple[Status, str]:
    """``(status, detail)`` for the regions' GPUs; ``fail`` when ``gpu.backend = "nvml"`` and
    NVML cannot be used, a local region declares a GPU NVML does not have at that index (or
    has as another catalog GPU, or in MIG mode), or a region that discovers its GPUs would
    find none (no GPU seen, every GPU in MIG mode, no simulated stand-in). A declared board
    the catalog lacks is a note.

    ``nvml_module`` stands in for ``pynvml`` (tests).
    """
    declared = [r for r in settings.regions if r.gpus != "discover"]
    # a Slurm region discovers its GPUs from its partition (the slurm line), never from NVML
    discovering = [r for r in settings.regions if r.gpus == "discover" and r.executor != "slurm"]
    local = [r for r in declared if r.executor == "local"]
    described = "; ".join(_declared(r) for r in declared) or "no declared GPU"
    stand_ins = ", ".join(settings.gpu.simulated_gpus)
    if settings.gpu.backend == "simulated":
        if discovering and not stand_ins:
            return "fail", f"gpu.backend simulated: {described}; {_none_found(discovering)}"
        found = f"; {_names(discovering)} discover simulated {stand_ins}" if discovering else ""
        return "pass", f"gpu.backend simulated: {described}{found}; local GPUs not metered"
    if not local and not discovering:
        return "skip", f"NVML not needed: {described}"
    return _against_nvml(settings, catalog, nvml_module, described, discovering, local)


def _against_nvml(
    settings: Settings,
    catalog: GpuCatalog,
    nvml_module: Any | None,
    described: str,
    discovering: Sequence[RegionSettings],
    local: Sequence[RegionSettings],
) -> tuple[Status, str]:
    """The line of ``gpu.backend`` ``auto`` or ``nvml``, from what NVML sees (or why not)."""
    stand_ins = ", ".join(settings.gpu.simulated_gpus)
    nvml = NvmlBackend(nvml_module)
    try:
        nvml.start()
    except NvmlUnavailableError as exc:
        if settings.gpu.backend == "nvml":
            return "fail", f"gpu.backend nvml but NVML is unusable: {exc}"
        if discovering and not stand_ins:
            return "fail", f"NVML unavailable ({exc}); {described}; {_none_found(discovering)}"
        return "pass", _without_nvml(str(exc), described, discovering, local, stand_ins)
    try:
        devices = nvml.devices()
    finally:
        nvml.close()
    seen = ", ".join(f"{d.index}: {d.name}{_MIG * bool(d.mig_enabled)}" for d in devices)
    judged = [_mismatches(r, devices, catalog) for r in local]
    problems = [p for found, _ in judged for p in found]
    notes = [f"note: {n}" for _, found in judged for n in found]
    if problems:
        return "fail", "; ".join([f"NVML sees {seen or 'no GPU'}", *problems, *notes])
    parts = [f"NVML sees {seen or 'no GPU'}", described + (" (metered by NVML)" if local else "")]
    usable = ", ".join(f"{d.index}: {d.name}" for d in devices if not d.mig_enabled)
    if discovering and not usable:
        # the daemon falls back to the stand-ins only under "auto", only to those listed, and
        # only where NVML sees no GPU at all (GPUs in MIG mode are NVML's, and not scheduled)
        nvml_only = "gpu.backend nvml" if settings.gpu.backend == "nvml" else None
        why = "every GPU in MIG mode" if devices else nvml_only
        if why is not None or not stand_ins:
            return "fail", "; ".join([*parts, _none_found(discovering, why), *notes])
    if discovering:
        found = usable or f"nothing, so simulated {stand_ins}"
        parts.append(f"{_names(discovering)} discover {found}")
    return "pass", "; ".join([*parts, *notes])


def _none_found(discovering: Sequence[RegionSettings], why: str | None = None) -> str:
    """Why the ``discovering`` regions get no GPU: the daemon starts them without any
    (``region_without_gpus``) and rejects every job that may only run there."""
    why = why or "gpu.simulated_gpus is empty"
    return (
        f"{_names(discovering)} discover no GPU ({why}: no simulated stand-ins): the daemon "
        "starts them without GPUs and rejects the jobs that may only run there"
    )


def _without_nvml(
    why: str,
    described: str,
    discovering: Sequence[RegionSettings],
    local: Sequence[RegionSettings],
    stand_ins: str,
) -> str:
    parts = [f"NVML unavailable ({why})", described]
    if local:
        parts.append(f"{_names(local)}: not metered, grams estimated")
    if discovering:
        parts.append(f"{_names(discovering)} discover simulated {stand_ins} (gpu.simulated_gpus)")
    return "; ".join(parts)


def _declared(region: RegionSettings) -> str:
    counts = Counter(region.gpus)
    gpus = ", ".join(f"{n}x {name}" for name, n in counts.items())
    return f"{region.name}: {gpus} ({region.executor})"


def _names(regions: Sequence[RegionSettings]) -> str:
    return ", ".join(r.name for r in regions)


def _mismatches(
    region: RegionSettings, devices: Sequence[GpuDevice], catalog: GpuCatalog
) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` of a local region's declared GPUs against NVML
    (:func:`daemon.gpu.declared.check_declared`, as the daemon judges them): a GPU NVML has
    not at its CUDA index, has as another catalog GPU or in MIG mode is a problem; a board the
    catalog lacks is a note (the daemon plans on it as the declared type)."""
    problems, notes = [], []
    for index, name in enumerate(region.gpus):
        mismatch = check_declared(index, name, devices, catalog)
        if mismatch is None:
            continue
        said = f"{region.name} declares {name} at index {index}"
        board = mismatch.device.name if mismatch.device is not None else ""
        if mismatch.kind is MismatchKind.ABSENT:
            problems.append(f"{said}, NVML has none")
        elif mismatch.kind is MismatchKind.OTHER_TYPE:
            problems.append(f"{said}, NVML has {board}")
        elif mismatch.kind is MismatchKind.MIG:
            problems.append(f"{said}, which is in MIG mode: carbond cannot run jobs on it")
        else:
            notes.append(f"{said}, NVML has {board}, a board the catalog lacks: "
                         + define_board_hint(mismatch))  # fmt: skip
    return problems, notes
