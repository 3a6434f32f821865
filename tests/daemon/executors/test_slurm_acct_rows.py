"""Which of a job's sacct rows is read (:func:`daemon.executors.slurm.acct.row_of`): a line cut
in two leaves a fragment whose first field may read as any job's id, printed before that
job's whole row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from daemon.executors.slurm import CommandResult
from daemon.executors.slurm.queries import Token
from tests.daemon.executors.fake_slurm import T0, FakeSlurm, _executor, _spec


@dataclass
class _FragmentFirst(FakeSlurm):
    """FakeSlurm whose sacct prints a cut-short fragment of each job's row before it, and
    reads ``sacct_running`` jobs as still RUNNING there (sacct lagging squeue)."""

    sacct_running: tuple[str, ...] = ()

    def _sacct(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        answer = super()._sacct(argv, opts)
        lines = []
        for row in answer.stdout.splitlines():
            slurm_id, _, rest = row.partition("|")
            if "." not in slurm_id:
                lines.append(f"{slurm_id}|COMPLETED|1:0")  # the fragment, first
            if slurm_id in self.sacct_running:
                rest = rest.replace("COMPLETED", "RUNNING", 1)
            lines.append(f"{slurm_id}|{rest}")
        return replace(answer, stdout="".join(f"{line}\n" for line in lines))


def test_a_readable_sacct_row_wins_over_a_cut_short_fragment_of_its_id_printed_first(
    tmp_path: Path,
) -> None:
    """A job's end was read from the first non-step sacct row of its id, so a cut-short
    fragment printed before its whole row hid the end (the job stayed ``running`` and, ten
    minutes on, ended ``failed``, ``slurm state unknown``), and a job sacct still shows
    running was counted towards that limit too. The readable row now wins, as squeue's rows
    do: the job ends as Slurm recorded it (its energy too, the fragment not named in its
    reason), and one still running in sacct is not given up."""
    slurm = _FragmentFirst()
    executor = _executor(slurm)
    handles = [executor.launch(replace(_spec(tmp_path), job_id=f"j{n}"), T0) for n in (1, 2)]
    ids = [Token.decode(h.job_id, h.token).slurm_id for h in handles]
    for slurm_id in ids:
        slurm.jobs[slurm_id].state, slurm.jobs[slurm_id].energy = "GONE", "300"
    slurm.sacct_running = (ids[1],)
    first = T0 + timedelta(minutes=1)

    [done] = executor.poll(handles, first)
    assert executor.poll(handles[1:], first + timedelta(minutes=11)) == []

    assert (done.job_id, done.succeeded, done.exit_code) == ("j1", True, 0)
    assert done.reason == "slurm COMPLETED"
    assert (done.finished_at, done.energy_j) == (T0 + timedelta(seconds=5), 300.0)
