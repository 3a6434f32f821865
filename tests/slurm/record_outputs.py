"""Record real Slurm outputs from the local cluster, for the Slurm executor's pure parsers' tests.

``python3 -m tests.slurm.record_outputs [OUT_DIR]`` (``make slurm-record``; root) builds a fresh
cluster in ``$CARBOND_SLURM_DIR`` (the make target picks a folder and ports of its own, so a
cluster you have up is not touched), drives it through the job and node states a parser must
handle, saves what ``sbatch``, ``squeue``, ``sacct``, ``sinfo`` and ``scontrol`` print, one file
per command and moment, plus a README listing each file's exact command and the Slurm version, and
tears the cluster down. About two minutes (a TIMEOUT needs its one-minute limit to run out). The
files are this project's own fixtures.

States produced for real: COMPLETED, FAILED (exit 3), FAILED by the memory limit (signal 9: without
cgroups Slurm 22.05 cannot report OUT_OF_MEMORY), CANCELLED (running and pending), TIMEOUT,
NODE_FAIL (a node's slurmd and job processes killed), RUNNING, PENDING (BeginTime, Resources,
JobHeldUser), and nodes idle, mixed, allocated, draining, drained and down.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from tests.slurm import localcluster
from tests.slurm.cluster import SlurmCluster
from tests.slurm.localcluster import ClusterError, Layout

DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "daemon" / "executors" / "slurm_outputs" / "states"
)
SACCT_FIELDS = (
    "JobID,JobName,State,ExitCode,Start,End,Elapsed,ConsumedEnergyRaw,NodeList,Partition,"
    "AllocTRES,Reason"
)
SQUEUE_FORMAT = "%i|%j|%u|%P|%T|%r|%S|%b|%N"
SINFO_FIELDS = "NodeList,Partition,StateLong,Gres,GresUsed"


class Recorder:
    def __init__(self, cluster: SlurmCluster, out: Path) -> None:
        self.cluster = cluster
        self.out = out
        self.readme: list[tuple[str, str, str]] = []  # file, command, what it shows

    def save(self, name: str, argv: list[str], what: str, *, user: str | None = None) -> str:
        text = self.cluster.run(argv, user=user).stdout
        (self.out / name).write_text(text)
        shown = shlex.join(argv) if user is None else f"(as {user}) {shlex.join(argv)}"
        self.readme.append((name, shown, what))
        print(f"recorded {name}", flush=True)
        return text

    def sbatch(self, name: str, *options: str, wrap: str, user: str | None = None) -> int:
        c = self.cluster
        argv = ["sbatch", "--parsable", f"--job-name={name}", *options]
        argv += [f"--output={c.work_dir(user or 'root')}/%x-%j.out", "--wrap", wrap]
        return int(c.run(argv, user=user).stdout.strip().split(";")[0])

    def nodes(self, moment: str, what: str) -> None:
        self.save(f"sinfo_nodes_{moment}.txt", ["sinfo", "-N", "-h", "-O", SINFO_FIELDS], what)
        self.save(f"scontrol_show_node_{moment}.txt", ["scontrol", "show", "node", "-o"], what)

    def state(self, job: int) -> str:
        return self.cluster.run(["squeue", "-h", "-j", str(job), "-o", "%T"]).stdout.strip()


def record(cluster: SlurmCluster, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    r = Recorder(cluster, out)
    c = cluster
    c.reset()
    version = c.run(["sinfo", "--version"]).stdout.strip()
    r.nodes("idle", "both nodes idle, nothing running")

    # sbatch's --parsable output, plain and with -M (cluster name after a semicolon)
    job = r.sbatch("carbond-completed", "--partition=alpha", "--gres=gpu:1", wrap="sleep 2")
    (out / "sbatch_parsable.txt").write_text(f"{job}\n")
    r.readme.append(
        ("sbatch_parsable.txt", "sbatch --parsable --partition=alpha --gres=gpu:1 ...", "a job id")
    )
    r.save(
        "sbatch_parsable_cluster.txt",
        ["sbatch", "--parsable", "-M", "carbond", "--partition=beta", "--wrap", "true"],
        "with -M CLUSTER: job id;cluster",
    )
    timeout = r.sbatch("carbond-timeout", "--partition=alpha", "--time=1", wrap="sleep 600")
    r.sbatch("carbond-failed", "--partition=alpha", wrap="sleep 1; exit 3")
    r.sbatch(
        "carbond-over-memory",
        "--partition=alpha",
        "--mem=20M",
        wrap="python3 -c 'b = bytearray(300 << 20); b[::4096] = bytes(len(b) // 4096); "
        "import time; time.sleep(20)'",
    )
    running = r.sbatch("carbond-running", "--partition=alpha", "--gres=gpu:1", wrap="sleep 600")
    cancelled = r.sbatch("carbond-cancelled", "--partition=alpha", wrap="sleep 600")
    planned = ("--partition=alpha", "--gres=gpu:1", "--begin=now+3600")
    r.sbatch("carbond-planned", *planned, wrap="true")
    held = r.sbatch("carbond-held", "--partition=beta", "--hold", wrap="true")
    whole = r.sbatch("carbond-whole-node", "--partition=beta", "--exclusive", wrap="sleep 600")
    for j in (running, cancelled, whole):
        c.wait_until(lambda j=j: r.state(j) == "RUNNING", what=f"job {j} to run")
    c.wait_until(lambda: c.node_flags("n1") == "MIXED", what="n1 mixed")
    r.nodes("mixed_allocated", "n1 mixed (some CPUs used), n2 allocated (an --exclusive job)")
    c.run(["scancel", str(cancelled), str(whole)])
    c.wait_until(lambda: r.state(whole) == "", what="the exclusive job to leave the queue")

    other = r.sbatch(
        "someone-elses", "--partition=beta", "--gres=gpu:2", wrap="sleep 600", user=c.other_user
    )
    c.wait_until(lambda: r.state(other) == "RUNNING", what="the other user's job to run")
    stranded = r.sbatch("carbond-node-fail", "--partition=beta", "--no-requeue", wrap="sleep 600")
    waiting = r.sbatch("carbond-waiting", "--partition=beta", "--gres=gpu:1", wrap="true")
    c.wait_until(lambda: r.state(stranded) == "RUNNING", what=f"job {stranded} to run")
    c.wait_until(
        lambda: "Resources" in c.run(["squeue", "-h", "-j", str(waiting), "-o", "%r"]).stdout,
        what="a job waiting for GPUs",
    )
    time.sleep(1)
    r.save(
        "squeue_format.txt",
        ["squeue", "-h", "-a", "-t", "all", "-o", SQUEUE_FORMAT],
        "every job so far: running, pending (BeginTime, Resources, JobHeldUser), ended;"
        " another user's job holding both beta GPUs",
    )
    r.save("squeue.json", ["squeue", "--json"], "the same moment as squeue --json (ignores -j)")
    r.save(
        "squeue_start.txt",
        ["squeue", "-h", "-t", "PENDING", "-o", "%i|%T|%r|%S"],
        "pending jobs' expected start (%S): --begin time, or N/A",
    )
    r.save(
        "scontrol_show_job_planned.txt",
        ["scontrol", "show", "job", "-o"],
        "every job, one per line (StartTime of the planned job is its --begin)",
    )
    r.nodes("mixed", "n1 mixed, n2 mixed with its two GPUs held by another user's job")
    c.run(["scancel", str(held)])

    c.run(["scontrol", "update", "NodeName=n1", "State=DRAIN", "Reason=carbond test drain"])
    r.nodes("draining", "n1 draining (jobs still running), n2 mixed")

    c.stop_node("n2", crash=True)
    c.wait_until(lambda: c.node_flags("n2").startswith("DOWN"), timeout_s=90, what="n2 down")
    r.nodes("down", "n1 draining, n2 down and not responding (its slurmd and jobs killed)")

    c.wait_until(lambda: r.state(timeout) == "", timeout_s=120, what="the time limit to run out")
    c.run(["scancel", str(running)])
    c.wait_until(lambda: c.node_flags("n1") == "IDLE+DRAIN", what="n1 to be drained")
    r.nodes("drained", "n1 drained (idle and drained), n2 down")
    c.run(["scontrol", "update", "PartitionName=alpha", "State=DOWN"])
    r.save(
        "scontrol_show_partition_down.txt",
        ["scontrol", "--all", "--oneliner", "show", "partition"],
        "partition alpha down (jobs are queued, none starts: PartitionDown), beta up",
    )
    c.run(["scontrol", "update", "PartitionName=alpha", "State=UP"])
    for j in (timeout, stranded, running):
        c.wait_for_job_end(j, timeout_s=60)
    time.sleep(1)
    r.save(
        "sacct_parsable2.txt",
        ["sacct", "-a", "--parsable2", "--noheader", "-o", SACCT_FIELDS],
        "every job of this recording and its steps, ended or not",
    )
    r.save("sacct.json", ["sacct", "-a", "--json"], "the same jobs as sacct --json")
    c.reset()

    lines = [
        "# Real Slurm outputs (recorded fixtures)",
        "",
        f"Recorded from the local cluster (`make slurm-up`) with {version} by",
        "`python3 -m tests.slurm.record_outputs` (`make slurm-record`), which wrote this file too.",
        "Partition alpha = node n1 (gpu:t4:2), beta = n2 (gpu:l4:2); jobs by root, one by",
        f"`{c.other_user}`. Rerun it to refresh them; job ids and times will differ.",
        "",
        "| file | command | shows |",
        "|---|---|---|",
    ]
    lines += [f"| `{f}` | `{cmd}` | {what} |" for f, cmd, what in r.readme]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    layout = Layout.from_env()
    try:
        localcluster.up(layout, fresh=True)
        record(SlurmCluster(layout), out)
    except ClusterError as e:
        print(f"cannot record: {e}", file=sys.stderr)
        return 1
    finally:
        localcluster.down(layout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
