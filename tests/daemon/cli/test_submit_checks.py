"""``carbond submit`` warns at once about a job the daemon would fail, and still appends it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from daemon.cli import main

T4_ONLY = '[[regions]]\nname = "qc"\nzone = "CA-QC"\ngpus = ["T4"]\n'
ADA = '[[regions]]\nname = "ca"\nzone = "US-CAL-CISO"\ngpus = ["RTX6000-Ada"]\n'
DISCOVER = '[[regions]]\nname = "node"\nzone = "CA-QC"\ngpus = "discover"\n'


def _submit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], regions: str, *argv: str
) -> tuple[list[str], list[str]]:
    config = tmp_path / "carbond.toml"
    config.write_text(f'state_dir = "{tmp_path}"\n{regions}')
    code = main(["submit", "--config", str(config), "--json", *argv, "--", "/bin/true"])
    out, err = capsys.readouterr()
    assert code == 0, err
    warnings = json.loads(out)["warnings"]
    assert err.splitlines() == [f"carbond: warning: {w}" for w in warnings]
    assert (tmp_path / "queue.jsonl").read_text().count("\n") == 1  # appended all the same
    return warnings, err.splitlines()


def test_a_job_too_big_for_every_configured_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [warning], _ = _submit(tmp_path, capsys, T4_ONLY, "--model", "llama-3.1-70b")
    assert re.fullmatch(
        r"fits no configured GPU: llama-3\.1-70b at fp16, batch 1, needs \d+\.\d GB per GPU, "
        r"the largest offers \d+\.\d GB usable \(T4\): the daemon will reject it",
        warning,
    ), warning


def test_a_deadline_already_past(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [warning], _ = _submit(
        tmp_path, capsys, T4_ONLY, "--model", "llama-1b", "--deadline", "2020-01-01T00:00:00Z"
    )
    assert warning == (
        "deadline 2020-01-01T00:00:00+00:00 is already past: the job will expire without running"
    )


def test_a_deadline_the_fastest_gpu_cannot_meet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [warning], _ = _submit(tmp_path, capsys, ADA, "--model", "llama-3.1-8b",
                           "--requests", "100000", "--deadline", "+1h")  # fmt: skip
    assert warning.startswith("the job needs about ")
    assert "on the fastest configured GPU (RTX6000-Ada) but its deadline is 1.0 h away" in warning


@pytest.mark.parametrize(
    ("deadline", "said"),
    [("+10m", "10 min"), ("+45s", "45 s"), ("+59m50s", "1.0 h"), ("+2h30m", "2.5 h")],
)
def test_the_deadline_is_said_in_the_unit_a_person_would_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], deadline: str, said: str
) -> None:
    """A deadline ten minutes away was said to be "0.2 h away"."""
    [warning], _ = _submit(tmp_path, capsys, ADA, "--model", "llama-3.1-8b",
                           "--requests", "100000", "--deadline", deadline)  # fmt: skip
    assert f"but its deadline is {said} away" in warning


@pytest.mark.parametrize("regions", [ADA, DISCOVER])
def test_no_warning_when_it_fits_or_the_gpus_are_unknown_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], regions: str
) -> None:
    warnings, _ = _submit(tmp_path, capsys, regions, "--model", "llama-3.1-70b"
                          if regions != ADA else "llama-1b", "--deadline", "+8h")  # fmt: skip
    assert warnings == []


def test_a_config_with_no_region_is_warned_about_and_the_job_queued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config with no ``[[regions]]`` took the job silently, though no daemon of it can
    run one (``carbond run`` refuses to start): the job is still queued (a region may be
    added before the daemon starts), with one warning naming the config."""
    [warning], err = _submit(tmp_path, capsys, "", "--model", "llama-1b", "--deadline", "+8h")
    assert warning == (
        f"no [[regions]] configured ({tmp_path / 'carbond.toml'}): no daemon can run the job "
        "until a region is added (`carbond run` refuses to start without one); it is queued "
        "all the same"
    )
    assert err == [f"carbond: warning: {warning}"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("--model", "llama-3.1-405b", "--precision", "fp32"),
         r"fits no GPU a region declares or may discover: llama-3\.1-405b at fp32, batch 1, "
         r"needs \d+\.\d GB per GPU, the largest offers \d+\.\d GB usable \(B200\): the daemon "
         r"will reject it"),
        (("--model", "llama-3.1-70b", "--requests", "100000", "--deadline", "+10m"),
         r"the job needs about \d+\.\d h on the fastest GPU a region declares or may discover "
         r"\(B200\) but its deadline is 10 min away: it will likely expire or miss it"),
        (("--model", "llama-1b", "--min-gpu-memory-gb", "500"),
         r"fits no GPU a region declares or may discover: asks for at least 500 GB of GPU "
         r"memory, the largest offers 192 GB \(B200\): the daemon will reject it"),
        # the job may use only the declared region: checked as without a discovering one
        (("--model", "llama-3.1-70b", "--region", "qc"),
         r"fits no configured GPU: llama-3\.1-70b at fp16, .* \(T4\): the daemon will reject it"),
    ],
)  # fmt: skip
def test_what_no_gpu_a_region_may_discover_can_run_is_still_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], expected: str
) -> None:
    """With any region discovering its GPUs, submit checked nothing: a 1.6 TB model or a
    340-hour job due in ten minutes was appended without a word."""
    [warning], _ = _submit(tmp_path, capsys, DISCOVER + T4_ONLY, *argv)
    assert re.fullmatch(expected, warning), warning


def test_a_tensor_parallel_size_the_heads_do_not_split_over_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text(f'state_dir = "{tmp_path}"\n{ADA}')
    argv = ["submit", "--config", str(config), "--model", "llama-3.1-8b", "--tensor-parallel", "3"]
    assert main([*argv, "--", "/bin/true"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(
        "carbond: error: invalid job: field 'tensor_parallel': llama-3.1-8b's 32 attention heads"
    )
    assert not (tmp_path / "queue.jsonl").exists()


V100 = '[[regions]]\nname = "ca"\nzone = "US-CAL-CISO"\ngpus = ["V100"]\n'


def test_a_vllm_fp8_job_where_only_v100s_are_configured_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """vLLM serves no fp8 on Volta: the planner places such a job on no V100 (as a model too
    big), so submit says the daemon will reject it; with a T4 beside them it fits there."""
    argv = ("--model", "llama-1b", "--runtime", "vllm", "--precision", "fp8")
    [warning], _ = _submit(tmp_path, capsys, V100, *argv)
    assert warning == (
        "fits no configured GPU: vLLM serves no fp8 on V100 (Volta, compute capability 7.0; "
        "fp8 needs 7.5): use fp16, int8 or int4: the daemon will reject it"
    )
    (tmp_path / "queue.jsonl").unlink()
    warnings, _ = _submit(tmp_path, capsys, V100 + T4_ONLY, *argv)
    assert warnings == []
    (tmp_path / "queue.jsonl").unlink()
    # too big for the V100 as well: its precision is named, not its memory at fp8
    big = ("--model", "llama-3.1-70b", *argv[2:])
    assert _submit(tmp_path, capsys, V100, *big)[0] == [warning]
