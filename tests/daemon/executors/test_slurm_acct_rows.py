"""Which of a job's sacct rows is read (:func:`daemon.executors.slurm.acct.row_of`): a line cut
in two leaves a fragment whose first field may read as any job's id, printed before that
job's whole row; an answer cut inside its last line's last field has a lost row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from structlog.testing import capture_logs

from daemon.executors.slurm import CommandResult
from daemon.executors.slurm.acct import parse_sacct
from daemon.executors.slurm.queries import Token
from tests.daemon.executors.fake_slurm import T0, FakeSlurm, launch_spec, slurm_executor


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
    executor = slurm_executor(slurm)
    handles = [executor.launch(replace(launch_spec(tmp_path), job_id=f"j{n}"), T0) for n in (1, 2)]
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


def test_a_sacct_answer_cut_inside_its_last_field_is_a_lost_row_the_rest_read() -> None:
    """A read cut short inside the last line's last field (``AllocTRES``) has every field,
    so it was read as whole: ``gres/gpu=12`` cut to ``gres/gpu=1`` was a run on one GPU. A
    last line without its newline (sacct ends every line with one) is now a lost row, named
    with its line and field; the rows before it are read."""
    text = (
        "7|COMPLETED|0:0|2026-12-07T06:18:00|2026-12-07T06:18:04|n1|alpha|0|"
        "billing=1,cpu=1,gres/gpu=2,mem=100M,node=1\n"
        "8|COMPLETED|0:0|2026-12-07T06:18:00|2026-12-07T06:18:04|n1|alpha|0|"
        "billing=1,cpu=1,gres/gpu=1"  # of gres/gpu=12,mem=100M,node=1
    )
    rows = {(r.slurm_id, r.step): r for r in parse_sacct(text)}

    assert rows[("7", "")].gpus == 2 and not rows[("7", "")].lost
    cut = rows[("8", "")]
    assert cut.lost and cut.gpus is None and cut.state == ""
    assert cut.unreadable[0].startswith(
        "row cut short: sacct's answer ends inside its line 2, with no end of line, so its "
        "last field (AllocTRES) may be cut: '8|COMPLETED|"
    )
    assert parse_sacct(text + ",mem=100M,node=1\n")[1].gpus == 1  # whole: as printed


@dataclass
class _CutAtItsEnd(FakeSlurm):
    """FakeSlurm whose next sacct answer is read cut short inside its last line's last field
    (the batch step's ``AllocTRES``), its newline lost."""

    cut: bool = True

    def _sacct(self, argv: Sequence[str], opts: dict[str, str]) -> CommandResult:
        answer = super()._sacct(argv, opts)
        if not self.cut:
            return answer
        self.cut = False
        return replace(answer, stdout=answer.stdout.removesuffix(",mem=100M,node=1\n"))


def test_a_job_whose_sacct_answer_is_cut_in_its_last_field_ends_at_the_next_poll(
    tmp_path: Path,
) -> None:
    """The job ended from a batch step row cut short at its end (read as whole); its end now
    waits for the next poll's whole answer, the cut row named once
    (``slurm_sacct_unreadable``) with its line and field."""
    slurm = _CutAtItsEnd()
    executor = slurm_executor(slurm)
    handle = executor.launch(launch_spec(tmp_path), T0)
    [job] = slurm.jobs.values()
    job.state, job.energy = "GONE", "300"

    with capture_logs() as logs:
        assert executor.poll([handle], T0 + timedelta(minutes=1)) == []
        [done] = executor.poll([handle], T0 + timedelta(minutes=2))

    assert done.succeeded and done.energy_j == 300.0 and done.reason == "slurm COMPLETED"
    [named] = [e for e in logs if e["event"] == "slurm_sacct_unreadable"]
    assert named["slurm_id"] == "100"
    assert "ends inside its line 2" in named["fields"][0]
    assert "(AllocTRES)" in named["fields"][0]


def test_a_batch_step_row_cut_short_too_long_ends_the_job_as_its_job_row_says(
    tmp_path: Path,
) -> None:
    """A batch step row that stays cut short past ``cut_short_limit_s`` does not hold the
    job for ever, nor fail it: it ends as its whole job row says, the cut row left out and
    named."""
    slurm = _CutAtItsEnd()
    executor = slurm_executor(slurm, cut_short_limit_s=60)
    handle = executor.launch(launch_spec(tmp_path), T0)
    [job] = slurm.jobs.values()
    job.state = "GONE"
    assert executor.poll([handle], T0 + timedelta(minutes=1)) == []
    slurm.cut = True

    [done] = executor.poll([handle], T0 + timedelta(minutes=3))

    assert done.succeeded and done.finished_at == T0 + timedelta(seconds=5)
    assert done.reason.startswith("slurm COMPLETED; its batch step's sacct row cut short for 120 s")
