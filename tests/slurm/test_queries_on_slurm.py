"""What ``squeue --jobs`` answers on the real local Slurm 22.05 (``make slurm-up``) for ids it
does not know, and how :class:`SlurmQueries` reads it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from daemon.executors.errors import ExecutorError
from daemon.executors.slurm.queries import SlurmQueries
from daemon.executors.slurm.runner import CommandResult, SubprocessRunner
from tests.slurm.cluster import SlurmCluster

pytestmark = pytest.mark.slurm

UNKNOWN = "999999"  # an id this cluster never gave


class _Counting:
    """The real runner, counting the commands it runs."""

    def __init__(self) -> None:
        self.argvs: list[list[str]] = []
        self._runner = SubprocessRunner()

    def __call__(
        self, argv: Sequence[str], *, stdin: str = "", uid: int | None = None,
        gid: int | None = None,
    ) -> CommandResult:  # fmt: skip
        self.argvs.append(list(argv))
        return self._runner(argv, stdin=stdin, uid=uid, gid=gid)


@pytest.fixture
def counted(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> _Counting:
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.slurm_conf))
    return _Counting()


def test_unknown_ids_are_left_out_in_one_squeue(
    slurm_cluster: SlurmCluster, counted: _Counting
) -> None:
    known = str(slurm_cluster.sbatch("-p", "alpha", "--begin=now+1hour", wrap="true"))
    queries = SlurmQueries({}, counted, None)

    assert [r.slurm_id for r in queries.squeue(None, [UNKNOWN, known, "999998"])] == [known]
    assert queries.squeue(None, [UNKNOWN, "999998"]) == []
    assert queries.squeue(None, [UNKNOWN]) == []  # alone, squeue refuses it: none either
    assert len(counted.argvs) == 3  # one squeue each, never one per id


@pytest.mark.parametrize("bad", ["abc", "0"])
def test_an_id_squeue_cannot_read_is_an_error_not_a_job_gone(
    slurm_cluster: SlurmCluster, counted: _Counting, bad: str
) -> None:
    """A multi-id ``squeue`` that failed with ``Invalid job id`` was retried one id at a time,
    and each id that failed alone was taken as a job Slurm no longer has: but Slurm 22.05
    refuses a multi-id call only for an id it cannot read at all (``squeue: error: Invalid
    job id: abc``), never for unknown ones, so a garbled run token read as a job gone (its
    run then never ended, its sacct empty), one command per held job each round. Only a
    single id Slurm does not know (``Invalid job id specified``) is now read as gone."""
    known = str(slurm_cluster.sbatch("-p", "alpha", "--begin=now+1hour", wrap="true"))
    queries = SlurmQueries({}, counted, None)

    with pytest.raises(ExecutorError, match=f"Invalid job id: {bad}"):
        queries.squeue(None, [known, bad])
    with pytest.raises(ExecutorError, match=f"Invalid job id: {bad}"):
        queries.squeue(None, [bad])
    assert len(counted.argvs) == 2
