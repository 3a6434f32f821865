"""The GPU names the settings hold (``gpu.simulated_gpus``, each region's declared ``gpus``)
checked against the catalog with the site's own types (``[catalog.gpus.NAME]`` tables the
built-in catalog lacks): a region cannot be checked alone, as the catalog it needs is another
section's. :class:`daemon.settings.Settings` validates ``catalog`` before ``gpu`` and
``regions`` for this."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError, ValidationInfo
from pydantic_core import InitErrorDetails, PydanticCustomError

from daemon.settings.catalog import CatalogSettings
from daemon.settings.regions import RegionSettings, expand_gpu_entries
from daemon.settings.sections import GpuSettings, errors_at

__all__ = ["known_region_gpus", "known_simulated_gpus"]

_Loc = tuple[int | str, ...]
_Problem = tuple[_Loc, str, object]


def known_simulated_gpus(gpu: GpuSettings, info: ValidationInfo) -> GpuSettings:
    """``gpu`` unless a simulated GPU is not in the catalog: a ValidationError at
    ``simulated_gpus`` (a name the catalog did not know passed ``doctor`` and stopped
    ``carbond run``)."""
    if problems := _unknown(info, [(("simulated_gpus",), gpu.simulated_gpus)]):
        raise errors_at(problems)
    return gpu


def known_region_gpus(
    value: Any,
    handler: Callable[[Any], tuple[RegionSettings, ...]],
    info: ValidationInfo,
) -> tuple[RegionSettings, ...]:
    """The regions ``handler`` validates, unless one declares a GPU the catalog does not
    know: a ValidationError at its ``gpus``, beside the other regions' problems (a file with
    several is refused with each at once, as every other field's)."""
    try:
        regions = handler(value)
    except ValidationError as exc:
        failed = {tuple(err["loc"][:2]) for err in exc.errors()}
        extra = [p for p in _unknown(info, _raw_declared(value)) if p[0] not in failed]
        if not extra:
            raise
        again = [_details(err) for err in exc.errors()]
        again += [_details(err) for err in errors_at(extra).errors()]
        raise ValidationError.from_exception_data(exc.title, again) from None
    declared = [((i, "gpus"), r.gpus) for i, r in enumerate(regions) if r.gpus != "discover"]
    if problems := _unknown(info, declared):
        raise errors_at(problems)
    return regions


def _details(err: Any) -> InitErrorDetails:
    """``err`` (one of ``ValidationError.errors()``) to raise again: a value error (ours or
    a ValueError's, whose context pydantic will not take back) as its message."""
    if err["type"] == "value_error":
        message = str(err["msg"]).removeprefix("Value error, ")
        kind = PydanticCustomError("value_error", "{message}", {"message": message})
        return InitErrorDetails(type=kind, loc=err["loc"], input=err["input"])
    details = InitErrorDetails(type=err["type"], loc=err["loc"], input=err["input"])
    if "ctx" in err:
        details["ctx"] = err["ctx"]
    return details


def _raw_declared(value: Any) -> list[tuple[_Loc, Sequence[str]]]:
    """The declared GPU names of each region of an unvalidated ``regions`` value, where they
    are a list of names (and ``{type, count}`` tables) as they should be."""
    declared: list[tuple[_Loc, Sequence[str]]] = []
    for i, entry in enumerate(value if isinstance(value, list | tuple) else ()):
        gpus = entry.gpus if isinstance(entry, RegionSettings) else (
            entry.get("gpus") if isinstance(entry, dict) else None)  # fmt: skip
        if not isinstance(gpus, list | tuple):
            continue
        try:
            names = expand_gpu_entries(gpus)
        except ValueError:  # its own problem, said by the region's validation
            continue
        if all(isinstance(name, str) for name in names):
            declared.append(((i, "gpus"), names))
    return declared


def _unknown(info: ValidationInfo, named: Sequence[tuple[_Loc, Sequence[str]]]) -> list[_Problem]:
    """A problem at each ``loc`` whose names hold one the catalog of the settings'
    ``[catalog]`` (validated before: the field order) does not know; none without a valid
    ``[catalog]`` (its own problem is said)."""
    section = info.data.get("catalog")
    if not isinstance(section, CatalogSettings):
        return []
    try:
        catalog = section.gpu_catalog()
    except (LookupError, TypeError, ValueError):  # each field was checked: said there
        return []
    problems: list[_Problem] = []
    for loc, names in named:
        try:
            for name in names:
                catalog.get(name)
        except LookupError as exc:  # UnknownGpuError: its message names the known ones
            problems.append((loc, str(exc), list(names)))
    return problems
