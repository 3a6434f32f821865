"""Issue 13's probes run by a second local user, through ``carbond submit`` and raw spool
appends, against a daemon (the real Service, ticked) running as root: no other user's job is
delayed, lost or hijacked.

Three parties: root (queue.jsonl), a victim (``carbond submit``, so queue.d/<uid>.jsonl) and
an attacker who tries every probe. After each round the victim's and root's jobs submitted in
that round are in the ledger with their own uid, ingested on the first tick after they were
written, and launched as their owner.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from daemon.queue import submit_target
from daemon.service import Service
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.helpers import append, job_line, make_service
from tests.daemon.users import UserCli, as_user, cli_as, local_user, open_dir

pytestmark = pytest.mark.root

ATTACKER, VICTIM = "carbond-test-user", "carbond-test-victim"


class _World:
    def __init__(self, scratch: Path) -> None:
        self.attacker = local_user(ATTACKER)
        self.victim = local_user(VICTIM)
        self.state = scratch / "state"
        self.executor = RecordingExecutor(duration_factor=0.0)  # jobs end at once: GPUs free
        self.service: Service = make_service(self.state, self.executor)
        self.clock = FakeClock()
        self.service.start(self.clock())
        self.cli: UserCli = cli_as(self.attacker, scratch)
        self.rounds = 0

    @property
    def ledger(self) -> Ledger:
        return self.service.ledger

    def submit(self, user: pwd.struct_passwd, *argv: str) -> tuple[int, str]:
        done = self.cli.run(user, "submit", "--state-dir", str(self.state), *argv)
        return done.returncode, done.stdout + done.stderr

    def raw(self, user: pwd.struct_passwd, rel: str, data: str) -> int:
        """``cat >> FILE`` as ``user`` (any program can append)."""
        path = self.state / rel
        done = as_user(user, ["sh", "-c", 'cat >> "$1"', "sh", str(path)], stdin=data)
        return done.returncode

    def innocent_round(self, *, cli: bool = False) -> tuple[str, str]:
        """The victim submits (``carbond submit``, or a raw append to their own spool file),
        root appends; one tick; both must be in, as themselves."""
        self.rounds += 1
        victim_id, root_id = f"victim-{self.rounds}", f"root-{self.rounds}"
        if cli:
            code, out = self.submit(self.victim, "--id", victim_id, "--model", "llama-1b", "--",
                                    "id", "-u")  # fmt: skip
            assert code == 0, out
        else:
            own = submit_target(self.state, self.victim.pw_uid).relative_to(self.state)
            assert self.raw(self.victim, str(own), job_line(id=victim_id)) == 0
        append(self.state / "queue.jsonl", job_line(id=root_id))
        self.service.tick(self.clock.advance(30))
        for job_id, user in ((victim_id, self.victim), (root_id, None)):
            job = self.ledger.job(job_id)  # ingested on this very tick: not delayed
            uid, gid = (user.pw_uid, user.pw_gid) if user else (0, 0)
            assert (job.uid, job.gid) == (uid, gid), job_id
        launched = {s.job_id: (s.uid, s.gid) for s in self.executor.launches}
        assert launched[victim_id] == (self.victim.pw_uid, self.victim.pw_gid)
        return victim_id, root_id


@pytest.fixture(scope="module")
def world() -> Iterator[_World]:
    """One daemon and its state for every probe (each round checks only its own jobs)."""
    scratch = open_dir()
    try:
        yield _World(scratch)
    finally:
        shutil.rmtree(scratch)


def _spool(world: _World, user: pwd.struct_passwd) -> str:
    return f"queue.d/{user.pw_uid}.jsonl"


def test_poison_lines_from_another_user_stop_nobody(world: _World) -> None:
    mine = _spool(world, world.attacker)
    for poison in (
        job_line(deadline="+9999999d"),
        job_line(deadline="+99999999999d"),
        job_line(deadline="0001-01-01T00:00:00+14:00"),
        '{"model": "llama-1b", "command": ["true"], "requests": ' + "9" * 5000 + "}\n",
        '{"command": ' + "[" * 20_000 + "]" * 20_000 + "}\n",
        "\xff garbage\n",
    ):
        assert world.raw(world.attacker, mine, poison) == 0
        world.innocent_round()
    world.innocent_round(cli=True)
    code, out = world.submit(world.attacker, "--model", "llama-1b", "--deadline", "+9999999d",
                             "--", "true")  # fmt: skip
    assert code == 2
    assert "field 'deadline'" in out and "Traceback" not in out


def test_a_planted_spool_file_locks_nobody_out(world: _World) -> None:
    planted = world.state / _spool(world, world.victim)
    for done in (world.state / "queue.d").glob(f"{world.victim.pw_uid}*.jsonl"):
        done.unlink()  # as if the victim had never submitted (their lines are all ingested)
    assert world.raw(world.attacker, _spool(world, world.victim), job_line(id="squat")) == 0
    assert planted.stat().st_uid == world.attacker.pw_uid
    victim_id, _ = world.innocent_round(cli=True)  # the victim's submit goes around it
    assert world.ledger.job_owner("squat") is None  # ignored, not attributed to anyone
    assert world.ledger.job(victim_id).source.startswith(f"queue.d/{world.victim.pw_uid}.")
    # and a symlink planted instead
    os.unlink(planted)
    link = as_user(world.attacker, ["ln", "-s", "/etc/passwd", str(planted)])
    assert link.returncode == 0, link.stderr
    world.innocent_round(cli=True)
    assert Path("/etc/passwd").stat().st_uid == 0


def test_another_users_job_id_is_neither_taken_nor_cancelled(world: _World) -> None:
    victim_id, root_id = world.innocent_round()
    code, out = world.submit(world.attacker, "--id", victim_id, "--model", "llama-1b", "--",
                             "true")  # fmt: skip
    assert code == 2
    assert f"job id {victim_id!r} already exists and belongs to {VICTIM}" in out
    cancel = world.cli.run(world.attacker, "cancel", victim_id, "--state-dir", str(world.state))
    assert cancel.returncode == 2 and "not to you" in cancel.stderr
    mine = _spool(world, world.attacker)
    for job_id in (victim_id, root_id):  # raw lines: rejected with the reason
        assert world.raw(world.attacker, mine, job_line(id=job_id)) == 0
        assert world.raw(world.attacker, mine, json.dumps({"cancel": job_id}) + "\n") == 0
    world.innocent_round()
    assert world.ledger.job(victim_id).uid == world.victim.pw_uid
    assert world.ledger.job(root_id).uid == 0
    assert world.ledger.job(victim_id).cancel_requested_at is None
    assert world.ledger.job(root_id).cancel_requested_at is None
    status = world.cli.run(world.attacker, "status", victim_id, "--state-dir", str(world.state),
                           "--json")  # fmt: skip
    assert status.returncode == 0, status.stderr
    rejected = json.loads(status.stdout)["rejected_lines"]
    assert {r["uid"] for r in rejected} == {world.attacker.pw_uid}  # their own, nobody else's
    assert any("already used by another user" in r["reason"] for r in rejected)


def test_huge_unfinished_lines_truncation_and_partial_lines_delay_nobody(world: _World) -> None:
    mine = _spool(world, world.attacker)
    assert world.raw(world.attacker, mine, "x" * 300_000) == 0  # no newline, ever
    world.innocent_round()
    world.innocent_round()
    assert world.raw(world.attacker, mine, '{"partial": ') == 0
    code, out = world.submit(world.attacker, "--id", "attacker-1", "--model", "llama-1b", "--",
                             "true")  # fmt: skip
    assert code == 0, out
    world.innocent_round()
    assert world.ledger.job("attacker-1").uid == world.attacker.pw_uid  # on a line of its own
    truncate = as_user(world.attacker, ["truncate", "-s", "0", str(world.state / mine)])
    assert truncate.returncode == 0
    assert world.raw(world.attacker, mine, job_line(id="attacker-2")) == 0
    world.innocent_round()
    assert world.ledger.job("attacker-2").uid == world.attacker.pw_uid  # read from 0 again


def test_the_state_dir_gives_another_user_nothing_to_plant_in(world: _World) -> None:
    world.innocent_round()
    for target in ("logs/victim-1.out", "rejected.jsonl", "queue.jsonl", "ledger.db"):
        planted = as_user(world.attacker, ["ln", "-sf", "/etc/shadow", str(world.state / target)])
        assert planted.returncode != 0, target
    assert world.cli.run(world.attacker, "doctor", "--state-dir", str(world.state)).returncode \
        in (0, 1)  # fmt: skip
    world.innocent_round()
