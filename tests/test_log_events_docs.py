"""The log events the README and docs/*.md name are ones the code logs: a code span that a
sentence says is logged (``logs `reload_rejected```, ``the log says `daemon_lock_replaced```,
``logged `recalibrated```) is a string the code passes (an event name, ``"reload_rejected"``)
or a keyword (an event's field, ``holder_pid=``). An operator greps the journal for them;
a renamed event left in the docs matches nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = ("daemon", "forecasts", "policies")

# a code span in snake_case, and the words before it in its sentence that say it is logged
_NAME = re.compile(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`")
_LOGGED = re.compile(r"\b(?:logs?|logged|logging)\b[^.:;|]*$", re.I)
_LOGGED_AFTER = re.compile(r"^[^.:;|]{0,30}?\b(?:is logged|are logged|in the log)\b", re.I)


def logged_names(text: str) -> Iterator[tuple[str, str]]:
    """``(name, its context)`` for each snake_case code span a sentence says is logged: in
    the same clause, the span follows a word of logging within 80 characters, or ``is
    logged`` or ``in the log`` follows it within 30."""
    flat = re.sub(r"\s+", " ", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
    for m in _NAME.finditer(flat):
        before = flat[max(0, m.start() - 80) : m.start()]
        if _LOGGED.search(before) or _LOGGED_AFTER.search(flat[m.end() : m.end() + 50]):
            yield m.group(1), flat[max(0, m.start() - 60) : m.end() + 20]


@cache
def _code() -> str:
    return "\n".join(
        p.read_text(encoding="utf-8") for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
    )


def in_code(name: str, code: str) -> bool:
    """Whether the code passes ``name`` as a string (an event) or a keyword (a field)."""
    return re.search(rf"[\"']{name}[\"']|\b{name}=", code) is not None


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_every_log_event_named_is_logged(page: Path) -> None:
    code = _code()
    wrong = [
        f"{name}  (in: ...{context}...)"
        for name, context in logged_names(page.read_text(encoding="utf-8"))
        if not in_code(name, code)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_scan_sees_the_events() -> None:
    """Guards the scan: the pages' logged names are found, and a name not in the code is not."""
    names = {name for page in DOCS for name, _ in logged_names(page.read_text("utf-8"))}
    assert {"reload_rejected", "daemon_lock_replaced", "recalibration_checkpoint_loaded",
            "queue_files_over_limit", "metrics_unavailable", "watchdog_withheld",
            "holder_pid"} <= names  # fmt: skip
    assert len(names) > 40
    code = _code()
    assert in_code("reload_rejected", code) and in_code("holder_pid", code)
    assert not in_code("reload_refused", code)
    assert [n for n, _ in logged_names("it logs `no_such_event` (`a_field`).")] == [
        "no_such_event",
        "a_field",
    ]
    assert [n for n, _ in logged_names("Then `a_b` is logged; `c_d` in the log.")] == ["a_b", "c_d"]
    assert list(logged_names("logs | `plan_window` | a log. Then `plan_s` is read")) == []
