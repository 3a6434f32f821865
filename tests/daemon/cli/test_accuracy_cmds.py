"""``carbond advise`` and the interval / ``--prompts`` parts of ``carbond estimate``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.daemon.cli.cli_run import run_cli


@pytest.fixture(autouse=True)
def _no_site_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CARBOND_CONFIG", raising=False)
    monkeypatch.setattr("daemon.settings.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")


VLLM = ("estimate", "--model", "llama-3.1-8b", "--gpu", "H100", "--runtime", "vllm",
        "--precision", "bf16", "--batch-size", "32", "--zone", "US-CAL-CISO")  # fmt: skip


def test_estimate_reports_an_interval(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *VLLM, "--requests", "320", "--json")
    data = json.loads(out)
    assert code == 0 and data["calibration"] == "H100-SXM"
    assert data["interval_basis"] == "pooled"  # the V1 engine is a transfer: the wide band
    assert data["energy_j_p10"] < data["energy_j"] < data["energy_j_p90"]
    assert data["duration_s_p10"] < data["duration_s"] < data["duration_s_p90"]
    assert data["total_g_p10"] < data["total_g"] < data["total_g_p90"]


def test_estimate_interval_for_a_gpu_without_its_own_fit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(capsys, *VLLM[:4], "B200", *VLLM[5:], "--json")
    data = json.loads(out)
    assert code == 0 and (data["calibration"], data["interval_basis"]) == ("pooled", "pooled")


def test_estimate_table_shows_the_interval(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *VLLM)
    assert code == 0 and "10-90 % interval" in out and "H100-SXM fit, pooled residuals" in out


def test_per_prompt_estimates(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        '{"id": "short", "input_tokens": 100, "output_tokens": 50}\n'
        "\n"
        '{"prompt_tokens": 100, "completion_tokens": 500, "text": "ignored"}\n'
    )
    code, out, _ = run_cli(capsys, *VLLM, "--prompts", str(prompts), "--json")
    data = json.loads(out)
    assert code == 0
    short, long = data["prompts"]
    assert (short["id"], long["id"]) == ("short", "3")
    assert long["energy_j"] > 5 * short["energy_j"]  # ten times the output tokens
    for row in data["prompts"]:
        assert row["energy_j_p10"] < row["energy_j"] < row["energy_j_p90"]
        assert row["total_g"] == pytest.approx(row["operational_g"] + row["embodied_g"])
    assert data["total"]["energy_j"] == pytest.approx(short["energy_j"] + long["energy_j"])
    out_file = tmp_path / "estimates.jsonl"
    code, table, _ = run_cli(capsys, *VLLM, "--prompts", str(prompts), "--out", str(out_file))
    assert code == 0 and "total over 2 prompts" in table
    written = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert written == data["prompts"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"input_tokens": 10}\n', ":1: output_tokens"),
        ('{"input_tokens": 10, "output_tokens": 5}\nnot json\n', ":2: not JSON"),
        ('{"input_tokens": -1, "output_tokens": 5}\n', ":1: input_tokens"),
        ("\n", "no prompts"),
        (
            '{"input_tokens": 1' + "0" * 400 + ', "output_tokens": 5}\n',
            ":1: input_tokens: Input should be less than or equal to 10000000",
        ),
        # JSON's true is Python's 1: it was read as a one-token prompt
        (
            '{"input_tokens": true, "output_tokens": 5}\n',
            ":1: input_tokens: must be a number, not true",
        ),
        (
            '{"prompt_tokens": 3, "completion_tokens": false}\n',
            ":1: completion_tokens: must be a number, not false",
        ),
        (
            '{"id": true, "input_tokens": 3, "output_tokens": 5}\n',
            ":1: id: must be a string or a number, not true",
        ),
    ],
)
def test_bad_prompt_files_exit_2_naming_the_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, needle: str
) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(content)
    code, out, err = run_cli(capsys, *VLLM, "--prompts", str(prompts))
    assert code == 2 and out == ""
    assert needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"input_tokens": 1, "output_tokens": 5}\n\xff\n', ":2: not UTF-8 text (byte 40)"),
        (b"[1, 2]\n", ":1: a prompt must be a JSON object, got list"),
        (b'{"input_tokens": 1' + b"0" * 5000 + b', "output_tokens": 5}\n', ":1: not acceptable"),
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", ":1: not acceptable JSON: nested too deeply"),
    ],
    ids=["not-utf8", "list", "huge-integer", "deep"],
)
def test_unreadable_prompt_lines_exit_2_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, needle: str
) -> None:
    """A prompts file that is not UTF-8, or holds a line JSON cannot turn into an object, was
    a traceback (UnicodeDecodeError, ValueError, RecursionError) or named pydantic's class."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_bytes(content)
    code, out, err = run_cli(capsys, *VLLM, "--prompts", str(prompts))
    assert code == 2 and out == ""
    assert f"{prompts}{needle}" in err and len(err.strip().splitlines()) == 1


def test_out_never_writes_through_a_planted_temporary_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--out wrote through the fixed name ``.NAME.tmp``: a symlink planted there (a shared
    directory) had the estimates written over its target, and the link renamed into place;
    and a file replaced lost its permissions."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"input_tokens": 10, "output_tokens": 5}\n')
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / ".est.jsonl.tmp").symlink_to(victim)
    kept = tmp_path / "kept.jsonl"
    kept.write_text("old\n")
    kept.chmod(0o640)
    for out_file in (tmp_path / "est.jsonl", kept):
        code, _, err = run_cli(capsys, *VLLM, "--prompts", str(prompts), "--out", str(out_file))
        assert code == 0, err
        assert not out_file.is_symlink() and json.loads(out_file.read_text())["id"] == "1"
    assert victim.read_text() == "precious\n"
    assert kept.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("name", ["missing/est.jsonl", "."], ids=["no-folder", "a-folder"])
def test_an_out_file_that_cannot_be_written_is_a_runtime_failure_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    """``--out`` that could not be written exited 2, bad input, worded 'cannot write PATH:
    ...', where ``export`` and ``report -o`` say 'PATH: cannot write: ...' and exit 1, as
    docs/daemon.md's exit codes have a file system failure."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"input_tokens": 10, "output_tokens": 5}\n')
    target = tmp_path / name
    code, out, err = run_cli(capsys, *VLLM, "--prompts", str(prompts), "--out", str(target))
    reason = "No such file or directory" if name != "." else "Is a directory"
    assert (code, out) == (1, "")
    assert err == f"carbond: error: {target}: cannot write: {reason}\n"


def test_out_without_prompts_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``--out`` without ``--prompts`` printed the estimate and wrote nothing, exit 0."""
    out_file = tmp_path / "estimates.jsonl"
    code, out, err = run_cli(capsys, *VLLM, "--out", str(out_file))
    assert code == 2 and out == "" and "--out" in err and "--prompts" in err
    assert not out_file.exists()


@pytest.mark.parametrize(
    "extra",
    [("--requests", "1000"), ("--input-tokens", "4000"), ("--output-tokens", "900"),
     ("--requests", "5", "--output-tokens", "9")],
)  # fmt: skip
def test_workload_options_with_prompts_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: tuple[str, ...]
) -> None:
    """``estimate --prompts FILE --requests 1000`` printed the same per-prompt estimates as
    without it, exit 0: each prompt line gives its own token counts and is one request of a
    ``--batch-size`` batch, so the option is refused, naming it, and nothing is written."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"input_tokens": 10, "output_tokens": 5}\n')
    out_file = tmp_path / "estimates.jsonl"
    code, out, err = run_cli(
        capsys, *VLLM, "--prompts", str(prompts), "--out", str(out_file), *extra
    )
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert all(opt in err for opt in extra if opt.startswith("--")) and "--prompts" in err
    assert not out_file.exists()


def test_estimate_token_defaults_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --input-tokens/--output-tokens the estimate prices 128 -> 150 tokens."""
    code, out, _ = run_cli(capsys, *VLLM, "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["input_tokens"], data["output_tokens"]) == (128, 150)


def test_missing_prompt_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, *VLLM, "--prompts", str(tmp_path / "absent.jsonl"))
    assert code == 2 and "absent.jsonl" in err


ADVISE = ("advise", "--model", "llama-3.1-8b", "--gpus", "H100,A100-40GB")


def test_advise_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *ADVISE, "--max-latency-s", "5", "--json")
    data = json.loads(out)
    assert code == 0
    best = data["recommendation"]
    assert best["latency_s"] <= 5 and best["zone"] == "CA-QC"
    assert {f["factor"] for f in data["factors"]} >= {"batching", "grid", "hardware"}
    assert len(data["runners_up"]) == 5
    assert all(
        r["total_per_1k_tokens_g"] >= best["total_per_1k_tokens_g"] for r in data["runners_up"]
    )


def test_advise_table_and_given_intensities(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *ADVISE, "--zones", "HERE=10,THERE=900", "--precisions", "bf16")
    assert code == 0 and "HERE" in out and "what each choice saves" in out


def test_advise_nothing_meets_the_bound_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *ADVISE, "--max-latency-s", "0.001", "--json")
    assert code == 1 and json.loads(out)["recommendation"] is None


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("--zones", "MARS-1"), "MARS-1"),
        (("--zones", "X=abc"), "ZONE=G_PER_KWH"),
        (("--zones", "X=inf,CA-QC"), "intensity of X must be 0 to 10,000 g/kWh, got inf"),
        # above any grid's: printed ~1e303 g per 1k tokens before
        (("--zones", "X=1e308,CA-QC"), "intensity of X must be 0 to 10,000 g/kWh, got 1e308"),
        (("--zones", "=5,CA-QC"), "'=5' names no zone"),
        (("--zones", "CA-QC,ca-qc"), "ca-qc is given twice"),
        (("--zones", "CA-QC,CA-QC=10"), "CA-QC is given twice"),
        (("--batch-sizes", "8,zero"), "--batch-sizes"),
        (("--batch-sizes", "0"), "--batch-sizes must be 1 to 1,000,000, got 0"),
        (("--precisions", "fp7"), "fp7"),
        (("--gpus", "gtx-9000"), "gtx-9000"),
        (("--runtime", "hf-eager"), "serving engine"),
        (("--max-latency-s", "-1"), "--max-latency-s must be a positive number of seconds"),
        (("--pue", "9"), "--pue"),
        (("--input-tokens", "1" + "0" * 400), "--input-tokens must be 0 to 10,000,000"),
    ],
)
def test_advise_bad_arguments_exit_2(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], needle: str
) -> None:
    code, out, err = run_cli(capsys, *ADVISE, *argv)
    assert code == 2 and out == ""
    assert needle in err and len(err.strip().splitlines()) == 1


def test_the_total_over_one_prompt_is_singular(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``total over 1 prompts`` (as ``carbond jobs`` said ``total over 1 jobs``)."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "only", "input_tokens": 100, "output_tokens": 50}\n')

    code, table, _ = run_cli(capsys, *VLLM, "--prompts", str(prompts))

    assert code == 0 and "\ntotal over 1 prompt: " in table


def test_advise_says_which_precisions_vllm_cannot_serve(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ("advise", "--model", "llama-3.2-1b", "--gpus", "V100,T4", "--zones", "A=100",
            "--batch-sizes", "4", "--precisions", "fp8,int8")  # fmt: skip
    code, out, _ = run_cli(capsys, *argv, "--json")
    data = json.loads(out)
    assert code == 0 and data["unserved"] == ["fp8 on V100"]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and "not swept (vLLM cannot serve them there): fp8 on V100" in out


def test_estimate_serves_bf16_on_a_t4_as_advise_does(capsys: pytest.CaptureFixture[str]) -> None:
    """`estimate --runtime vllm --precision bf16 --gpu t4` answered fits: true at bf16, which
    vLLM refuses there; advise serves it as fp16. One rule now: fp16, with a note, priced as
    `--precision fp16` is."""
    argv = ("estimate", "--model", "llama-3.2-1b", "--gpu", "t4", "--runtime", "vllm",
            "--batch-size", "4", "--intensity", "100", "--json")  # fmt: skip
    code, out, _ = run_cli(capsys, *argv, "--precision", "bf16")
    bf16 = json.loads(out)
    code16, out16, _ = run_cli(capsys, *argv, "--precision", "fp16")
    fp16 = json.loads(out16)
    assert code == code16 == 0 and bf16["precision"] == "fp16"
    assert bf16["precision_note"].startswith("bf16 served as fp16")
    assert fp16["precision_note"] is None
    assert bf16["energy_j"] == fp16["energy_j"] and bf16["total_g"] == fp16["total_g"]
    code, out, _ = run_cli(capsys, *argv[:-1], "--precision", "bf16")
    assert code == 0 and "bf16 served as fp16" in out and "vllm, fp16)" in out


def test_estimate_refuses_fp8_on_a_v100_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ("estimate", "--model", "llama-3.2-1b", "--gpu", "V100", "--runtime", "vllm",
            "--precision", "fp8", "--intensity", "100")  # fmt: skip
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.strip().startswith("carbond: error: --precision: vLLM serves no fp8 on V100")


def test_estimate_keeps_bf16_under_eager_pytorch(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "estimate", "--model", "llama-3.2-1b", "--gpu", "T4",
                           "--precision", "bf16", "--intensity", "100", "--json")  # fmt: skip
    data = json.loads(out)
    assert code == 0 and data["precision"] == "bf16" and data["precision_note"] is None


def test_per_prompt_estimates_carry_the_note(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "input_tokens": 10, "output_tokens": 20}\n')
    argv = ("estimate", "--model", "llama-3.2-1b", "--gpu", "T4", "--runtime", "vllm",
            "--precision", "bf16", "--intensity", "100", "--prompts", str(prompts))  # fmt: skip
    code, out, _ = run_cli(capsys, *argv, "--json")
    data = json.loads(out)
    assert code == 0 and data["precision"] == "fp16"
    assert data["precision_note"].startswith("bf16 served as fp16")
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0 and out.splitlines()[-1].startswith("note: bf16 served as fp16")
