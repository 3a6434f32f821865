"""A throwaway Slurm 22.05 cluster on this host, for carbond's Slurm tests and CI.

``make slurm-up`` / ``make slurm-down`` / ``make slurm-status`` call this module's command line::

    python3 -m tests.slurm.localcluster up|down|status|stop-node N|start-node N|set-watts N W

What ``up`` builds, all under ``$CARBOND_SLURM_DIR`` (default ``/tmp/carbond-slurm``), every port
from ``$CARBOND_SLURM_PORT_BASE`` (default 17000), so two clusters can run side by side:

- its own ``munged`` (own key, socket under the folder; the system munge is not touched);
- its own MariaDB (``mariadb-install-db`` into the folder, own socket and TCP port) for
  ``slurmdbd``, so ``sacct`` works;
- ``slurmdbd``, ``slurmctld`` and one ``slurmd -N`` per node on localhost: partition ``alpha`` =
  node ``n1`` with ``gpu:t4:2``, partition ``beta`` = node ``n2`` with ``gpu:l4:2`` (dummy character
  devices, so jobs get ``CUDA_VISIBLE_DEVICES``);
- per node a fake power meter (``fakepower.py``) whose files each slurmd sees as
  ``/sys/cray/pm_counters`` inside its own mount namespace, so ``sacct`` reports measured energy.

``down`` stops only what ``up`` started, by pid file (and, for each node, the job processes left in
that node's mount namespace), and removes nothing outside the folder. Needs root and the Debian
packages ``slurmctld slurmd slurm-client munge slurmdbd mariadb-server``; ``up`` installs them with
apt-get when they are missing and it runs as root, and otherwise exits non-zero saying why.

Stdlib only: it runs under the system ``python3``, before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DEFAULT_DIR = "/tmp/carbond-slurm"
DEFAULT_PORT_BASE = 17000
CLUSTER_NAME = "carbond"
ACCOUNT = "carbond"
MARKER = ".carbond-slurm"  # a folder holding this file is ours to empty
DB_USER = "slurm"
DB_PASSWORD = "carbond-local"
# How long a stopped slurmd takes to be noticed. slurmctld pings a node every SlurmdTimeout/3 and
# sets it DOWN once it has not answered for SlurmdTimeout; but each ping to a closed port retries
# its connect once a second for MIN(MessageTimeout, 10) s (slurm_send_addr_recv_msgs, read once at
# slurmctld's start), and ping cycles do not overlap, so MessageTimeout sets the pace: with 10 the
# node was NOT_RESPONDING after 12-16 s and DOWN after 24-29 s; with 5, after 9 s and 17 s. A
# shorter SlurmdTimeout (6) saved a second or two more, for the risk of a slow, healthy slurmd set
# DOWN under load. 5 s is still ample for any answer on one host (measured 2026-12-07, 22.05.8).
SLURMD_TIMEOUT_S = 10
MESSAGE_TIMEOUT_S = 5
# Local users the tests run Slurm commands as: one submitter carbond hands jobs for, one "other
# user" whose plain sbatch jobs hold GPUs carbond did not plan.
TEST_USERS = ("carbond-slurm-user", "carbond-slurm-other")
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge", "slurmdbd", "mariadb-server")
BINARIES = ("slurmctld", "slurmd", "slurmdbd", "sbatch", "sacct", "munged", "mariadbd")


class ClusterError(Exception):
    """The local cluster could not be brought up, down or changed; the message says why."""


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One compute node: its partition (a carbond region) and its fake GPUs."""

    name: str
    partition: str
    gpu_type: str
    gpus: int
    cpus: int
    memory_mb: int
    watts: float  # the fake meter's set point at start


NODES: tuple[NodeSpec, ...] = (
    NodeSpec("n1", "alpha", "t4", 2, cpus=8, memory_mb=4000, watts=150.0),
    NodeSpec("n2", "beta", "l4", 2, cpus=8, memory_mb=4000, watts=200.0),
)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where everything of one cluster lives, and its ports."""

    root: Path
    port_base: int

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None) -> Layout:
        env = os.environ if env is None else env
        root = Path(env.get("CARBOND_SLURM_DIR", DEFAULT_DIR)).absolute()
        return cls(root=root, port_base=int(env.get("CARBOND_SLURM_PORT_BASE", DEFAULT_PORT_BASE)))

    @property
    def ctld_port(self) -> int:
        return self.port_base

    @property
    def dbd_port(self) -> int:
        return self.port_base + 1

    @property
    def mysql_port(self) -> int:
        return self.port_base + 2

    def slurmd_port(self, node: str) -> int:
        return self.port_base + 10 + [n.name for n in NODES].index(node)

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def slurm_conf(self) -> Path:
        return self.etc / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munged.sock"

    @property
    def munge_private(self) -> Path:
        return self.root / "munge" / "private"

    @property
    def mysql_dir(self) -> Path:
        return self.root / "mysql"

    @property
    def mysql_socket(self) -> Path:
        return self.mysql_dir / "mysqld.sock"

    def node_dir(self, node: str) -> Path:
        return self.root / node

    def watts_file(self, node: str) -> Path:
        return self.node_dir(node) / "watts"

    def env(self) -> dict[str, str]:
        """The environment for Slurm commands against this cluster (this process's, plus)."""
        return {**os.environ, "SLURM_CONF": str(self.slurm_conf)}


@dataclass(frozen=True, slots=True)
class Daemon:
    """A process ``up`` starts: its pid file and a word its command line must contain."""

    name: str
    pid_file: Path
    cmdline_word: str
    log: Path


def daemons(layout: Layout) -> list[Daemon]:
    """Every process of the cluster, in start order (``down`` stops them in reverse)."""
    r = layout.root
    out = [
        Daemon("munged", layout.munge_private / "munged.pid", "munged", r / "munge" / "munged.log"),
        Daemon(
            "mariadbd", layout.mysql_dir / "mysqld.pid", "mariadbd", layout.mysql_dir / "err.log"
        ),
        Daemon("slurmdbd", r / "dbd" / "slurmdbd.pid", "slurmdbd", r / "dbd" / "slurmdbd.log"),
    ]
    for n in NODES:
        d = layout.node_dir(n.name)
        out.append(
            Daemon(f"fakepower-{n.name}", d / "fakepower.pid", "fakepower", d / "fakepower.log")
        )
    out.append(
        Daemon("slurmctld", r / "ctld" / "slurmctld.pid", "slurmctld", r / "ctld" / "slurmctld.log")
    )
    for n in NODES:
        d = layout.node_dir(n.name)
        out.append(Daemon(f"slurmd-{n.name}", d / "slurmd.pid", "slurmd", d / "slurmd.log"))
    return out


def daemon(layout: Layout, name: str) -> Daemon:
    return next(d for d in daemons(layout) if d.name == name)


# ---------------------------------------------------------------------------------------------
# Processes


def _say(message: str) -> None:
    print(f"slurm-local: {message}", flush=True)


def live_pid(d: Daemon) -> int | None:
    """The pid in ``d``'s pid file when that process is alive and is ``d`` (not a reused pid)."""
    try:
        pid = int(d.pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    if d.cmdline_word.encode() not in cmdline:
        return None
    state = _proc_state(pid)
    return None if state in (None, "Z") else pid


def _proc_state(pid: int) -> str | None:
    try:
        stat_text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat_text.rsplit(")", 1)[1].split()[0]


def _wait(
    what: str, check: Callable[[], bool], timeout_s: float, logs: Sequence[Path] = ()
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tails = "".join(_tail(p) for p in logs)
    raise ClusterError(f"timed out after {timeout_s:.0f} s waiting for {what}{tails}")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"\n--- {path}: (no log)"
    return f"\n--- last {len(text)} lines of {path}:\n" + "\n".join(text)


def _run(argv: Sequence[str], layout: Layout, *, check: bool = True, timeout_s: float = 30) -> str:
    done = subprocess.run(
        list(argv), env=layout.env(), capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if check and done.returncode != 0:
        raise ClusterError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _ok(argv: Sequence[str], layout: Layout) -> bool:
    try:
        done = subprocess.run(
            list(argv), env=layout.env(), capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _spawn(argv: Sequence[str], layout: Layout, d: Daemon) -> None:
    """Start a process that does not daemonise itself, in its own session; record its pid."""
    d.log.parent.mkdir(parents=True, exist_ok=True)
    with d.log.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            env=layout.env(),
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    d.pid_file.write_text(f"{proc.pid}\n")


def stop(d: Daemon, timeout_s: float = 15) -> bool:
    """SIGTERM ``d`` by its pid file, SIGKILL after ``timeout_s``; True when it was running."""
    pid = live_pid(d)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and live_pid(d) == pid:
        time.sleep(0.1)
    if live_pid(d) == pid:
        _say(f"{d.name} (pid {pid}) ignored SIGTERM for {timeout_s:.0f} s; SIGKILL")
        os.kill(pid, signal.SIGKILL)
    return True


# ---------------------------------------------------------------------------------------------
# Bring-up steps


def require_host() -> None:
    """Root and the packages, installing them with apt-get when root and they are missing."""
    if os.geteuid() != 0:
        raise ClusterError(
            "needs root (it starts slurmd, which switches to each job's user, and makes device "
            "nodes and mount namespaces); run as root, or skip the Slurm tests"
        )
    missing = [
        b for b in BINARIES if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()
    ]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise ClusterError(
            f"missing {', '.join(missing)} and no apt-get to install {' '.join(PACKAGES)}"
        )
    _say(f"missing {', '.join(missing)}: apt-get install {' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(install, env=env, check=True)


def ensure_users() -> None:
    for user in TEST_USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", user], check=True
            )
            _say(f"created local user {user}")


def user_dir(layout: Layout, user: str) -> Path:
    """A folder ``user`` owns inside the cluster folder (their jobs' working directory)."""
    return layout.root / "home" / user


def prepare(layout: Layout) -> None:
    """Empty (only if ours) and fill the cluster folder: configs, munge key, devices, node dirs."""
    root = layout.root
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise ClusterError(f"{root} is not empty and not a carbond Slurm folder; pick another")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # test users reach the munge socket, slurm.conf and their folders
    (root / MARKER).write_text("made by tests/slurm/localcluster.py; `make slurm-down` stops it\n")
    for sub in ("etc", "munge", "ctld/state", "dbd", "mysql", "home"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub).chmod(0o755)
    layout.munge_private.mkdir(mode=0o700)
    key = layout.munge_private / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    for user in TEST_USERS:
        home = user_dir(layout, user)
        home.mkdir()
        entry = pwd.getpwnam(user)
        os.chown(home, entry.pw_uid, entry.pw_gid)
    gres_lines = []
    for n in NODES:
        d = layout.node_dir(n.name)
        for sub in ("spool", "dev", "pm_counters", "sysreal"):
            (d / sub).mkdir(parents=True)
        for i in range(n.gpus):
            os.mknod(d / "dev" / f"nvidia{i}", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        layout.watts_file(n.name).write_text(f"{n.watts:g}\n")
        gres_lines.append(
            f"NodeName={n.name} Name=gpu Type={n.gpu_type} File={d}/dev/nvidia[0-{n.gpus - 1}]"
        )
    host = socket.gethostname().split(".")[0]
    nodes = "\n".join(
        f"NodeName={n.name} NodeHostname=localhost NodeAddr=127.0.0.1"
        f" Port={layout.slurmd_port(n.name)} CPUs={n.cpus} RealMemory={n.memory_mb}"
        f" Gres=gpu:{n.gpu_type}:{n.gpus} State=UNKNOWN"
        for n in NODES
    )
    partitions = "\n".join(
        f"PartitionName={n.partition} Nodes={n.name} Default={'YES' if i == 0 else 'NO'}"
        " MaxTime=INFINITE State=UP"
        for i, n in enumerate(NODES)
    )
    values = {
        "root": str(root),
        "cluster": CLUSTER_NAME,
        "host": host,
        "port_base": str(layout.port_base),
        "ctld_port": str(layout.ctld_port),
        "dbd_port": str(layout.dbd_port),
        "mysql_port": str(layout.mysql_port),
        "slurmd_port": str(layout.port_base + 9),
        "slurmd_timeout_s": str(SLURMD_TIMEOUT_S),
        "message_timeout_s": str(MESSAGE_TIMEOUT_S),
        "munge_socket": str(layout.munge_socket),
        "db_user": DB_USER,
        "db_password": DB_PASSWORD,
        "nodes": nodes,
        "partitions": partitions,
        "gres": "\n".join(gres_lines),
    }
    for name in ("slurm.conf", "slurmdbd.conf", "gres.conf"):
        text = Template((HERE / "templates" / f"{name}.in").read_text()).substitute(values)
        (layout.etc / name).write_text(text)
    (layout.etc / "slurmdbd.conf").chmod(0o600)  # slurmdbd refuses a readable password file
    (root / "env.sh").write_text(
        f"# source me: Slurm commands then talk to the cluster in {root}\n"
        f"export SLURM_CONF={layout.slurm_conf}\n"
    )


def start_munge(layout: Layout) -> None:
    d = daemon(layout, "munged")
    p = layout.munge_private
    subprocess.run(
        [
            "munged",
            f"--socket={layout.munge_socket}",
            f"--key-file={p / 'munge.key'}",
            f"--pid-file={d.pid_file}",
            f"--log-file={d.log}",
            f"--seed-file={p / 'munged.seed'}",
            "--num-threads=4",
        ],
        check=True,
        capture_output=True,
    )
    sock = str(layout.munge_socket)

    def works() -> bool:
        try:
            cred = subprocess.run(
                ["munge", "-S", sock, "-n"], capture_output=True, timeout=5, check=True
            ).stdout
            subprocess.run(
                ["unmunge", "-S", sock], input=cred, capture_output=True, timeout=5, check=True
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return False
        return True

    _wait("munged", works, 20, [d.log])


def start_mariadb(layout: Layout) -> None:
    d = daemon(layout, "mariadbd")
    data = layout.mysql_dir / "data"
    subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    _spawn(
        [
            "mariadbd",
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={layout.mysql_socket}",
            f"--port={layout.mysql_port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={d.pid_file}.mariadb",  # ours is written by _spawn
            f"--log-error={layout.mysql_dir / 'mariadbd.log'}",
            "--user=root",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=48M",
            "--innodb-lock-wait-timeout=900",
        ],
        layout,
        d,
    )
    client = ["mariadb", "--no-defaults", f"--socket={layout.mysql_socket}", "-u", "root"]
    _wait(
        "MariaDB",
        lambda: _ok([*client, "-e", "SELECT 1"], layout),
        60,
        [layout.mysql_dir / "mariadbd.log", d.log],
    )
    grant = (
        f"CREATE USER IF NOT EXISTS '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}';"
        f" GRANT ALL ON *.* TO '{DB_USER}'@'127.0.0.1'; FLUSH PRIVILEGES;"
    )
    _run([*client, "-e", grant], layout)


def start_slurmdbd(layout: Layout) -> None:
    d = daemon(layout, "slurmdbd")
    _run(["slurmdbd"], layout)
    _wait("slurmdbd", lambda: _ok(["sacctmgr", "-n", "-P", "show", "cluster"], layout), 60, [d.log])
    _run(["sacctmgr", "-i", "add", "cluster", CLUSTER_NAME], layout, check=False)
    _run(["sacctmgr", "-i", "add", "account", ACCOUNT, f"cluster={CLUSTER_NAME}"], layout)
    users = ",".join(("root", *TEST_USERS))
    _run(
        ["sacctmgr", "-i", "add", "user", users, f"account={ACCOUNT}", f"cluster={CLUSTER_NAME}"],
        layout,
    )


def start_fakepower(layout: Layout) -> None:
    for n in NODES:
        d = daemon(layout, f"fakepower-{n.name}")
        node_dir = layout.node_dir(n.name)
        _spawn([sys.executable, "-m", "tests.slurm.fakepower", str(node_dir)], layout, d)
        energy = node_dir / "pm_counters" / "energy"
        _wait(f"fake power meter of {n.name}", energy.exists, 10, [d.log])


def start_slurmctld(layout: Layout) -> None:
    d = daemon(layout, "slurmctld")
    _run(["slurmctld"], layout)
    _wait(
        "slurmctld",
        lambda: "UP" in _run(["scontrol", "ping"], layout, check=False),
        60,
        [d.log],
    )


# Inside the node's new mount namespace: a tmpfs over /sys with the real subtrees bound back, plus
# /sys/cray/pm_counters bound to the node's fake meter folder; then slurmd (which daemonises).
_SLURMD_NAMESPACE_SCRIPT = """
set -e
real="$1"; counters="$2"; shift 2
mount --rbind /sys "$real"
mount -t tmpfs -o mode=0755 carbond-sys /sys
for entry in "$real"/*; do
  name=$(basename "$entry")
  mkdir "/sys/$name"
  mount --rbind "$entry" "/sys/$name"
done
mkdir -p /sys/cray/pm_counters
mount --bind "$counters" /sys/cray/pm_counters
exec "$@"
"""


def start_slurmd(layout: Layout, node: str) -> None:
    """Start ``node``'s slurmd in its own mount namespace; wait until the controller sees it."""
    d = daemon(layout, f"slurmd-{node}")
    if live_pid(d) is not None:
        return
    _kill_namespace(layout, node, only_slurmd=True)  # one whose pid file was lost holds the port
    node_dir = layout.node_dir(node)
    argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        _SLURMD_NAMESPACE_SCRIPT,
        "slurmd-namespace",
        str(node_dir / "sysreal"),
        str(node_dir / "pm_counters"),
        "slurmd",
        "-N",
        node,
    ]
    _run(argv, layout)
    _wait(f"slurmd {node}", lambda: live_pid(d) is not None, 60, [d.log])

    def responding() -> bool:
        state = _run(["sinfo", "-h", "-N", "-n", node, "-o", "%t"], layout, check=False).strip()
        return state != "" and not state.endswith("*") and not state.startswith(("down", "unk"))

    _wait(f"node {node} to register with slurmctld", responding, 60, [d.log])


def stop_slurmd(layout: Layout, node: str, *, crash: bool = False) -> None:
    """Stop ``node``'s slurmd; ``crash`` also kills every job process on the node (a lost node)."""
    d = daemon(layout, f"slurmd-{node}")
    if crash:
        pid = live_pid(d)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        _kill_namespace(layout, node)
    else:
        stop(d)


def _kill_namespace(layout: Layout, node: str, *, only_slurmd: bool = False) -> int:
    """SIGKILL every process in ``node``'s mount namespaces (slurmstepd and its jobs, and any
    slurmd of this node the pid file lost track of); the count.

    A process belongs to the node when its namespace has this folder's fake meter bound in (its
    mountinfo names ``<node_dir>/pm_counters``): namespace numbers are reused by the kernel, and
    another cluster beside this one (another folder) must never be touched. ``only_slurmd``:
    kill just slurmd processes (a stray one before a new slurmd starts).
    """
    meter = str(layout.node_dir(node) / "pm_counters")
    own_ns = os.readlink("/proc/self/ns/mnt")
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "mnt") == own_ns:
                continue  # never ours: the meter is mounted only inside the node's namespaces
            if meter not in (entry / "mountinfo").read_text():
                continue
            if only_slurmd and not (entry / "cmdline").read_bytes().startswith(b"slurmd\0"):
                continue
            os.kill(int(entry.name), signal.SIGKILL)
            killed += 1
        except (OSError, ProcessLookupError):
            continue
    return killed


def require_free_ports(layout: Layout) -> None:
    """Fail early, naming the port, when another process holds one of the cluster's ports."""
    ports = [layout.ctld_port, layout.dbd_port, layout.mysql_port]
    ports += [layout.slurmd_port(n.name) for n in NODES]
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
            try:
                probe.bind(("", port))
            except OSError as e:
                raise ClusterError(
                    f"port {port} is in use ({e.strerror}); pick another CARBOND_SLURM_PORT_BASE"
                    f" (now {layout.port_base}) or stop what holds it"
                ) from e


def up(layout: Layout, *, fresh: bool = False) -> float:
    """Bring the whole cluster up; seconds it took. Raises ClusterError with the logs on failure.

    A cluster already fully up is left as it is, unless ``fresh``: then it is stopped and rebuilt
    (no jobs, empty accounting).
    """
    started = time.monotonic()
    require_host()
    if not fresh and all(live_pid(d) is not None for d in daemons(layout)):
        _say(f"already up in {layout.root}")
        return 0.0
    down(layout, quiet=True)
    require_free_ports(layout)
    ensure_users()
    prepare(layout)
    start_munge(layout)
    start_mariadb(layout)
    start_slurmdbd(layout)
    start_fakepower(layout)
    start_slurmctld(layout)
    for n in NODES:
        start_slurmd(layout, n.name)
    return time.monotonic() - started


def down(layout: Layout, *, quiet: bool = False) -> None:
    """Stop everything ``up`` started, newest first, by pid file; leaves the folder for its logs."""
    if not (layout.root / MARKER).exists():
        if not quiet:
            _say(f"nothing to stop: {layout.root} is not a carbond Slurm folder")
        return
    if live_pid(daemon(layout, "slurmctld")) is not None:
        for user in ("root", *TEST_USERS):
            _run(["scancel", "--quiet", "-u", user], layout, check=False)
    for d in reversed(daemons(layout)):
        if stop(d) and not quiet:
            _say(f"stopped {d.name}")
    for n in NODES:
        killed = _kill_namespace(layout, n.name)
        if killed and not quiet:
            _say(f"killed {killed} leftover job process(es) on {n.name}")


def status(layout: Layout) -> bool:
    """Print each process and the nodes; True when every process is up."""
    all_up = True
    for d in daemons(layout):
        pid = live_pid(d)
        all_up &= pid is not None
        print(f"{d.name:16} {'up, pid ' + str(pid) if pid else 'down'}")
    if live_pid(daemon(layout, "slurmctld")) is not None:
        print(
            _run(
                ["sinfo", "-N", "-O", "NodeList,Partition,StateLong,Gres,GresUsed"],
                layout,
                check=False,
            )
        )
    print(f"SLURM_CONF={layout.slurm_conf}")
    return all_up


def set_watts(layout: Layout, node: str, watts: float) -> None:
    """Change ``node``'s fake power draw (watts) from now on."""
    path = layout.watts_file(node)
    tmp = path.with_name(".watts.tmp")
    tmp.write_text(f"{watts:g}\n")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m tests.slurm.localcluster", description=__doc__
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="bring the cluster up (installs packages when root and missing)")
    sub.add_parser("down", help="stop every process `up` started")
    sub.add_parser("status", help="which processes run; exit 1 unless all do")
    for name in ("stop-node", "start-node"):
        p = sub.add_parser(name)
        p.add_argument("node", choices=[n.name for n in NODES])
        if name == "stop-node":
            p.add_argument(
                "--crash", action="store_true", help="also kill the node's job processes"
            )
    p = sub.add_parser("set-watts")
    p.add_argument("node", choices=[n.name for n in NODES])
    p.add_argument("watts", type=float)
    args = parser.parse_args(argv)
    layout = Layout.from_env()
    try:
        if args.command == "up":
            took_s = up(layout)
            _say(f"up in {took_s:.1f} s: export SLURM_CONF={layout.slurm_conf}")
        elif args.command == "down":
            down(layout)
        elif args.command == "status":
            return 0 if status(layout) else 1
        elif args.command == "stop-node":
            stop_slurmd(layout, args.node, crash=args.crash)
        elif args.command == "start-node":
            start_slurmd(layout, args.node)
        elif args.command == "set-watts":
            set_watts(layout, args.node, args.watts)
    except (ClusterError, subprocess.CalledProcessError, OSError) as e:
        detail = ""
        if isinstance(e, subprocess.CalledProcessError):
            detail = f"\n{(e.stderr or b'')!s}"
        _say(f"{args.command} failed: {e}{detail}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
