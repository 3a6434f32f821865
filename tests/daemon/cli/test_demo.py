"""``carbond demo``: the daemon on the paper's simulated setup finishes every job."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli import build_parser
from daemon.cli.demo import DEMO_JOBS, DemoResult, run_demo
from daemon.cli.demo_cmd import print_demo
from daemon.errors import UsageError
from daemon.reports.render import share
from policies import policy_names


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return run_demo(tmp_path_factory.mktemp("demo"))


def test_every_job_is_decided_and_run_to_success(demo: DemoResult) -> None:
    assert len(demo.jobs) == len(DEMO_JOBS)
    assert {j.state for j in demo.jobs} == {"succeeded"}
    assert all(j.started_at is not None and j.finished_at is not None for j in demo.jobs)
    assert all(j.region is not None and j.reason for j in demo.jobs)
    assert demo.total_g == pytest.approx(sum(j.expected_total_g or 0 for j in demo.jobs))
    assert demo.run_now_total_g > 0


def test_the_carbon_aware_policy_beats_run_now(demo: DemoResult) -> None:
    if "carbon-window" not in policy_names():
        pytest.skip("carbon-window is not registered in this build: the demo falls back")
    assert demo.policy == "carbon-window"
    assert demo.total_g < 0.5 * demo.run_now_total_g
    assert demo.saved_g == pytest.approx(demo.run_now_total_g - demo.total_g)


def test_run_now_is_its_own_baseline_and_deterministic(tmp_path: Path) -> None:
    one = run_demo(tmp_path / "one", policy="run-now")
    two = run_demo(tmp_path / "two", policy="run-now")

    assert one.policy == "run-now" and one.saved_g == 0
    assert all(j.waited_s == 0 for j in one.jobs)  # five GPUs, staggered jobs: no wait
    assert one.jobs == two.jobs  # same embedded inputs: the same story
    assert not (tmp_path / "one" / "carbon-window").exists()


def test_the_command_prints_json_and_keeps_its_state_dir(tmp_path: Path) -> None:
    # A process of its own: the command configures logging, which must not leak into tests.
    argv = ["demo", "--json", "--policy", "run-now", "--state-dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "daemon", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    payload = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert [j["state"] for j in payload["jobs"]] == ["succeeded"] * len(DEMO_JOBS)
    assert payload["saved_g"] == pytest.approx(payload["run_now_total_g"] - payload["total_g"])
    assert [r["zone"] for r in payload["regions"]] == ["CA-QC", "US-CAL-CISO", "US-NW-PACE"]
    assert (tmp_path / "run-now" / "ledger.db").is_file()
    assert (tmp_path / "run-now" / "queue.jsonl").is_file()
    assert payload["state_dirs"] == [str(tmp_path / "run-now")]  # the ledger's, not its parent


def test_without_a_state_dir_the_demo_says_its_state_is_gone() -> None:
    """Without --state-dir the demo ran in a temporary directory, removed before it printed
    "state in /tmp/carbond-demo-...": a path that `carbond jobs --state-dir` then found
    without a ledger. It says the state was temporary and how to keep it."""
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "demo", "--policy", "run-now"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[2]
    assert header.endswith(
        " s wall; state in a temporary directory, removed (--state-dir DIR keeps it)"
    ), header
    assert "carbond-demo-" not in done.stdout


def test_the_state_line_names_each_run_s_ledger_dir(
    demo: DemoResult, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --state-dir DIR the line named DIR, which holds no ledger (each run's is in
    DIR/<policy>/): `carbond jobs --state-dir DIR` said "no ledger"."""
    print_demo(demo, 0.0)
    header = capsys.readouterr().out.splitlines()[2]

    carbon, baseline = demo.state_dir / "carbon-window", demo.state_dir / "run-now"
    assert header.endswith(f" s wall; state in {carbon}, the baseline's in {baseline}"), header
    assert (carbon / "ledger.db").is_file() and (baseline / "ledger.db").is_file()


def test_the_state_dir_help_names_only_what_a_demo_keeps(demo: DemoResult) -> None:
    """`--state-dir`'s help said each run's "queue, ledger and logs" stay in DIR/<policy>/;
    a demo leaves its queue files and ledger there but no logs/ (the simulated executor writes
    no job files, and the daemon's log events go to stderr), so a user went looking for logs
    that never were. Each thing the help names is in the fixture's kept state dir."""
    sub = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["demo"]
    text = next(a.help or "" for a in sub._actions if "--state-dir" in a.option_strings)
    says = re.search(r"keep each run's (.+?) in DIR/", text)
    assert says, text
    kept = {p.name for p in (demo.state_dir / "carbon-window").iterdir()}
    named = {"queue": "queue.jsonl", "ledger": "ledger.db", "logs": "logs"}
    promised = [word for word in named if re.search(rf"\b{word}\b", says.group(1))]
    assert promised, text
    missing = [f"{word} ({named[word]})" for word in promised if named[word] not in kept]
    assert missing == [], f"--state-dir's help names {missing}, not kept in {sorted(kept)}"


def test_a_state_dir_an_earlier_demo_used_is_refused(
    demo: DemoResult, capsys: pytest.CaptureFixture[str]
) -> None:
    """`carbond demo --state-dir DIR` run again (without `make demo`'s `rm -rf`) found the
    seven jobs' ids in its ledger, ignored them as resubmissions and printed the earlier run
    back as a new one (of 25 ticks at the default `--tick-s`). It is refused (one line,
    exit 2) before anything is appended or simulated."""
    from daemon.cli import main

    queue = demo.state_dir / "carbon-window" / "queue.jsonl"
    before = queue.read_bytes()
    used = re.escape("already holds an earlier demo's queue.jsonl and ledger.db")
    with pytest.raises(UsageError, match=used):
        run_demo(demo.state_dir)
    assert main(["demo", "--tick-s", "600", "--state-dir", str(demo.state_dir)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"carbond: error: --state-dir {demo.state_dir}: {demo.state_dir / 'carbon-window'} "
        "already holds an earlier demo's queue.jsonl and ledger.db, which this one would print "
        "again as its own run; remove it or give another --state-dir\n"
    )
    # run-now alone uses only run-now/, which the fixture's baseline run filled as well
    with pytest.raises(UsageError, match=re.escape(f"{demo.state_dir / 'run-now'} already holds")):
        run_demo(demo.state_dir, policy="run-now")
    assert queue.read_bytes() == before


OPERATIONS = Path(__file__).resolve().parents[3] / "docs" / "operations.md"
_VOLATILE = re.compile(r"\d+\.\d s wall")


def _demo_block(text: str) -> tuple[int, int]:
    """Start and end offsets of the output block under docs/operations.md's demo section."""
    section = text.index("## `carbond demo`")
    start = text.index("```text\n", section) + len("```text\n")
    return start, text.index("```", start)


def _normalised(text: str) -> list[str]:
    return [_VOLATILE.sub("<wall> s wall", line).rstrip()
            for line in text.splitlines()]  # fmt: skip


def test_the_operations_guide_shows_what_make_demo_prints(
    demo: DemoResult, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make demo` runs `carbond demo --state-dir demo-out/state`; the guide shows its output
    (piped: tables 200 columns wide) but for the wall time, which it writes ``<wall> s wall``
    (until 2026-12-07 a made-up ``1.2 s wall`` this test wrote, read as a measurement).
    CARBOND_UPDATE_DOCS=1 rewrites the guide's block from this run instead of comparing."""
    print_demo(demo, 0.0)
    printed = capsys.readouterr().out
    printed = _VOLATILE.sub("<wall> s wall", printed.replace(str(demo.state_dir), "demo-out/state"))
    text = OPERATIONS.read_text(encoding="utf-8")
    start, end = _demo_block(text)
    if os.environ.get("CARBOND_UPDATE_DOCS") == "1":
        lines = "\n".join(line.rstrip() for line in printed.splitlines()) + "\n"
        text = text[:start] + lines + text[end:]
        OPERATIONS.write_text(text, encoding="utf-8")
        start, end = _demo_block(text)
    assert not _VOLATILE.search(text[start:end]), "the guide shows a wall time as if measured"
    assert _normalised(text[start:end]) == _normalised(printed), (
        "docs/operations.md's demo output differs from what the demo prints now; rerun this "
        "test with CARBOND_UPDATE_DOCS=1 to rewrite it, then read the prose around it"
    )


@pytest.mark.parametrize("tick", ["0", "-300", "inf", "nan", "abc", "1e-9", "1e300"])
def test_a_tick_that_would_never_end_the_demo_is_refused(
    tick: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`carbond demo --tick-s 0` used to simulate forever (the clock never moved on); a
    microsecond tick would take ~10^11 ticks, and 1e300 s overflows the simulated clock."""
    from daemon.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["demo", f"--tick-s={tick}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --tick-s: {tick!r}: a number of seconds from 1 to 86400" in err


def test_the_total_line_writes_its_saving_to_one_decimal_as_the_report_does(
    demo: DemoResult, capsys: pytest.CaptureFixture[str]
) -> None:
    """The total line wrote a whole percent (``saved 61.26 g (80%)``) where the report and
    each job's reason write one decimal (``79.8 %``, ``share()``)."""
    print_demo(demo, 0.0)
    total = capsys.readouterr().out.splitlines()[-1]
    saving = share(demo.saved_g / demo.run_now_total_g)
    assert total.endswith(f": saved {demo.saved_g:.2f} g ({saving})."), total
    assert re.search(r"\(\d+\.\d%\)\.$", total), total
