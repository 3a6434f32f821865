"""Doctor's ``sbatch --test-only`` trial of a region asking reservations
(:func:`daemon.executors.slurm.trial.judge`), against answers sbatch 22.05 gave on the local
cluster: ``--test-only`` plans a reservation list in its first reservation alone, and says
"Invalid time specified" of one not started yet, where a real submission takes the job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from daemon.executors.slurm.commands import Target
from daemon.executors.slurm.runner import CommandResult
from daemon.executors.slurm.trial import Refusal, judge

_LATER = "allocation failure: Invalid time specified"
_ELSEWHERE = "allocation failure: Requested node configuration is not available"
_INVALID = "allocation failure: Requested reservation is invalid"


class _Sbatch:
    """Answers each trial by its last ``--reservation=`` (sbatch takes the last), and
    records what it was asked."""

    def __init__(self, answers: Mapping[str, str | None]) -> None:
        self.answers, self.asked = answers, list[str]()

    def __call__(
        self, argv: Sequence[str], *, stdin: str = "", uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:  # fmt: skip
        asked = [w.removeprefix("--reservation=") for w in argv if w.startswith("--reservation=")]
        self.asked.append(asked[-1])
        said = self.answers[asked[-1]]
        return CommandResult(0, "", "sbatch: Job 7 to start") if said is None else \
            CommandResult(1, "", said)  # fmt: skip


@pytest.mark.parametrize(
    ("listed", "answers", "tried", "verdict"),
    [
        ("later,now", {"later,now": _LATER, "later": _LATER, "now": None},
         ["later,now", "later", "now"], None),
        ("elsewhere,now", {"elsewhere,now": _ELSEWHERE, "elsewhere": _ELSEWHERE, "now": None},
         ["elsewhere,now", "elsewhere", "now"], None),
        ("later", {"later": _LATER}, ["later", "later"], Refusal("", "gpu:1", _LATER, ("later",))),
        ("nosuch,now", {"nosuch,now": _INVALID}, ["nosuch,now"], Refusal("", "gpu:1", _INVALID)),
        ("elsewhere", {"elsewhere": _ELSEWHERE}, ["elsewhere"],
         Refusal("", "gpu:1", _ELSEWHERE)),
        ("a,b", {"a,b": _ELSEWHERE, "a": _ELSEWHERE, "b": _LATER}, ["a,b", "a", "b"],
         Refusal("", "gpu:1", _ELSEWHERE, ("b",))),
    ],
)  # fmt: skip
def test_a_reservation_list_is_judged_one_reservation_at_a_time_where_test_only_cannot(
    tmp_path: Path, listed: str, answers: Mapping[str, str | None], tried: list[str],
    verdict: Refusal | None,
) -> None:  # fmt: skip
    """Doctor failed a region asking ``--reservation=later,now`` in --test-only's words
    ("Invalid time specified"), though sbatch takes its jobs. A refusal that judges the whole
    list (an unknown name anywhere in it) is not tried again."""
    target = Target("alpha", sbatch_options=("--time=5", f"--reservation={listed}"))
    sbatch = _Sbatch(answers)
    asked = tuple(listed.split(","))
    assert judge(sbatch, "sbatch", target, (tmp_path, tmp_path), "", asked) == verdict
    assert sbatch.asked == tried
