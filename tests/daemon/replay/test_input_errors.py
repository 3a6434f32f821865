"""``carbond replay``'s errors about its options and inputs name the option or file to fix."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.ledger import Ledger


def _replay(trace: Path, cluster: Path, intensity: list[Path], *extra: str) -> list[str]:
    args = ["replay", "--jobs", str(trace), "--jobs-format", "azure", "--cluster", str(cluster)]
    for path in intensity:
        args += ["--intensity", str(path)]
    return [*args, "--start", "2023-06-05", "--days", "0.1", *extra]


@pytest.mark.parametrize(("option", "what"), [("--model", "model"), ("--runtime", "runtime")])
def test_an_unknown_model_or_runtime_names_its_option(
    trace: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str], option: str, what: str,
) -> None:  # fmt: skip
    """``--model nope`` said "unknown model 'nope' (known: ...)", naming no option."""
    assert main(_replay(trace, cluster_file, intensity_files, option, "nope")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"carbond: error: {option} nope: unknown {what}")


def test_a_zone_without_intensity_names_its_regions_and_the_cluster_file(
    trace: Path, cluster_file: Path, intensity_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The error named the zone and the --intensity files, not which region of which cluster
    file needs it (to drop the region, or fix a mistyped zone, in that file)."""
    text = cluster_file.read_text(encoding="utf-8")
    text += (
        '\n[[regions]]\nname = "la"\nzone = "US-CAL-CISO"\ngpus = [{ type = "T4", count = 1 }]\n'
    )
    cluster_file.write_text(text.replace('zone = "CA-QC"', 'zone = "CA-QX"'), encoding="utf-8")
    assert main(_replay(trace, cluster_file, intensity_files[:1])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "carbond: error: no intensity for zone(s) CA-QX (region quebec), US-CAL-CISO (regions "
        f"california, la) of cluster file {cluster_file} in the --intensity files (found: CA-QC)"
    ]


def _jobs_error(
    jobs: Path,
    fmt: str | None,
    cluster: Path,
    intensity: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> str:
    args = _replay(jobs, cluster, intensity)
    args[args.index("--jobs-format") : args.index("--jobs-format") + 2] = (
        [] if fmt is None else ["--jobs-format", fmt]
    )
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_jobs_file_read_in_another_format_names_the_one_it_looks_like(
    trace: Path, cluster_file: Path, intensity_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The Azure CSV of docs/policies.md without `--jobs-format azure` (the default is carbond's
    JSON lines) was "no good row (N bad; FILE:1: not JSON (Expecting value); row skipped)",
    and an operator's ledger.db without `--jobs-format ledger` "not UTF-8 text": neither said
    which format the file is."""
    err = _jobs_error(trace, None, cluster_file, intensity_files, capsys)
    assert err.startswith(f"carbond: error: {trace}: no good row (")
    assert err.endswith(
        "; it looks like an Azure trace's CSV (TIMESTAMP,ContextTokens,GeneratedTokens): give "
        "--jobs-format azure"
    ), err

    ledger = trace.with_name("ledger.db")
    Ledger.open(ledger).close()
    err = _jobs_error(ledger, None, cluster_file, intensity_files, capsys)
    assert err == (
        f"carbond: error: {ledger}: not UTF-8 text; it looks like a SQLite database, as a "
        "carbond ledger.db is: give --jobs-format ledger"
    )

    err = _jobs_error(trace, "ledger", cluster_file, intensity_files, capsys)
    assert err.endswith("; it looks like an Azure trace's CSV (TIMESTAMP,ContextTokens,"
                        "GeneratedTokens): give --jobs-format azure"), err  # fmt: skip


def test_a_bad_file_of_the_format_it_looks_like_gets_no_hint(
    tmp_path: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """An Azure CSV read as azure whose rows are all bad is that file's error alone."""
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\nnot a time,1,1\n", encoding="utf-8")
    err = _jobs_error(bad, "azure", cluster_file, intensity_files, capsys)
    assert (
        err.startswith(f"carbond: error: {bad}: no good row (1 bad; ") and "looks like" not in err
    )


def test_every_missing_input_file_is_named_at_once(
    tmp_path: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A missing ``--jobs`` file was named only after the cluster and intensity files had been
    read and checked (a mistyped zone failed first), and a second missing file only on the
    next run: every file that cannot be opened is now named in one line, before any is read."""
    jobs, intensity = tmp_path / "nojobs.csv", tmp_path / "nointensity.csv"
    text = cluster_file.read_text(encoding="utf-8")
    cluster_file.write_text(text.replace('zone = "CA-QC"', 'zone = "CA-QX"'), encoding="utf-8")
    assert main(_replay(jobs, cluster_file, [*intensity_files, intensity, tmp_path])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"carbond: error: --intensity {intensity}: cannot read (No such file or directory); "
        f"--intensity {tmp_path}: cannot read (a directory, not a file); "
        f"--jobs {jobs}: cannot read (No such file or directory)"
    ]


def test_a_fifo_given_as_jobs_is_refused_not_waited_on(
    tmp_path: Path, cluster_file: Path, intensity_files: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """``--jobs FIFO`` with nothing writing to it: the up-front check opened it without
    blocking, but reading the trace then opened it again plainly and hung until something
    wrote to the FIFO (for ever with no writer). A FIFO is refused now, named in one line."""
    fifo = tmp_path / "jobs.csv"
    os.mkfifo(fifo)
    answer: list[int] = []
    replay = threading.Thread(
        target=lambda: answer.append(main(_replay(fifo, cluster_file, intensity_files))),
        daemon=True,
    )
    replay.start()
    replay.join(timeout=30)
    hung = replay.is_alive()
    if hung:  # release the blocked reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        replay.join(timeout=30)
    assert not hung
    err = capsys.readouterr().err.strip().splitlines()
    assert answer == [2] and err == [
        f"carbond: error: --jobs {fifo}: cannot read (a FIFO, not a regular file: save it to a "
        "file first)"
    ], err
