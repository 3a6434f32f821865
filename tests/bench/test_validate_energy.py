"""The validation harness on small fixtures written here (no shared data needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.mlenergy import V2_FILE, read_v2, read_v3
from bench.prediction import predict
from bench.validate_energy import HELD_OUT_FILE, main, summarise, validate, worst

V2_HEADER = (
    "source_path,architecture_dir,task_dir,gpu_dir,config_file,Model,GPU,TP,PP,Energy/req (J),"
    "Avg TPOT (s),Token tput (tok/s),Avg Output Tokens,Avg BS (reqs),Max BS (reqs)"
)
V2_ROWS = [
    # dense, predicted
    "p,llm_text_generation,chat,H100 80GB HBM3,bs64+tp1+pp1.json,"
    "meta-llama/Meta-Llama-3.1-8B-Instruct,NVIDIA H100 80GB HBM3,1,1,80.0,0.035,1800,480,64,64",
    # pipeline parallel: 16 GPUs, Max BS counts both stages
    "p,llm_text_generation,chat,H100 80GB HBM3,bs64+tp8+pp2.json,"
    "meta-llama/Meta-Llama-3.1-405B-Instruct,NVIDIA H100 80GB HBM3,8,2,3300,0.2,580,450,127,128",
    "p,llm_text_generation,chat,A100-SXM4-40GB,bs32+tp2+pp1.json,"
    "mistralai/Mixtral-8x7B-Instruct-v0.1,NVIDIA A100-SXM4-40GB,2,1,300,0.05,600,400,32,32",
    "p,mllm_text_generation,chat,A100-SXM4-40GB,bs8+tp1+pp1.json,"
    "llava-hf/llava-1.5-7b-hf,NVIDIA A100-SXM4-40GB,1,1,90,0.03,200,300,8,8",
]
V3_HEADER = (
    "task,activated_params_billions,architecture,avg_batch_size,avg_output_len,avg_power_watts,"
    "data_parallel,energy_per_request_joules,energy_per_token_joules,expert_parallel,gpu_model,"
    "max_num_seqs,median_itl_ms,model_id,nickname,num_gpus,output_throughput_tokens_per_sec,"
    "p90_itl_ms,p95_itl_ms,p99_itl_ms,tensor_parallel,total_params_billions,weight_precision"
)
V3_ROWS = [
    "lm-arena-chat,8.0,Dense Transformer,63.9,645,514,1,76.8,0.119,1,H100,64,14.0,"
    "Qwen/Qwen3-8B,Qwen 3 8B,1,4300,16,17,20,1,8.0,bfloat16",
    "lm-arena-chat,70,Dense Transformer,127.7,353,1913,1,170,0.481,1,B200,128,27.3,"
    "meta-llama/Llama-3.1-70B-Instruct,Llama,2,3980,30,31,35,2,70,bfloat16",
    "gpqa,3.0,MoE,64,8000,600,1,900,0.1,1,H100,64,20,"
    "Qwen/Qwen3-30B-A3B-Thinking-2507,Q,1,3000,22,23,25,1,30,bfloat16",
    "image-chat,12,Dense Transformer,8,300,400,1,90,0.3,1,H100,8,9,"
    "google/gemma-3-12b-it,G,1,900,10,11,12,1,12,bfloat16",
]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    for relative, header, rows in (
        (V2_FILE, V2_HEADER, V2_ROWS),
        (HELD_OUT_FILE, V3_HEADER, V3_ROWS),
    ):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return tmp_path


def test_readers_keep_dense_rows_and_say_why_others_are_skipped(data: Path) -> None:
    v2, skipped2 = read_v2(data / V2_FILE)
    v3, skipped3 = read_v3(data / HELD_OUT_FILE)
    assert [m.model for m in v2] == ["llama-3.1-8b", "llama-3.1-405b"]
    assert [m.model for m in v3] == ["qwen3-8b", "llama-3.1-70b"]
    assert {s.reason for s in skipped2} == {
        "mixture of experts (out of scope)",
        "vision-language task",
    }
    assert [s.line for s in skipped3] == [4, 5]
    assert all(m.engine == "vllm-v0" for m in v2)
    assert all(m.engine == "vllm" for m in v3)


def test_v2_measurements_are_converted(data: Path) -> None:
    llama8, llama405 = read_v2(data / V2_FILE)[0]
    assert llama8.energy_per_token_j == pytest.approx(80.0 / 480)
    assert llama8.power_w == pytest.approx(80.0 / 480 * 1800)
    assert (llama405.gpus, llama405.tensor_parallel, llama405.max_batch) == (16, 16, 64)


def test_predictions_and_error_decomposition(data: Path) -> None:
    results, _ = validate(data)
    assert len(results) == 4
    for r in results:
        assert r.energy_per_token_j > 0
        # energy error splits exactly into a time error and a power error
        assert 1 + r.token_error == pytest.approx(r.time_ratio * r.power_ratio)
        assert r.why()


def test_summary_groups_by_set_and_gpu(data: Path) -> None:
    results, _ = validate(data)
    rows = summarise(results)
    keys = [(row["set"], row["gpu"]) for row in rows]
    assert keys == [
        ("v2", "H100-SXM"),
        ("v2", "all"),
        ("v3", "B200"),
        ("v3", "H100-SXM"),
        ("v3", "all"),
    ]
    v3_all = rows[-1]
    errors = [abs(r.token_error) * 100 for r in results if r.measured.source == "v3"]
    assert v3_all["token_mape_pct"] == pytest.approx(sum(errors) / 2)
    assert v3_all["role"] == "held-out"


def test_worst_sorts_by_absolute_error(data: Path) -> None:
    results, _ = validate(data)
    ranked = worst(results, 3)
    assert len(ranked) == 3
    assert [abs(r.token_error) for r in ranked] == sorted(
        (abs(r.token_error) for r in ranked), reverse=True
    )


def test_engine_override_changes_the_v3_prediction(data: Path) -> None:
    measured = read_v3(data / HELD_OUT_FILE)[0][0]
    v1 = predict(measured)
    v0, _ = validate(data, ["v3"], engine="vllm-v0")
    assert v0[0].state.step_s > v1.state.step_s  # the V0 engine's host costs


def test_study_power_model_keeps_the_times_and_changes_the_power(data: Path) -> None:
    calibrated, _ = validate(data, ["v2", "v3"])
    study, _ = validate(data, ["v2", "v3"], power_model="study")
    assert [r.measured.key for r in study] == [r.measured.key for r in calibrated]
    for a, b in zip(calibrated, study, strict=True):
        assert b.state.step_s == a.state.step_s
    assert [b.state.power_w for b in study] != [a.state.power_w for a in calibrated]


def test_main_json(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(data), "--json", "--worst", "2"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["skipped"] == 4
    assert len(payload["worst"]) == 2
    assert {"set", "gpu", "token_mape_pct", "interval_coverage_pct"} <= set(payload["summary"][0])


def test_main_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path / "absent")]) == 2
    assert "not found" in capsys.readouterr().err


def test_malformed_number_names_file_and_line(data: Path) -> None:
    path = data / V2_FILE
    path.write_text(path.read_text().replace(",80.0,", ",eighty,"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"flat\.csv:2: field 'Energy/req \(J\)'"):
        read_v2(path)


def test_plot_writes_a_png(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "fig" / "accuracy.png"
    assert main(["--data", str(data), "--plot", str(target)]) == 0
    capsys.readouterr()
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_improves_the_loss_on_fixture_rows(data: Path) -> None:
    from bench.fit_energy import _BOUNDS, Params, _loss, fit

    rows, _ = read_v2(data / V2_FILE)
    start = Params()
    fitted = fit(rows, start, sweeps=1, points=3)
    assert _loss(fitted, rows) <= _loss(start, rows)
    for name, low, high in _BOUNDS:
        assert low <= getattr(fitted, name) <= high or getattr(fitted, name) == getattr(start, name)
