"""vLLM admits requests up to its KV-cache capacity and queues the rest (issue 14 item 5).

ML.ENERGY v3 measured Llama-3.1-8B on one H100 at 691 concurrent requests; carbond said "does
not fit". The estimate, the planner's view and the advice now run such a batch at the
concurrency the KV cache admits, the cap the validation harness applies.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from policies.candidates import estimate_on
from policies.footprint import DEFAULT_GPU_CATALOG, DEFAULT_MODEL_CATALOG, Workload
from policies.footprint.advice import advise
from policies.footprint.calibration import calibrated, estimate_interval
from policies.footprint.runtimes import get_runtime
from policies.footprint.serving import admitted_batch, kv_capacity_tokens
from policies.types import Device, JobSpec

MODEL = DEFAULT_MODEL_CATALOG.get("llama-3.1-8b")
H100 = DEFAULT_GPU_CATALOG.get("H100-SXM")
VLLM = get_runtime("vllm")
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def _workload(batch: int, requests: int = 4000) -> Workload:
    return Workload(batch_size=batch, input_tokens=512, output_tokens=256, requests=requests)


def test_a_batch_beyond_the_kv_cache_runs_at_the_admitted_concurrency() -> None:
    runtime, _ = calibrated(VLLM, H100)
    cap = int(kv_capacity_tokens(MODEL, H100, runtime, _workload(691)) // (512 + 128))
    assert cap < 691  # the whole batch's KV cache does not fit ...
    estimate = estimate_interval(MODEL, H100, VLLM, _workload(691)).estimate
    assert estimate.fits, estimate.reason  # ... but vLLM runs it, queueing the rest
    assert admitted_batch(MODEL, H100, runtime, _workload(691)) == cap
    assert estimate.batches == -(-4000 // cap)
    # beyond the cap, asking for more concurrency changes nothing
    again = estimate_interval(MODEL, H100, VLLM, _workload(2048)).estimate
    assert again.duration_s == pytest.approx(estimate.duration_s)
    assert again.energy_j == pytest.approx(estimate.energy_j)


def test_the_planner_and_advice_agree() -> None:
    job = JobSpec("a", MODEL, _workload(691), NOW, None, runtime="vllm")
    device = Device("h/0", "h", "US-CAL-CISO", H100, 1.0)
    assert estimate_on(job, device).fits
    advice = advise(MODEL, [H100], {"US-CAL-CISO": 250.0}, VLLM, input_tokens=512,
                    output_tokens=256, batch_sizes=(691,), precisions=("fp16",))  # fmt: skip
    assert advice.best is not None
    one_gpu = [c for c in (advice.best, *advice.runners_up) if c.gpus == 1]
    assert one_gpu and one_gpu[0].batch_size == admitted_batch(
        MODEL, H100, calibrated(VLLM, H100)[0], _workload(691)
    )


def test_a_model_whose_weights_do_not_fit_still_does_not() -> None:
    big = DEFAULT_MODEL_CATALOG.get("llama-70b")
    estimate = estimate_interval(big, DEFAULT_GPU_CATALOG.get("T4"), VLLM, _workload(8)).estimate
    assert not estimate.fits
    assert "one request" in estimate.reason
