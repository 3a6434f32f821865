"""Options shared by sub-commands: ``--config`` and ``--json``, loading the settings, and
opening the ledger read-only."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.errors import UsageError
from daemon.settings import Settings, load_settings
from daemon.statedir import LEDGER_NAME
from policies.footprint import MAX_LIFETIME_YEARS, MIN_LIFETIME_YEARS

if TYPE_CHECKING:
    from daemon.ledger import Ledger
    from policies.footprint import ModelSpec

__all__ = [
    "add_carbon_options",
    "add_common_options",
    "add_ledger_options",
    "add_model_options",
    "carbon_params_from",
    "model_from",
    "number_within",
    "open_ledger",
    "settings_from",
    "zone_pue",
]


def add_common_options(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    """Add ``--config FILE`` and (by default) ``--json`` to ``parser``."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML config (default: $CARBOND_CONFIG or /etc/carbond/carbond.toml if present)",
    )
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def add_ledger_options(parser: argparse.ArgumentParser) -> None:
    """:func:`add_common_options` and ``--state-dir``: for the commands that read the ledger."""
    add_common_options(parser)
    parser.add_argument("--state-dir", type=Path, help="override state_dir")


def settings_from(args: argparse.Namespace) -> Settings:
    """Load the settings for ``args.config``, with ``args.state_dir`` (``--state-dir``, where
    the command has it) over the configured one; raises ``ConfigError`` (exit 2)."""
    config: Path | None = getattr(args, "config", None)
    state_dir: Path | None = getattr(args, "state_dir", None)
    return (
        load_settings(config) if state_dir is None else load_settings(config, state_dir=state_dir)
    )


def open_ledger(state_dir: Path) -> Ledger:
    """The ledger in ``state_dir``, read-only.

    Raises:
        MissingLedgerError: there is none (a wrong --state-dir or state_dir; a UsageError,
            exit 2).
        LedgerError: it cannot be read.
    """
    from daemon.ledger import Ledger  # the commands that need no ledger start without sqlite3
    from daemon.ledger.readonly import missing_ledger_error

    path = state_dir / LEDGER_NAME
    if not path.is_file():
        raise missing_ledger_error(path)
    return Ledger.open_readonly(path)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Add the required ``--model NAME | --params-b B`` choice."""
    from policies.footprint import DEFAULT_MODEL_CATALOG

    model = parser.add_mutually_exclusive_group(required=True)
    names = ", ".join(DEFAULT_MODEL_CATALOG.names()[:6])
    model.add_argument("--model", help=f"catalog model name or alias (e.g. {names}, ...)")
    model.add_argument("--params-b", type=float, help="an unknown model's size in billions")


def model_from(args: argparse.Namespace) -> ModelSpec:
    """The model named by ``--model`` or described by ``--params-b``.

    Raises:
        UnknownModelError, UsageError: exit 2.
    """
    from daemon.cli.workload_flags import flags_named
    from policies.footprint import DEFAULT_MODEL_CATALOG, ModelSpec

    if args.model is not None:
        return DEFAULT_MODEL_CATALOG.get(args.model)
    with flags_named({"params_b": "--params-b"}):  # named as typed, not as ModelSpec's field
        return ModelSpec.from_params(args.params_b)


def add_carbon_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--pue`` and ``--lifetime-years`` (defaults from the settings)."""
    parser.add_argument(
        "--pue",
        type=float,
        default=None,
        help="site PUE (default: the pue of the configured regions in the zone, else "
        "default_pue, 1.0)",
    )
    parser.add_argument(
        "--lifetime-years", type=float, default=None, help="GPU lifetime (default: settings, 5)"
    )


def carbon_params_from(args: argparse.Namespace, settings: Settings) -> tuple[float, float]:
    """``(pue, lifetime_years)`` from the options or the settings.

    Raises:
        UsageError: PUE outside [1, 3] or a lifetime outside [``MIN_LIFETIME_YEARS``,
            ``MAX_LIFETIME_YEARS``] (exit 2).
    """
    pue: float = settings.default_pue if args.pue is None else args.pue
    if not 1.0 <= pue <= 3.0:
        raise UsageError(f"--pue must be between 1.0 and 3.0, got {pue}")
    lifetime: float = (
        settings.lifetime_years if args.lifetime_years is None else args.lifetime_years
    )
    if not MIN_LIFETIME_YEARS <= lifetime <= MAX_LIFETIME_YEARS:
        raise UsageError(
            f"--lifetime-years must be {MIN_LIFETIME_YEARS:g} to {MAX_LIFETIME_YEARS:g}, "
            f"got {lifetime}"
        )
    return pue, lifetime


def zone_pue(settings: Settings, zone: str, default: float, option: str) -> float:
    """The PUE of the configured regions in ``zone`` (upper case, as ``carbond intensity``
    names it), else ``default`` (``default_pue``).

    Raises:
        UsageError: regions in ``zone`` have different PUEs (``--pue`` must choose), naming
            ``option``.
    """
    pues = {r.name: r.pue for r in settings.regions if r.zone.strip().upper() == zone}
    if len(set(pues.values())) > 1:
        listed = ", ".join(f"{name} {pue:g}" for name, pue in pues.items())
        raise UsageError(f"{option} {zone}: its regions have different PUEs ({listed}): give --pue")
    return next(iter(pues.values()), default)


def number_within(low: float, high: float, what: str = "a number") -> Callable[[str], float]:
    """An argparse type: a number from ``low`` to ``high``. NaN, inf and anything that is not
    a number are refused with one line (``'1e9': a number from 0.01 to 720``): an unbounded
    horizon, step or tick is a loop without end."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:  # NaN fails too
            raise argparse.ArgumentTypeError(f"{text!r}: {what} from {low:g} to {high:g}")
        return value

    return parse
