"""Options shared by sub-commands: ``--config`` and ``--json``, and loading the settings."""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon.settings import Settings, load_settings

__all__ = ["add_common_options", "settings_from"]


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
        parser.add_argument("--json", action="store_true", help="print JSON, not a table")


def settings_from(args: argparse.Namespace) -> Settings:
    """Load the settings for ``args.config``; raises ``ConfigError`` (exit 2)."""
    config: Path | None = getattr(args, "config", None)
    return load_settings(config)
