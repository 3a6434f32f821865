"""The Slurm argv and batch-script builders."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.executors.slurm import joblogs
from daemon.executors.slurm.commands import (
    Submission,
    Target,
    batch_script,
    cluster_of,
    gres_request,
    job_name,
    sacct_argv,
    sbatch_argv,
    scancel_argv,
    slurm_time,
    update_argv,
)
from daemon.executors.slurm.runner import SubprocessRunner
from daemon.executors.slurm.scontrol import nodes_argv, ping_argv

HOSTILE = ("printf", "%s\\0", "a b", "$HOME", "it's", "`id`", "; rm -rf /", "\n", "*")


def _sub(**kw: object) -> Submission:
    base: dict[str, object] = {
        "job_id": "j1",
        "argv": ("python", "-c", "print(1)"),
        "gpus": 2,
        "log_dir": Path("/var/lib/carbond/logs"),
        "chdir": Path("/home/ada"),
    }
    base.update(kw)
    return Submission(**base)  # type: ignore[arg-type]  # test helper over all fields


def test_the_script_passes_every_word_through_unchanged(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    sub = _sub(argv=HOSTILE, env={"CARBOND_JOB_ID": "j1 x"}, chdir=tmp_path)
    script.write_text(batch_script(sub))
    out = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, check=True)
    assert out.stdout.split("\0")[:-1] == list(HOSTILE[2:])


def test_the_script_exports_the_environment_quoted(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    env = {"CARBOND_JOB_ID": "j'1", "BAD KEY": "x"}
    sub = _sub(argv=("sh", "-c", 'echo "$CARBOND_JOB_ID"'), env=env, chdir=tmp_path)
    script.write_text(batch_script(sub))
    out = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, check=True)
    assert out.stdout == "j'1\n"
    assert "BAD KEY" not in script.read_text()


def test_the_script_runs_the_job_in_its_directory_or_fails_saying_why(tmp_path: Path) -> None:
    # slurmstepd runs a job whose --chdir its user cannot enter in /tmp (it only logs it):
    # the script enters the directory itself, and a job that cannot start there fails
    where = tmp_path / "it's here"
    where.mkdir()
    script = tmp_path / "job.sh"
    script.write_text(batch_script(_sub(argv=("pwd",), chdir=where)))
    out = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, cwd="/",
                         check=False)  # fmt: skip
    assert (out.returncode, out.stdout) == (0, f"{where}\n")

    missing = tmp_path / "gone $HOME"
    script.write_text(batch_script(_sub(argv=("touch", str(tmp_path / "ran")), chdir=missing)))
    out = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, cwd="/",
                         check=False)  # fmt: skip
    assert out.returncode == 1
    assert f"carbond: job j1 cannot enter its working directory {missing}" in out.stderr
    assert not (tmp_path / "ran").exists()


def test_sbatch_argv_names_partition_gres_logs_and_begin() -> None:
    target = Target("alpha", cluster="west", account="ml", qos="low", gres="gpu",
                    sbatch_options=("--mem=4G",))  # fmt: skip
    begin = datetime(2026, 12, 4, 22, 0, 0, 250_000, tzinfo=UTC)
    argv = sbatch_argv("sbatch", target, _sub(begin=begin, node="n1", comment="nightly"))
    assert argv[0] == "sbatch" and "--parsable" in argv
    for expected in (
        "--job-name=carbond-j1", "--partition=alpha", "--clusters=west", "--gres=gpu:2",
        "--output=/var/lib/carbond/logs/j1.out", "--error=/var/lib/carbond/logs/j1.err",
        "--chdir=/home/ada", "--account=ml", "--qos=low", "--nodelist=n1",
        "--begin=2026-12-04T22:00:01", "--comment=nightly", "--mem=4G",
    ):  # fmt: skip
        assert expected in argv
    plain = sbatch_argv("sbatch", Target("beta"), _sub())
    assert not [
        a for a in plain if a.startswith(("--begin", "--clusters", "--account", "--nodelist"))
    ]


def test_a_job_name_with_control_characters_still_gives_an_argv_that_runs() -> None:
    argv = sbatch_argv("sbatch", Target("alpha"), _sub(comment="night\0ly\nrun\tb é"))
    assert "--comment=night?ly?run?b é" in argv
    subprocess.run(["true", *argv], check=True)  # a NUL raised ValueError here


def test_update_moves_partition_node_and_start_or_releases_now() -> None:
    at = datetime(2026, 12, 4, 22, 30, tzinfo=UTC)
    assert update_argv("scontrol", Target("beta"), "7", start=at, node="n2", gres="gpu:l4:1") == [
        "scontrol", "update", "JobId=7", "Partition=beta", "ReqNodeList=n2", "Gres=gpu:l4:1",
        "StartTime=2026-12-04T22:30:00",
    ]  # fmt: skip
    released = update_argv("scontrol", Target("alpha"), "7", start=None, node=None, gres="gpu:1")
    assert released[-1] == "StartTime=now"


def test_a_gres_request_names_the_planned_type_when_it_has_one() -> None:
    assert gres_request("gpu", "t4", 2) == "gpu:t4:2"
    assert gres_request("gpu", "", 1) == "gpu:1"
    typed = sbatch_argv("sbatch", Target("alpha"), _sub(gres_type="a100", gpus=2))
    assert "--gres=gpu:a100:2" in typed


def test_names_and_times() -> None:
    assert job_name("abc") == "carbond-abc"
    assert slurm_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05"


def test_each_command_names_its_cluster_and_ping_asks_the_same_one() -> None:
    assert ping_argv("scontrol", None) == ["scontrol", "ping"]
    assert ping_argv("scontrol", "west") == ["scontrol", "--clusters=west", "ping"]
    assert cluster_of(nodes_argv("scontrol", "west")) == "west"
    assert cluster_of(scancel_argv("scancel", None, "7")) is None
    assert cluster_of(sbatch_argv("sbatch", Target("a", cluster="east"), _sub())) == "east"


def test_sacct_by_name_is_only_ever_of_the_owners_jobs() -> None:
    """Any user may name a job ``carbond-<id>``: a lookup by name of every user's jobs
    (``--allusers``, the fallback without a uid) could adopt or cancel theirs."""
    argv = sacct_argv("sacct", None, name="carbond-j1", uid=1000)
    assert "--uid=1000" in argv and "--allusers" not in argv
    with pytest.raises(ValueError, match="uid"):
        sacct_argv("sacct", None, name="carbond-j1")


def test_slurm_commands_run_with_umask_077_and_the_job_with_022(tmp_path: Path) -> None:
    # Slurm creates a job's missing --output/--error with sbatch's umask (SLURM_UMASK): the
    # daemon's 022 made them world-readable; the job itself still gets 022, as a local job
    umask = SubprocessRunner()(["/bin/sh", "-c", "umask"])
    assert umask.stdout.strip() == "0077"
    script = tmp_path / "job.sh"
    script.write_text(batch_script(_sub(argv=("sh", "-c", "umask"), chdir=tmp_path)))
    out = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True, check=True,
                         umask=0o077)  # fmt: skip
    assert out.stdout == "0022\n"


def test_a_command_the_job_s_path_lacks_exits_127_saying_so_and_carbond_reads_it_back(
    tmp_path: Path,
) -> None:
    """Slurm records only a job's exit code, so a command not found read ``exit code 127:
    slurm FAILED``. The script checks the command first (``command -v``, the lookup ``exec``
    makes) and ends its ``.err`` with ``carbond: command not found: NAME``, which
    :func:`joblogs.not_found` reads back; a job whose own command exits 127, or whose
    ``.err`` is a link, is not said to be not found."""
    odd = "no such 'tool' $HOME"
    script = tmp_path / "job.sh"
    script.write_text(batch_script(_sub(argv=(odd, "serve"), chdir=tmp_path)))
    err = tmp_path / "j1.err"
    with err.open("w") as stderr:
        out = subprocess.run(["/bin/sh", str(script)], stderr=stderr, check=False)
    assert out.returncode == 127
    assert joblogs.not_found(tmp_path, "j1") == f"command not found: {odd}"

    script.write_text(batch_script(_sub(argv=("sh", "-c", "echo x >&2; exit 127"),
                                        chdir=tmp_path)))  # fmt: skip
    with err.open("a") as stderr:
        out = subprocess.run(["/bin/sh", str(script)], stderr=stderr, check=False)
    assert out.returncode == 127
    assert joblogs.not_found(tmp_path, "j1") is None  # its own 127: found, ran, exited so

    (tmp_path / "j2.err").write_text("x" * 10_000 + "\ncarbond: command not found: a\x1bb\n")
    assert joblogs.not_found(tmp_path, "j2") == "command not found: a?b"
    (tmp_path / "j3.err").symlink_to(tmp_path / "j2.err")
    assert joblogs.not_found(tmp_path, "j3") is None
    assert joblogs.not_found(tmp_path, "gone") is None


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_a_command_found_but_not_executable_exits_126_saying_so_and_carbond_reads_it_back(
    tmp_path: Path, shell: str
) -> None:
    """A Slurm job whose command exists but cannot be executed read ``exit code 126: slurm
    FAILED`` (dash even said 'command not found' for a file on PATH without execute
    permission: its ``command -v`` skips it), where the local executor says ``cannot start:
    ...``. The script names the file and why, exits 126, and :func:`joblogs.cannot_run` reads
    it back; under dash and bash alike (a cluster's /bin/sh may be either). A job whose own
    command exits 126 is not said to be unrunnable, and nothing the check sets reaches the
    job."""
    if not Path(shell).exists():
        pytest.skip(f"no {shell}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    plain = bin_dir / "tool"
    plain.write_text("#!/bin/sh\necho ran\n")
    plain.chmod(0o644)  # no execute bit: not even root may exec it
    (bin_dir / "adir").mkdir()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}

    def run(*argv: str) -> tuple[int, str | None, str]:
        script = tmp_path / "job.sh"
        script.write_text(batch_script(_sub(argv=argv, chdir=tmp_path, env=env)))
        with (tmp_path / "j1.err").open("w") as stderr:
            out = subprocess.run([shell, str(script)], stderr=stderr, stdout=subprocess.PIPE,
                                 text=True, check=False, env=env)  # fmt: skip
        return out.returncode, joblogs.cannot_run(tmp_path, "j1", out.returncode), out.stdout

    assert run("tool", "serve")[:2] == (
        126,
        f"cannot start: {plain}: not executable (no execute permission)",
    )
    assert run(str(plain))[:2] == (
        126,
        f"cannot start: {plain}: not executable (no execute permission)",
    )
    assert run("adir")[:2] == (126, f"cannot start: {bin_dir / 'adir'}: a directory")
    assert run("no-such-tool")[:2] == (127, "command not found: no-such-tool")
    assert run("sh", "-c", "echo x >&2; exit 126")[:2] == (126, None)  # its own 126
    code, why, out = run("sh", "-c", 'echo "${found-unset}|${dir-unset}|$IFS|$-"')
    assert (code, why) == (0, None)
    assert out.startswith("unset|unset| \t\n|") and "f" not in out.split("|")[-1]
    plain.chmod(0o755)
    assert run("tool")[2] == "ran\n"


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_a_command_the_kernel_will_not_run_says_so_from_the_shell_s_words(
    tmp_path: Path, shell: str
) -> None:
    """A job whose command is there and executable but cannot be run (its ``#!``
    interpreter missing, not a format the kernel runs) passes the script's check, then its
    ``exec`` fails: the shell exits 127 or 126 and its words end the ``.err``, which carbond
    did not read (``exit code 127: slurm FAILED``). It now says ``cannot start: FILE: ...``
    from them; dash's ``not found`` names the missing interpreter. A job whose own command
    exits 127 is still not said to be unrunnable. Slurm runs the script as ``slurm_script``
    (on the local cluster its ``.err`` read ``.../job00126/slurm_script: 2: exec: FILE: not
    found``)."""
    if not Path(shell).exists():
        pytest.skip(f"no {shell}")
    tool, binary = tmp_path / "tool", tmp_path / "binary"
    tool.write_text("#!/nonexistent/python3\nprint(1)\n")
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00garbage")
    for path in (tool, binary):
        path.chmod(0o755)
    (tmp_path / "spool").mkdir()
    script = tmp_path / "spool" / "slurm_script"

    def run(*argv: str) -> tuple[int, str | None]:
        script.write_text(batch_script(_sub(argv=argv, chdir=tmp_path, env={"PATH": "/bin"})))
        with (tmp_path / "j1.err").open("w") as stderr:
            code = subprocess.run([shell, str(script)], stderr=stderr, check=False).returncode
        return code, joblogs.cannot_run(tmp_path, "j1", code)

    code, why = run(str(tool))
    assert code in (126, 127) and why is not None and why.startswith(f"cannot start: {tool}: ")
    if Path(shell).resolve().name == "dash":
        assert why.endswith(": not found (its #! interpreter or loader is missing)")
    code, why = run(str(binary))
    assert code in (126, 127) and why is not None and why.startswith(f"cannot start: {binary}: ")
    assert "format error" in why.lower() or "cannot execute" in why
    assert run("sh", "-c", "echo x >&2; exit 127") == (127, None)  # its own 127


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_a_command_whose_name_starts_with_a_dash_runs_under_dash_and_bash(
    tmp_path: Path, shell: str
) -> None:
    """``exec -tool`` read the name as an option under bash (``exec: -t: invalid option``,
    exit 2), and dash's ``exec`` takes no ``--``: a command named ``-tool`` (on PATH, or a
    path ``-dir/tool``) ran locally (an argv list) but never on Slurm."""
    if not Path(shell).exists():
        pytest.skip(f"no {shell}")
    (tmp_path / "-dir").mkdir()
    for path in (tmp_path / "-tool", tmp_path / "-dir" / "tool"):
        path.write_text('#!/bin/sh\nprintf "%s|" "$0" "$@"\n')
        path.chmod(0o755)
    script = tmp_path / "job.sh"
    for argv, file in ((("-tool", "-a b", "c"), tmp_path / "-tool"),
                       (("-dir/tool", "-a b", "c"), tmp_path / "-dir" / "tool")):  # fmt: skip
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
        script.write_text(batch_script(_sub(argv=argv, chdir=tmp_path, env=env)))
        out = subprocess.run([shell, str(script)], capture_output=True, text=True, check=False)
        assert (out.returncode, out.stderr) == (0, "")
        ran, *args = out.stdout.split("|")
        assert ((tmp_path / ran).resolve(), args) == (file, ["-a b", "c", ""])
