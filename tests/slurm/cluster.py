"""What tests see of the local Slurm cluster (``make slurm-up``): the ``slurm_cluster`` fixture.

The fixture (``tests/conftest.py``) hands a :class:`SlurmCluster` to any test that asks for it, or
skips the test, with the reason, when the cluster is not up (no root, no packages, ``make
slurm-up`` not run). With ``CARBOND_REQUIRE_SLURM=1`` (CI) it fails instead, so the Slurm tests
cannot pass by skipping. Before and after each test it cancels every job, restarts stopped nodes,
resumes drained or down nodes and resets the fake power meters, so tests do not see each other's
leftovers.
"""

from __future__ import annotations

import math
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from tests.slurm import localcluster
from tests.slurm.localcluster import NODES, TEST_USERS, Layout, NodeSpec

T = TypeVar("T")

REQUIRE_ENV = "CARBOND_REQUIRE_SLURM"


def unavailable_reason(layout: Layout) -> str | None:
    """Why the cluster in ``layout`` cannot be used from here, or None when it is up."""
    if os.geteuid() != 0:
        return "the local Slurm tests need root (slurmd runs jobs as other users)"
    missing = [b for b in ("sbatch", "squeue", "sacct", "scontrol") if shutil.which(b) is None]
    if missing:
        return f"Slurm client commands not installed ({', '.join(missing)}); see docs/slurm.md"
    down = [
        d.name
        for d in localcluster.daemons(layout)
        if localcluster.live_pid(d) is None and not d.name.startswith("slurmd-")  # reset() starts
    ]
    if down:
        return (
            f"local Slurm cluster in {layout.root} is not up ({', '.join(down)} not running);"
            " run `make slurm-up` first"
        )
    return None


@dataclass(frozen=True, slots=True)
class SlurmCluster:
    """A running local cluster: how to reach it, and the levers tests pull."""

    layout: Layout

    nodes: tuple[NodeSpec, ...] = NODES
    user: str = TEST_USERS[0]  # a submitter carbond hands jobs for (``sbatch --uid``)
    other_user: str = TEST_USERS[1]  # someone else, whose jobs carbond did not submit

    @property
    def env(self) -> dict[str, str]:
        """This process's environment plus ``SLURM_CONF``: pass it to every Slurm command."""
        return self.layout.env()

    @property
    def slurm_conf(self) -> Path:
        return self.layout.slurm_conf

    @property
    def partitions(self) -> dict[str, str]:
        """Partition name -> its node's name (``{"alpha": "n1", "beta": "n2"}``)."""
        return {n.partition: n.name for n in self.nodes}

    def node(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes if n.name == name)

    def work_dir(self, user: str = "root") -> Path:
        """A folder ``user`` may write in (jobs' default working and output directory)."""
        path = localcluster.user_dir(self.layout, user)
        path.mkdir(exist_ok=True)
        return path

    # -- running commands ----------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        user: str | None = None,
        check: bool = True,
        timeout_s: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command against this cluster (as root, or as ``user``) and return it.

        Raises:
            AssertionError: ``check`` and the command exited non-zero (stderr in the message).
        """
        kwargs: dict[str, object] = {}
        if user is not None:
            entry = pwd.getpwnam(user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        done = subprocess.run(
            list(argv),
            env={**self.env, "HOME": str(self.work_dir(user or "root"))},
            cwd=self.work_dir(user or "root"),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            **kwargs,  # type: ignore[arg-type]  # user/group/extra_groups: typed per keyword
        )
        if check and done.returncode != 0:
            command = " ".join(argv)
            raise AssertionError(f"{command} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def run_as_other_user(
        self, argv: Sequence[str], *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as :attr:`other_user` (a plain ``sbatch`` by someone carbond never saw)."""
        return self.run(argv, user=self.other_user, check=check)

    def sbatch(self, *options: str, wrap: str, user: str | None = None) -> int:
        """Submit ``wrap`` (a shell line) with ``options``; the Slurm job id."""
        out = self.run(["sbatch", "--parsable", *options, "--wrap", wrap], user=user).stdout
        return int(out.strip().split(";")[0])

    def sacct(self, job_id: int, fields: Sequence[str]) -> list[dict[str, str]]:
        """``sacct`` rows of one job (the job row, then its steps), as field -> text."""
        out = self.run(
            ["sacct", "-a", "-j", str(job_id), "--parsable2", "--noheader", "-o", ",".join(fields)]
        ).stdout
        return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]

    def job_state(self, job_id: int) -> str:
        """The job's state as ``sacct`` has it (``""`` until accounting has the job)."""
        rows = self.sacct(job_id, ("JobID", "State"))
        return next((r["State"] for r in rows if r["JobID"] == str(job_id)), "")

    def node_state(self, node: str) -> str:
        """``sinfo``'s long state of ``node``: ``idle``, ``mixed``, ``mixed*`` (not responding), ...

        sinfo shows a DOWN node whose failed jobs still hold CPUs as ``mixed*`` for a while; ask
        :meth:`node_flags` to know whether slurmctld has set it DOWN.
        """
        return self.run(["sinfo", "-h", "-N", "-n", node, "-o", "%T"]).stdout.strip()

    def node_flags(self, node: str) -> str:
        """``scontrol``'s ``State=`` of ``node``: ``IDLE``, ``MIXED``, ``DOWN+NOT_RESPONDING``..."""
        out = self.run(["scontrol", "show", "node", node, "-o"]).stdout
        return next(f for f in out.split() if f.startswith("State=")).removeprefix("State=")

    def slurmd_up_s(self, node: str) -> float:
        """Seconds since ``node``'s slurmd started, as slurmctld has it (``SlurmdStartTime``,
        whole seconds, in this process's time zone); infinite while it has none."""
        out = self.run(["scontrol", "show", "node", node, "-o"]).stdout
        start = next((f for f in out.split() if f.startswith("SlurmdStartTime=")), "=None")
        try:
            at = datetime.strptime(start.split("=", 1)[1], "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            return math.inf
        return (datetime.now() - at).total_seconds()  # scontrol prints local time

    # -- levers --------------------------------------------------------------------------------

    def set_watts(self, node: str, watts: float) -> None:
        """``node``'s fake power draw from now on (watts); sacct's job energy follows it."""
        localcluster.set_watts(self.layout, node, watts)

    def stop_node(self, node: str, *, crash: bool = False) -> None:
        """Stop ``node``'s slurmd (``crash``: also kill its job processes, as a lost node).

        slurmctld marks the node not responding after about 9 s, then DOWN after about 17 s
        (MessageTimeout 5 s sets that pace: localcluster.py); its running jobs end NODE_FAIL,
        and batch jobs that allow it are
        requeued (pending with a BeginTime about two minutes on).
        """
        localcluster.stop_slurmd(self.layout, node, crash=crash)

    def start_node(self, node: str) -> None:
        """Start ``node``'s slurmd again; returns once slurmctld sees it responding."""
        localcluster.start_slurmd(self.layout, node)

    def wait_until(
        self, predicate: Callable[[], T], *, timeout_s: float = 30, what: str = "condition"
    ) -> T:
        """Poll ``predicate`` every 0.2 s until it returns something truthy; return that.

        Raises:
            AssertionError: still falsy after ``timeout_s`` (the message names ``what``).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout_s:g} s waiting for {what} (last: {value!r})"
                )
            time.sleep(0.2)

    def wait_for_job_end(self, job_id: int, *, timeout_s: float = 60) -> Mapping[str, str]:
        """Wait until ``sacct`` has the job finished, energy included; its job row."""
        finished = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")

        def done() -> dict[str, str] | None:
            rows = self.sacct(job_id, ("JobID", "State", "ExitCode", "End"))
            job = next((r for r in rows if r["JobID"] == str(job_id)), None)
            if job is None or job["State"].split()[0] not in finished:
                return None
            if job["State"] in ("CANCELLED", "NODE_FAIL") or job["State"].startswith("CANCELLED "):
                return job  # its batch step may never have started, or never reports its end
            # the .batch row (where energy lands) is written a moment after the job row
            steps = [r for r in rows if r["JobID"] == f"{job_id}.batch"]
            return job if steps and steps[0]["End"] != "Unknown" else None

        return self.wait_until(done, timeout_s=timeout_s, what=f"job {job_id} to end in sacct")

    # -- between tests -------------------------------------------------------------------------

    def reset(self) -> None:
        """Cancel every job, bring every node and partition back, reset the meters: a clean
        slate for a test."""
        for partition in self.partitions:
            self.run(["scontrol", "update", f"PartitionName={partition}", "State=UP"], check=False)
        for n in self.nodes:
            if localcluster.live_pid(localcluster.daemon(self.layout, f"slurmd-{n.name}")) is None:
                self.start_node(n.name)
        for user in ("root", self.user, self.other_user):
            self.run(["scancel", "--quiet", "-u", user], check=False)
        for n in self.nodes:
            self.set_watts(n.name, n.watts)
            state = self.node_flags(n.name)
            if any(flag in state for flag in ("DOWN", "DRAIN", "FAIL")):
                self.run(["scontrol", "update", f"NodeName={n.name}", "State=RESUME"], check=False)

        def quiet() -> bool:
            return self.run(["squeue", "-h", "-o", "%i"]).stdout.strip() == "" and all(
                self.node_flags(n.name) == "IDLE" for n in self.nodes
            )

        self.wait_until(quiet, timeout_s=60, what="no jobs left and every node idle")
