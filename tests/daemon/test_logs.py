"""Logging setup: the level filters events before they are formatted, nothing else changes."""

from __future__ import annotations

import json
import logging

import pytest
import structlog
from structlog.testing import capture_logs

from daemon.logs import configure_logging, dropped


@pytest.mark.usefixtures("restore_logging")
def test_the_level_filters_and_events_above_it_are_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="WARNING", json=True)
    log = structlog.get_logger("carbond.test")
    log.info("job_decision", job_id="a")
    log.debug("job_detail", job_id="a")
    log.warning("job_requeued", job_id="b")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["event"], e["job_id"], e["level"]) for e in lines] == [
        ("job_requeued", "b", "warning")
    ]
    logging.getLogger().setLevel("INFO")  # as a SIGHUP that lowers the level does
    log.info("job_decision", job_id="c")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["event"], e["job_id"], e["level"]) for e in lines] == [("job_decision", "c", "info")]


@pytest.mark.usefixtures("restore_logging")
def test_captured_logs_see_every_level_whatever_the_configured_one() -> None:
    configure_logging(level="WARNING", json=True)
    with capture_logs() as captured:
        structlog.get_logger("carbond.test").info("job_decision", job_id="a")
    assert captured == [{"event": "job_decision", "job_id": "a", "log_level": "info"}]


@pytest.mark.usefixtures("restore_logging")
def test_dropped_answers_as_the_configured_level_and_follows_each_reconfiguration() -> None:
    configure_logging(level="WARNING", json=True)
    assert dropped("carbond.test", logging.INFO)
    assert not dropped("carbond.test", logging.WARNING)
    logging.getLogger("carbond.test").setLevel("DEBUG")  # a logger's own level counts
    assert not dropped("carbond.test", logging.INFO)
    logging.getLogger("carbond.test").setLevel(logging.NOTSET)
    logging.getLogger().setLevel("INFO")  # as a SIGHUP that lowers the level does
    assert not dropped("carbond.test", logging.INFO)
    assert dropped("carbond.test", logging.DEBUG)
    with capture_logs():  # a swapped chain sees every event: nothing is dropped for it
        assert not dropped("carbond.test", logging.DEBUG)
    assert dropped("carbond.test", logging.DEBUG)


@pytest.mark.usefixtures("restore_logging")
def test_nothing_is_dropped_before_configure_logging_ran() -> None:
    with structlog.testing.capture_logs():  # any configuration but daemon.logs' own
        assert not dropped("carbond.test", logging.DEBUG)
    structlog.reset_defaults()
    assert not dropped("carbond.test", logging.DEBUG)
