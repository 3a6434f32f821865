"""A user whose ``queue.d/<uid>.jsonl`` another user holds: each ``carbond submit`` goes to one
fixed fallback file of theirs, not to a new file per submit. Run as real other users (root
creates them; ``carbond submit`` runs as each in a child), as the daemon's other-user probes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import job_line, make_service
from tests.daemon.users import as_user, cli_as, local_user, open_dir

pytestmark = pytest.mark.root

ATTACKER, VICTIM = "carbond-test-user", "carbond-test-victim"


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = open_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_submits_around_a_held_spool_file_go_to_one_file_not_one_each(scratch: Path) -> None:
    """``queue.d`` is 1733: a user cannot list it, so a submit whose ``<uid>.jsonl`` another
    user held could not find the fallback file it made last time and made a new
    ``<uid>.<random>.jsonl`` each time: one file per submit, piling up. The fallback names are
    now fixed (``<uid>.1.jsonl`` .. ``<uid>.16.jsonl``), each checked with one ``lstat``: the
    first that is the user's own, else the first free one; planted ones are gone around."""
    attacker, victim = local_user(ATTACKER), local_user(VICTIM)
    state = scratch / "state"
    clock = FakeClock()
    service = make_service(state, RecordingExecutor(duration_factor=0.0))
    try:
        service.start(clock())
        spool = state / "queue.d"
        uid = victim.pw_uid
        held = as_user(attacker, ["sh", "-c", 'cat >> "$1"', "sh", str(spool / f"{uid}.jsonl")],
                       stdin=job_line(id="squat"))  # fmt: skip
        assert held.returncode == 0, held.stderr
        link = as_user(attacker, ["ln", "-s", "/etc/passwd", str(spool / f"{uid}.1.jsonl")])
        assert link.returncode == 0, link.stderr
        cli = cli_as(victim, scratch)
        for n in range(3):
            done = cli.run(victim, "submit", "--state-dir", str(state), "--id", f"mine-{n}",
                           "--model", "llama-1b", "--", "true")  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip().endswith(f"queue.d/{uid}.2.jsonl"), done.stdout
        theirs = sorted(p.name for p in spool.iterdir() if p.name.startswith(f"{uid}."))
        assert theirs == [f"{uid}.1.jsonl", f"{uid}.2.jsonl", f"{uid}.jsonl"]
        assert os.stat(spool / f"{uid}.2.jsonl").st_uid == uid
        service.tick(clock.advance(30))
        for n in range(3):
            job = service.ledger.job(f"mine-{n}")
            assert (job.uid, job.source) == (uid, f"queue.d/{uid}.2.jsonl:{n + 1}")
        assert service.ledger.job_owner("squat") is None  # the planted file: ignored
    finally:
        service.close()
