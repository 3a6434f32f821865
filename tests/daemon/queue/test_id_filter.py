"""The cheap test of which raw lines may name a job id (:func:`daemon.queue.id_filter.may_name`):
it never drops a line that spells the id in any way JSON allows, and it drops the lines with
backslashes that do not spell it (they were all parsed for each lookup)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from daemon.queue import LineRules, unread_lines
from daemon.queue.id_filter import may_name
from daemon.queue.job_request import CancelRequest, JobRequest
from tests.daemon.helpers import job_line

NOW = datetime(2026, 12, 7, tzinfo=UTC)
_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
          "\r": "\\r", "\t": "\\t"}  # fmt: skip


def _forms(char: str) -> list[str]:
    """Every way JSON may spell ``char`` inside a string (hex digits in lower, upper and
    mixed case)."""
    code = ord(char)
    forms = []
    if code >= 0x20 and char not in '"\\' and not 0xD800 <= code <= 0xDFFF:
        forms.append(char)
    if char in _SHORT:
        forms.append(_SHORT[char])
    units = [code] if code <= 0xFFFF else [0xD800 + (code - 0x10000) // 0x400,
                                           0xDC00 + (code - 0x10000) % 0x400]  # fmt: skip
    for case in (str.lower, str.upper, lambda h: h[:2].upper() + h[2:]):
        forms.append("".join(f"\\u{case(f'{unit:04x}')}" for unit in units))
    return forms


@st.composite
def _spelled(draw: st.DrawFn) -> tuple[str, str]:
    """An id (any text, lone surrogates too) and one JSON spelling of it, each character's
    form drawn."""
    job_id = draw(st.text(st.characters(codec=None), max_size=12))
    forms = [draw(st.sampled_from(_forms(char))) for char in job_id]
    return job_id, '"' + "".join(forms) + '"'


@given(_spelled(), st.sampled_from(["id", "cancel", "name"]), st.text(max_size=20))
def test_a_line_that_spells_the_id_in_any_json_form_may_name_it(
    spelled: tuple[str, str], key: str, other: str
) -> None:
    """Whatever the spelling of each character (itself, a short escape, ``\\uXXXX`` in any
    case, a surrogate pair), the line that holds it is kept: the daemon reads that id
    there."""
    job_id, spelling = spelled
    text = '{"x": ' + json.dumps(other) + ', "' + key + '": ' + spelling + "}"
    assert json.loads(text)[key] == job_id  # the spelling is JSON for the id
    assert may_name(job_id)(text.encode("utf-8", "surrogatepass"))


def test_lines_with_backslashes_that_do_not_spell_the_id_are_dropped() -> None:
    """Any line with a backslash was kept (an escape may spell any character), so a queue of
    lines with backslashes in their names or commands was parsed whole for each lookup."""
    test = may_name("a")
    for line in (
        job_line(id="b", name="a\\b"),  # "a" and a backslash, but no string "a"
        job_line(id="b", command=["sh", "-c", "echo \\\\a\\\\"]),
        '{"id": "\\u0062"}',  # b
        '{"id": "\\u0061b"}',  # ab
        '{"id": "x\\u0061"}',  # xa
        '{"id": "\\\\u0061"}',  # a backslash, then u0061
    ):
        assert not test(line.encode()), line
    for line in ('{"id": "\\u0061"}', '{"cancel":"a"}'):
        assert test(line.encode()), line
    assert may_name("z")(b'{"id": "\\u007A"}')


class _CountingRules(LineRules):
    """The daemon's rules, counting the lines judged."""

    judged = 0

    def judge(self, raw: bytes, now: datetime) -> JobRequest | CancelRequest | str:
        type(self).judged += 1
        return super().judge(raw, now)


def test_a_queue_of_backslash_heavy_lines_is_not_parsed_for_one_id(tmp_path: Path) -> None:
    """1,000 unread lines, each with backslashes in its command, and the one line of the id
    looked for: only that one is judged (all 1,001 were)."""
    queue = tmp_path / "queue.jsonl"
    queue.write_text(
        "".join(job_line(id=f"j{i}", command=["sh", "-c", "printf '\\\\n' \\\\"]) for i in
                range(1_000))
        + job_line(id="wanted", command=["printf", "\\t"])
    )  # fmt: skip
    rules = _CountingRules()
    assert unread_lines(queue, "wanted", NOW, rules=rules).job
    assert _CountingRules.judged == 1
