"""docs/daemon.md's "States" shows the transitions ``daemon/states.py`` allows, no more and
no fewer: its table row by row, and its diagram arrow by arrow. The diagram had no
``queued -> running``, the path of a job started in the round that first plans it (three of
the demo's seven jobs), so it showed ``planned`` as a step every job passes."""

from __future__ import annotations

import re
from pathlib import Path

from daemon.states import STATES, TRANSITIONS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "daemon.md"


def _section() -> str:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index("## States")
    return text[start : text.index("\n## ", start + 1)]


def table() -> dict[str, set[str]]:
    """The section's ``| from | to |`` table: each state and the states it may go to."""
    found: dict[str, set[str]] = {}
    for sources, targets in re.findall(r"^\| (.+?) \| (.+?) \|$", _section(), re.M):
        for source in re.findall(r"`(\w+)`", sources):
            found[source] = set(re.findall(r"`(\w+)`", targets))
    return found


# ``A ──> B | C`` or ``(A or B) ──> C``; the target is looked ahead at, so that in a chain
# (``queued ──> planned ──> running``) each state is the next arrow's source
_ARROW = re.compile(r"(\((?:\w+ or )?\w+\)|\w+) ─+> (?=(\w+(?: \| \w+)*))")


def diagram_arrows(diagram: str) -> set[tuple[str, str]]:
    """The transitions the diagram writes out: its straight arrows (``queued ──> planned``,
    ``(queued or planned) ──> cancelled | expired | failed``) and the labels of its bends
    (``(queued ──> running: ...)``)."""
    return {
        (source, target)
        for m in _ARROW.finditer(diagram)
        for source in re.findall(r"\w+", m.group(1))
        if source != "or"
        for target in m.group(2).split(" | ")
    }


def test_the_table_is_the_code_s_transitions() -> None:
    assert table() == {state: set(TRANSITIONS[state]) for state in STATES}


def test_the_diagram_draws_every_transition_and_no_other() -> None:
    diagram = re.search(r"^```\n(.*?)^```", _section(), re.M | re.S)
    assert diagram is not None
    allowed = {(s, t) for s, targets in TRANSITIONS.items() for t in targets}
    assert diagram_arrows(diagram.group(1)) == allowed


def test_the_diagram_scan_reads_chains_pairs_and_labels() -> None:
    text = (
        "queued ──> planned ──> running ──> succeeded | failed\n"
        "  └── (queued or planned) ──> expired\n"
        "  (running ──> queued: never started)"
    )
    assert diagram_arrows(text) == {
        ("queued", "planned"), ("planned", "running"), ("running", "succeeded"),
        ("running", "failed"), ("queued", "expired"), ("planned", "expired"),
        ("running", "queued"),
    }  # fmt: skip


def test_the_flow_diagram_holds_a_job_planned_or_queued() -> None:
    """The flow diagram at the top of docs/daemon.md drew ``hold -> planned`` alone, though a
    hold without a chosen start keeps the job ``queued`` or puts it back there
    (``daemon/planning.py``: ``"planned" if decision.chosen is not None else "queued"``)."""
    text = PAGE.read_text(encoding="utf-8")
    flow = re.search(r"^```\n(.*?)^```", text, re.M | re.S)
    assert flow is not None and text.index(flow.group(0)) < text.index("## ")
    hold = re.search(r"\bhold -> ([^\n]*)", flow.group(1))
    assert hold is not None, flow.group(1)
    targets = set(re.findall(r"\b(\w+)\b", hold.group(1))) & set(STATES)
    assert targets == {"planned", "queued"}, hold.group(0)
    assert all(t in TRANSITIONS[s] or t == s for s in ("queued", "planned") for t in targets)
