"""Others' running jobs as ``squeue`` lists them (:func:`daemon.executors.slurm.parse.
parse_running`) when the answer is cut short inside its last line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from daemon.executors.slurm.parse import parse_running

RECORDED = Path(__file__).parent / "slurm_outputs"


def test_a_running_answer_cut_inside_its_last_line_s_end_time_leaves_that_end_unknown() -> None:
    """A read cut short inside the last line's last field (``EndTime``) has every field, so
    it was read as whole: ``2026-12-06T16:37:44`` cut to ``2026-12-06T16:37:4`` read as
    16:37:04, the job's GPUs free 40 s early. squeue ends every line with a newline, so a
    last line without one now has its end unknown (an hour from now, as when Slurm gives
    none), named with the line; its hosts and GPUs (whole fields) still count, and the rows
    before it are read."""
    text = (RECORDED / "squeue_running_beta.txt").read_text()
    whole = parse_running(text)
    cut = text.rstrip("\n")[:-1]  # ...|2026-12-06T16:37:4

    first, last = parse_running(cut)

    assert first == whole[0]
    assert (last.slurm_id, last.nodes, last.gpus_per_node) == ("90", ("n2",), 1)
    assert last.end is None
    assert last.unreadable == (
        "EndTime '2026-12-06T16:37:4': row cut short: squeue's answer ends inside its line 2, "
        "with no end of line, so its last field (EndTime) may be cut: "
        f"{cut.splitlines()[-1]!r}",
    )
    assert whole[1].end == datetime(2026, 12, 6, 16, 37, 44, tzinfo=UTC)
    assert parse_running(text.rstrip("\n") + "\n") == whole  # with its newline it is read
