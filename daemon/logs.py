"""structlog configuration: called once, by the entry point.

JSON lines on stdout when not on a TTY (journald under systemd), coloured console on a TTY.
Stdlib loggers (APScheduler, urllib3) are routed through the same processors. Event names are
stable snake_case; values are fields, never formatted into the message.
"""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging"]


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
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
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
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
