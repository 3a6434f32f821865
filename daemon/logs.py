"""structlog configuration: called once, by the entry point.

JSON lines on stdout when not on a TTY (journald under systemd), coloured console on a TTY.
Stdlib loggers (APScheduler, urllib3) are routed through the same processors. Event names are
stable snake_case; values are fields, never formatted into the message.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "dropped"]


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in stubs
    """Writes to whatever ``sys.stderr`` is at each record (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        """The stream is always the current ``sys.stderr``; assignments are ignored."""


class _LevelCheckedLogger(structlog.stdlib.BoundLogger):
    """A stdlib bound logger that drops ``debug`` and ``info`` events before running the
    processors when the stdlib logger would drop them anyway (its level, which SIGHUP may
    change, filters them at the end of the chain): a replay logs several events per job and
    formatted every one of them, timestamp included, only for the level to discard it.

    Only when the chain ends in the stdlib logger: a chain swapped in by
    ``structlog.testing.capture_logs`` sees every event, as before.
    """

    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if self._dropped(logging.DEBUG):
            return None
        return super().debug(event, *args, **kw)

    def info(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if self._dropped(logging.INFO):
            return None
        return super().info(event, *args, **kw)

    def _dropped(self, level: int) -> bool:
        processors = tuple(self._processors)
        return (
            bool(processors)
            and processors[-1] is structlog.stdlib.ProcessorFormatter.wrap_for_formatter
            and not self._logger.isEnabledFor(level)
        )


def dropped(name: str, level: int) -> bool:
    """Whether an event at ``level`` from ``structlog.get_logger(name)`` would be dropped
    as structlog is configured now, asked without binding a logger (structlog's lazy proxy
    binds one on every call; the per-job events of a replay paid that only to be dropped).
    The same test as :class:`_LevelCheckedLogger`'s, read at each call: a reconfiguration
    (SIGHUP, ``structlog.testing.capture_logs``) is seen at once."""
    config = structlog.get_config()
    processors = config["processors"]
    return (
        isinstance(config["wrapper_class"], type)
        and issubclass(config["wrapper_class"], _LevelCheckedLogger)
        and isinstance(config["logger_factory"], structlog.stdlib.LoggerFactory)
        and bool(processors)
        and processors[-1] is structlog.stdlib.ProcessorFormatter.wrap_for_formatter
        and not logging.getLogger(name).isEnabledFor(level)
    )


def configure_logging(*, level: str = "INFO", json: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger.

    Args:
        level: minimum level name (``DEBUG``, ``INFO``, ...).
        json: force JSON (True) or console (False) output; default: JSON unless stderr is a TTY.
    """
    use_json = (not sys.stderr.isatty()) if json is None else json
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=_LevelCheckedLogger,
        # Not cached: a CLI process configures once anyway, and caching would pin loggers made
        # before a reconfiguration (SIGHUP log-level change, structlog.testing.capture_logs).
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _StderrHandler)]
    root.addHandler(handler)
    root.setLevel(level.upper())
