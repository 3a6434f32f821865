"""``carbond submit`` through the real parser: the queue line it appends, and each job, file
or state dir it refuses with one line."""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.assemble_service import build_service
from daemon.executors.local import LocalExecutor
from daemon.intensity.providers import StaticIntensity
from daemon.ledger import Ledger
from daemon.queue.job_request import JobRequest
from daemon.queue.line import parse_line
from daemon.settings import Settings
from daemon.testing import FakeClock, RecordingExecutor
from tests.daemon.cli.cli_run import run_cli
from tests.daemon.helpers import PAPER_REGIONS, make_service

REPO = Path(__file__).resolve().parents[3]


def _queue_lines(state: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (state / "queue.jsonl").read_text().splitlines()]


def test_submit_appends_one_normalised_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys, "submit", "--state-dir", str(tmp_path), "--json", "--model", "llama-1b",
        "--requests", "8", "--deadline", "+8h", "--region", "qc", "--tag", "a", "--tag", "b",
        "--", "python", "-c", "print('--')",
    )  # fmt: skip
    assert code == 0
    payload = json.loads(out)
    [line] = _queue_lines(tmp_path)
    assert line["id"] == payload["job_id"]
    python = shutil.which("python")
    expected = os.path.abspath(python) if python else "python"  # resolved on the caller's PATH
    assert line["command"] == [expected, "-c", "print('--')"]
    # named by the word written, as the same line written by hand is (the path is for running)
    raw = parse_line(json.dumps({"model": "llama-1b", "command": ["python"]}), datetime.now(UTC))
    assert line["name"] == raw.name == "python"  # type: ignore[union-attr]
    assert line["cwd"] == os.getcwd()  # the job starts where submit ran
    assert line["tags"] == ["a", "b"]
    assert line["deadline"] == payload["deadline"]  # relative deadlines become absolute
    assert "user" not in line


def test_submit_from_a_file_or_stdin_with_flags_on_top(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"id": "f1", "model": "llama-1b", "command": ["true"],
                               "user": "root", "requests": 2}))  # fmt: skip
    assert run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--file", str(job),
                "--requests", "5")[0] == 0  # fmt: skip
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"id": "s1", "params_b": 3, "command": ["x"]}'))
    assert run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--file", "-")[0] == 0
    lines = _queue_lines(tmp_path)
    assert [(x["id"], x["requests"]) for x in lines] == [("f1", 5), ("s1", None)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "gpt-17", "--", "x"], "field 'model': unknown model"),
        (["--model", "llama-1b"], "field 'command': Field required"),
        (["--model", "llama-1b", "--batch-size", "0", "--", "x"], "field 'batch_size'"),
        (["--model", "llama-1b", "--deadline", "soon", "--", "x"], "field 'deadline'"),
        (["--file", "/nonexistent.json"], "/nonexistent.json"),
    ],
)
def test_submit_refuses_bad_jobs_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, "submit", "--state-dir", str(tmp_path), *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "queue.jsonl").exists()


def test_a_bad_field_of_a_job_file_names_the_file_and_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``submit --file job.json`` with ``"requests": "many"`` said ``invalid job: field
    'requests': ...``, the same as a bad ``--requests`` flag: which of the two, and where in
    the file, was left to guess. A field the file gives (and no flag replaces) is named with
    the file and the line that sets it; a flag's stays as it was."""
    job = tmp_path / "job.json"
    job.write_text('{\n  "model": "llama-1b",\n  "command": ["true"],\n  "requests": "many",\n'
                   '  "tags": ["a", 7]\n}\n')  # fmt: skip
    code, out, err = run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--file", str(job))
    assert (code, out) == (2, "")
    assert err == (f"carbond: error: invalid job: {job}:4: field 'requests': Input should be a "
                   f"valid integer; {job}:5: field "
                   "'tags.1': Input should be a valid string\n")  # fmt: skip
    code, _, err = run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--file", str(job),
                        "--requests", "0", "--tag", "b")  # fmt: skip
    assert code == 2
    assert err == ("carbond: error: invalid job: field 'requests': Input should be greater than "
                   "or equal to 1\n")  # fmt: skip
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"model": "llama-1b", "command": "true"}'))
    code, _, err = run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--file", "-")
    assert code == 2 and err.startswith("carbond: error: invalid job: stdin:1: field 'command'")
    assert not (tmp_path / "queue.jsonl").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'\xff{"model": "llama-1b"}', "not UTF-8 text (byte 0)"),
        (b'{"requests": ' + b"9" * 5000 + b"}", "not acceptable JSON: Exceeds the limit"),
        (b"[" * 100_000 + b"]" * 100_000, "not acceptable JSON: nested too deeply"),
    ],
    ids=["not-utf8", "huge-integer", "deep"],
)
def test_submit_file_json_cannot_read_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    """--file with such content was a traceback (UnicodeDecodeError, ValueError,
    RecursionError) and exit 1."""
    job = tmp_path / "job.json"
    job.write_bytes(content)
    code, out, err = run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--file", str(job),
                          "--", "/bin/true")  # fmt: skip
    assert (code, out) == (2, "")
    assert err.startswith(f"carbond: error: {job}: {message}") and err.count("\n") == 1
    assert not (tmp_path / "queue.jsonl").exists()


def test_submit_records_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "here")
    base = ("submit", "--state-dir", str(tmp_path), "--model", "llama-1b")
    assert run_cli(capsys, *base, "--", "/bin/true")[0] == 0
    assert run_cli(capsys, *base, "--cwd", "sub", "--", "/bin/true")[0] == 0
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"model": "llama-1b", "command": ["/bin/true"], "cwd": "/srv"}))
    assert run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--file", str(job))[0] == 0
    cwds = [line["cwd"] for line in _queue_lines(tmp_path)]
    assert cwds == [str(tmp_path / "here"), str(tmp_path / "here" / "sub"), "/srv"]


def test_submit_refuses_a_working_directory_it_cannot_enter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--model", "llama-1b",
                        "--cwd", str(tmp_path / "gone"), "--", "/bin/true")  # fmt: skip
    assert code == 2
    assert err == (
        f"carbond: error: --cwd: working directory {tmp_path / 'gone'}: No such file or directory\n"
    )
    assert not (tmp_path / "queue.jsonl").exists()


def test_submit_warns_about_a_program_not_on_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--model", "llama-1b",
                        "--", "carbond-no-such-program", "x")  # fmt: skip
    assert code == 0
    assert "warning: 'carbond-no-such-program' is not on your PATH" in err
    assert _queue_lines(tmp_path)[0]["command"] == ["carbond-no-such-program", "x"]


def _readme_submit_example() -> list[str]:
    """The README's own ``carbond submit ... -- python serve_batch.py`` line, as argv."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    [line] = [x for x in readme.splitlines() if "carbond submit" in x and "serve_batch.py" in x]
    argv = shlex.split(line.strip())
    assert argv[:2] == ["carbond", "submit"], line
    return argv[1:]


def test_the_readme_submit_example_runs_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user in their project directory, their venv's ``python`` on PATH, submits the README's
    line; the daemon (local executor, real processes) runs it there, with that python."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "serve_batch.py").write_text(
        "import pathlib, sys\npathlib.Path('served.txt').write_text(sys.prefix)\n"
    )
    monkeypatch.chdir(project)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin")
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "carbond.toml"  # the daemon's, as /etc/carbond/carbond.toml would be
    config.write_text(f'state_dir = "{state}"\n[[regions]]\nname = "ciso"\n'
                      'zone = "US-CAL-CISO"\ngpus = ["RTX6000-Ada", "RTX6000-Ada"]\n')  # fmt: skip
    monkeypatch.setenv("CARBOND_CONFIG", str(config))
    argv = _readme_submit_example()
    code, _, err = run_cli(capsys, *argv[:1], "--id", "readme", *argv[1:])
    assert (code, err) == (0, ""), err

    settings = Settings(state_dir=state, regions=PAPER_REGIONS[1:2], policy={"name": "run-now"})
    executor = LocalExecutor(log_dir=state / "logs", grace_s=1.0)
    with Ledger.open(state / "ledger.db") as ledger:
        service = build_service(settings, ledger, {"local": executor}, intensity=StaticIntensity())
        service.start(datetime.now(UTC))
        for _ in range(200):  # real processes: tick until the job has ended (at most ~10 s)
            service.tick(datetime.now(UTC))
            if ledger.job_state("readme") not in {"queued", "planned", "running"}:
                break
            time.sleep(0.05)
        assert ledger.job_state("readme") == "succeeded", (
            state / "logs" / "readme.err"
        ).read_text()
    assert (project / "served.txt").read_text() == sys.prefix  # here, with the submitter's python


def test_submit_to_a_missing_state_dir_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong --state-dir is bad input, exit 2, as ``jobs``, ``status``, ``export`` and
    ``report`` answer it (docs/daemon.md, Exit codes); ``submit`` and ``cancel`` exited 1, a
    runtime failure, so a script could not tell a typo from a full disk."""
    missing = str(tmp_path / "nope")
    code, _, err = run_cli(capsys, "submit", "--state-dir", missing, "--model", "llama-1b", "--",
                        "true")  # fmt: skip
    assert code == 2
    assert err.startswith(f"carbond: error: {missing}: no such state directory (is the daemon")
    assert err.count("\n") == 1
    assert run_cli(capsys, "cancel", "j1", "--state-dir", missing)[0] == 2
    assert run_cli(capsys, "status", "j1", "--state-dir", missing)[0] == 2
    assert not Path(missing).exists()


def test_submit_before_a_daemon_set_up_the_state_dir_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user's first `carbond submit` into a state dir no daemon has started in yet (made by
    hand, no `queue.d`) said `...queue.d/UID.jsonl: cannot open the queue for appending: [Errno
    2] No such file or directory: ...`, exit 1, as for a full disk. It says that the spool
    directory is missing and why, exit 2, and creates nothing."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give the state dir to another uid")
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 4242, 4242)  # the daemon's, not the caller's: the caller's spool file then
    code, out, err = run_cli(capsys, "submit", "--state-dir", str(state), "--model", "llama-1b",
                          "--", "/bin/true")  # fmt: skip
    assert (code, out) == (2, "")
    assert err == (
        f"carbond: error: {state / 'queue.d'}: no such directory: no daemon has set up {state} "
        "yet (`carbond run` creates queue.d at its start, the unit's tmpfiles at install); "
        "nothing appended\n"
    )
    assert list(state.iterdir()) == []


@pytest.mark.parametrize("deadline", ["+9999999d", "+99999999999d", "0001-01-01T00:00:00+14:00"])
def test_submit_with_a_deadline_past_the_calendar_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], deadline: str
) -> None:
    code, _, err = run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--model", "llama-1b",
                        "--deadline", deadline, "--", "true")  # fmt: skip
    assert code == 2
    assert err.startswith("carbond: error: invalid job: field 'deadline': ")
    assert err.count("\n") == 1
    assert not (tmp_path / "queue.jsonl").exists()


def test_submit_refuses_an_id_that_exists_and_says_whose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It printed "submitted" with exit 0 while the job was not theirs (issue 13, defect 8)."""
    clock = FakeClock()
    service = make_service(tmp_path, RecordingExecutor(auto_finish=False))
    service.start(clock())
    fields = {"input_tokens": 1, "output_tokens": 1, "batch_size": 1, "command": ["true"]}
    request = JobRequest.from_json({"id": "taken", "name": "t", **fields})
    service.ledger.add_job(request, 4242, 4242, "queue.d/4242.jsonl:1", clock())
    assert run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--id", "mine", "--model",
                "llama-1b", "--", "true")[0] == 0  # fmt: skip
    service.tick(clock())
    before = (tmp_path / "queue.jsonl").read_bytes()
    code, _, err = run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--id", "taken",
                        "--model", "llama-1b", "--", "true")  # fmt: skip
    assert code == 2
    assert err == (
        "carbond: error: job id 'taken' already exists and belongs to uid 4242; "
        "choose another --id\n"
    )
    code, _, err = run_cli(capsys, "submit", "--state-dir", str(tmp_path), "--id", "mine",
                        "--model", "llama-1b", "--", "true")  # fmt: skip
    assert code == 2
    assert "job id 'mine' already exists: it is yours (running)" in err
    assert (tmp_path / "queue.jsonl").read_bytes() == before  # nothing appended


def test_submit_warns_when_an_unread_line_already_has_the_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--id X`` again while the first line with X is still unread (the daemon is down): the
    second line was appended silently, and the daemon ignores it; submit says so now (stderr
    and ``--json``'s ``warnings``), still appending it and exiting 0 (a resubmission)."""
    state = str(tmp_path)
    submit = ("submit", "--state-dir", state, "--model", "llama-1b")
    code, _, err = run_cli(capsys, *submit, "--id", "dup", "--", "true")
    assert code == 0 and "already has id" not in err, err
    code, out, err = run_cli(capsys, *submit, "--id", "other", "--json", "--", "true")
    assert code == 0, err  # another id: nothing to say about it
    assert not [w for w in json.loads(out)["warnings"] if "already has id" in w]

    code, out, err = run_cli(capsys, *submit, "--id", "dup", "--json", "--", "false")
    assert code == 0, err
    [warning] = [w for w in json.loads(out)["warnings"] if "already has id" in w]
    queue = tmp_path / "queue.jsonl"
    assert f"an unread line of {queue} already has id 'dup'" in warning
    assert "ignore this one" in warning
    assert "already has id 'dup'" in err and "warning:" in err, err
    assert [line["id"] for line in _queue_lines(tmp_path)] == ["dup", "other", "dup"]

    assert run_cli(capsys, "cancel", "dup", "--state-dir", state)[0] == 0
    code, _, err = run_cli(capsys, *submit, "--id", "dup", "--", "true")
    assert code == 0 and "a cancel for it follows there too" in err, err


def test_an_unread_line_the_daemon_will_reject_takes_no_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-written line with id X that the daemon will reject (here its command is a shell
    string) counted as X's job line: ``submit --id X`` warned that the daemon would read that
    job and ignore this one, and ``status X`` said X was submitted, though the daemon rejects
    that line and takes the new one. Unread lines are now judged by the daemon's own parser:
    no warning, and ``status`` finds the valid line."""
    state = str(tmp_path)
    queue = tmp_path / "queue.jsonl"
    submit = ("submit", "--state-dir", state, "--model", "llama-1b")
    assert run_cli(capsys, *submit, "--id", "first", "--", "true")[0] == 0  # sets up the file
    with queue.open("a") as handle:
        handle.write(json.dumps({"id": "dup", "model": "llama-1b", "command": "true"}) + "\n")
    code, _, err = run_cli(capsys, "status", "dup", "--state-dir", state)
    assert code == 2, err  # no job: only a line the daemon will reject has that id

    code, out, err = run_cli(capsys, *submit, "--id", "dup", "--json", "--", "true")
    assert code == 0, err
    assert not [w for w in json.loads(out)["warnings"] if "already has id" in w], out
    assert "already has id" not in err, err
    code, out, err = run_cli(capsys, "status", "dup", "--state-dir", state, "--json")
    assert code == 0 and json.loads(out)["state"] == "submitted", err
    code, out, err = run_cli(capsys, "jobs", "--state-dir", state, "--json")
    assert code == 0, err
    assert [r["job_id"] for r in json.loads(out)] == ["first", "dup"]

    code, out, err = run_cli(capsys, *submit, "--id", "dup", "--json", "--", "true")
    assert code == 0 and [w for w in json.loads(out)["warnings"] if "already has id" in w], out
