"""The service learns from every measured outcome while it runs: a Slurm-only daemon (no GPU
metered here) from the energy ``sacct`` reported, a mixed one from both meters without counting a
run twice; a restart relearns the same factors (also from a mixed ledger of GPU-metered,
sacct-metered and failed runs, skipping, with a warning, the runs whose request no longer
parses), and an ending that rolls back teaches nothing."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.assemble_service import configure_learning
from daemon.gpu import GpuMonitor, SimulatedGpuBackend
from daemon.gpu.factory import simulated_spec
from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import InventoryGpu, build_inventory
from daemon.learning import factors
from daemon.learning.checkpoint import FoldInputs
from daemon.learning.factors import Learning, measured_history
from daemon.ledger import Ledger, LedgerError, RunEnd
from daemon.ledger.checkpoint import LedgerMarks
from daemon.measurement import JobMeasurement
from daemon.planning import job_spec
from daemon.queue.ingest import Queue
from daemon.service import Service
from daemon.settings import (
    GpuSettings,
    RecalibrationSettings,
    RegionSettings,
    Settings,
    SlurmRegionSettings,
)
from daemon.testing import FakeClock, RecordingExecutor
from policies import Device, JobSpec, PoliciesError, get_policy
from policies.footprint import DEFAULT_GPU_CATALOG
from policies.footprint.recalibration import Key, Recalibration, RecalibrationFactor
from tests.daemon.helpers import append, job_line

MODEL, GPU = "llama-3.1-8b", "A100-80GB"
HPC = RegionSettings(name="hpc", zone="CA-QC", executor="slurm", gpus=(GPU,) * 2,
                     slurm=SlurmRegionSettings(partition="alpha"))  # fmt: skip
NODE = RegionSettings(name="node", zone="CA-QC", executor="local", gpus=(GPU,))


class _FailingLedger(Ledger):
    """A ledger whose next run-ending commit fails (``fail_finish``): its transaction rolls
    back, as a full disk would make it."""

    fail_finish = False
    fail_checkpoint = False  # the recalibration checkpoint's writes fail

    def finish_runs(self, ends: Sequence[RunEnd], at: datetime) -> None:
        super().finish_runs(ends, at)
        if self.fail_finish:
            raise LedgerError("ledger.db: disk full (test)")

    def write_recalibration_checkpoint(self, *args: Any, **kwargs: Any) -> LedgerMarks:
        marks = super().write_recalibration_checkpoint(*args, **kwargs)
        if self.fail_checkpoint:
            raise LedgerError("ledger.db: disk full (test)")
        return marks


def _service(
    tmp_path: Path,
    executors: Sequence[RecordingExecutor],
    regions: Sequence[RegionSettings] = (HPC,),
    measurement: JobMeasurement | None = None,
) -> Service:
    settings = Settings(state_dir=tmp_path, regions=tuple(regions))
    ledger = _FailingLedger.open(tmp_path / "ledger.db")
    return Service(
        settings=settings,
        ledger=ledger,
        queue=Queue(tmp_path, ledger, known_regions=[r.name for r in regions]),
        executors={e.name: e for e in executors},
        inventory=build_inventory(regions),
        intensity=EmbeddedIntensity(),
        policy=get_policy("run-now"),
        measurement=measurement,
    )


def _sacct(power_factor: float | None = None) -> RecordingExecutor:
    """A Slurm stand-in whose ended jobs report energy, as ``sacct`` does."""
    executor = RecordingExecutor("slurm")
    executor.reported_power_w = power_factor
    return executor


def _run(
    service: Service, clock: FakeClock, job_id: str, region: str = "hpc"
) -> tuple[float, float]:
    """Submit ``job_id`` (pinned to ``region``) and run it to its end: its planned energy (J)
    and duration (s)."""
    append(service.queue.path, job_line(id=job_id, model=MODEL, requests=1024, batch_size=8,
                                        regions=[region]))  # fmt: skip
    service.tick(clock())
    decision = service.ledger.latest_decision(job_id)
    assert decision is not None and decision.expected_duration_s and decision.expected_energy_j
    service.tick(clock.advance(decision.expected_duration_s * 1.01))
    return decision.expected_energy_j, decision.expected_duration_s


def _raw_power_w(tmp_path: Path) -> float:
    """The catalog's power for the test job on one A100 (a throwaway service's first plan)."""
    clock = FakeClock()
    service = _service(tmp_path / "probe", [_sacct()])
    service.start(clock())
    energy_j, duration_s = _run(service, clock, "probe")
    service.close()
    return energy_j / duration_s


def test_a_slurm_only_daemon_learns_from_sacct_while_it_runs(tmp_path: Path) -> None:
    """No GPU metered here: after ``min_samples`` runs whose ``sacct`` energy is 1.3x the
    estimate, the next job is planned with ~1.3x the energy, without a restart."""
    power_w = _raw_power_w(tmp_path)
    clock = FakeClock()
    service = _service(tmp_path, [_sacct(1.3 * power_w)])
    service.start(clock())
    assert service.measurement is None
    planned = [_run(service, clock, f"j{n}")[0] for n in range(5)]
    outcome = service.ledger.outcome("j0")
    assert outcome is not None and outcome["energy_method"] == "slurm-sacct"
    assert outcome["measured_energy_j"] == pytest.approx(1.3 * planned[0], rel=1e-3)
    assert planned[1] == pytest.approx(planned[0], rel=1e-9)  # too little evidence yet
    assert service.learning.recalibration.get(MODEL, GPU).samples == 5
    assert planned[4] == pytest.approx(1.3 * planned[0], rel=0.02), planned


def test_a_restart_relearns_the_same_factors(tmp_path: Path) -> None:
    power_w = _raw_power_w(tmp_path)
    clock = FakeClock()
    service = _service(tmp_path, [_sacct(1.3 * power_w)])
    service.start(clock())
    for n in range(4):
        _run(service, clock, f"j{n}")
    learned = service.learning.recalibration.factors
    assert service.learning.recalibration.get(MODEL, GPU).samples == 4
    service.close()

    restarted = _service(tmp_path, [_sacct(1.3 * power_w)])
    restarted.start(clock())
    assert dict(restarted.learning.recalibration.factors) == dict(learned)


def test_a_running_service_checkpoints_and_a_restart_resumes_from_it(tmp_path: Path) -> None:
    """Every ``checkpoint_every_runs`` measured runs the service moves the ledger's checkpoint
    on; a reload that changes ``[recalibration]`` folds it again under the new settings (at
    most that many runs a round); a restart resumes from it and learns what a fold of every run
    under its settings learns."""
    power_w = _raw_power_w(tmp_path)
    clock = FakeClock()
    service = _service(tmp_path, [_sacct(1.3 * power_w)])
    service.checkpoint_every_runs = 3
    service.start(clock())
    for n in range(7):
        _run(service, clock, f"j{n}")
    stored = service.ledger.recalibration_checkpoint()
    assert stored is not None and stored.runs_folded == 6  # at the 3rd and 6th run
    reloaded = Settings(state_dir=tmp_path, regions=(HPC,),
                        recalibration=RecalibrationSettings(min_samples=5))  # fmt: skip
    configure_learning(service.learning, reloaded)  # what SIGHUP does to the live factors
    _run(service, clock, "j7")
    stored = service.ledger.recalibration_checkpoint()
    config = service.learning.recalibration.config
    assert (
        stored is not None and stored.fingerprint == FoldInputs.of(config, service.inventory).text()
    )
    assert stored.runs_folded == 3  # folded again from the first run, 3 this round
    service.close()

    restarted = _service(tmp_path, [_sacct(1.3 * power_w)])
    configure_learning(restarted.learning, reloaded)
    with capture_logs() as events:
        restarted.start(clock())
    (loaded,) = [e for e in events if e["event"] == "recalibration_checkpoint_loaded"]
    assert (loaded["checkpoint_runs"], loaded["tail_runs"]) == (3, 5)
    scratch = Learning(Recalibration(config))
    scratch.relearn(measured_history(restarted.ledger, restarted.inventory))
    assert restarted.learning.recalibration == scratch.recalibration
    assert dict(restarted.learning.recalibration.factors) == dict(scratch.recalibration.factors)


def test_a_checkpoint_that_cannot_be_written_fails_no_reconcile(tmp_path: Path) -> None:
    power_w = _raw_power_w(tmp_path)
    clock = FakeClock()
    service = _service(tmp_path, [_sacct(1.3 * power_w)])
    service.checkpoint_every_runs = 1
    service.start(clock())
    assert isinstance(service.ledger, _FailingLedger)
    service.ledger.fail_checkpoint = True
    with capture_logs() as events:
        _run(service, clock, "j0")
    assert "recalibration_checkpoint_failed" in [e["event"] for e in events]
    assert service.ledger.job("j0").state == "succeeded"
    assert service.ledger.recalibration_checkpoint() is None  # rolled back
    assert service.learning.recalibration.get(MODEL, GPU).samples == 1


def test_an_ending_that_rolls_back_teaches_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    service = _service(tmp_path, [_sacct(500.0)])
    service.start(clock())
    _run(service, clock, "first")
    assert service.learning.recalibration.get(MODEL, GPU).samples == 1
    assert isinstance(service.ledger, _FailingLedger)
    service.ledger.fail_finish = True
    with pytest.raises(LedgerError):
        _run(service, clock, "rolled-back")
    assert service.ledger.job("rolled-back").state == "running"  # its end was not recorded
    assert service.learning.recalibration.get(MODEL, GPU).samples == 1


def _node_meter(clock: FakeClock, device_id: str = "node/0") -> JobMeasurement:
    """carbond's meter of the node's one A100 (``device_id``), simulated at 1.3x its catalog
    power on ``clock``."""
    monotonic_s = clock.monotonic()

    backend = SimulatedGpuBackend([simulated_spec(DEFAULT_GPU_CATALOG.get(GPU))],
                                  true_power_factor=1.3, clock=monotonic_s)  # fmt: skip
    backend.start()
    monitor = GpuMonitor(backend, GpuSettings(), clock=monotonic_s, sample=False)
    return JobMeasurement(monitor, lifetime_years=5.0, index_of={device_id: 0})


def test_a_mixed_daemon_counts_a_metered_run_once(tmp_path: Path) -> None:
    """GPUs metered here and Slurm's: each run teaches the (model, GPU type) once, the metered
    one through the meter, the Slurm one from ``sacct`` (while the daemon runs)."""
    clock = FakeClock()
    measurement = _node_meter(clock)
    service = _service(tmp_path, [RecordingExecutor("local"), _sacct(500.0)], (NODE, HPC),
                       measurement)  # fmt: skip
    service.start(clock())
    _run(service, clock, "metered", region="node")
    metered = service.ledger.outcome("metered")
    assert metered is not None and metered["energy_method"] == "simulated-counter"
    assert service.learning.recalibration.get(MODEL, GPU).samples == 1
    _run(service, clock, "sacct", region="hpc")
    sacct = service.ledger.outcome("sacct")
    assert sacct is not None and sacct["energy_method"] == "slurm-sacct"
    assert service.learning.recalibration.get(MODEL, GPU).samples == 2
    assert service.learning is measurement.learning
    service.close()
    measurement.close()


def test_simulated_runs_do_not_teach_a_gpu_type_that_has_real_gpus(tmp_path: Path) -> None:
    """A simulated region (its A100 metered here at 1.3x the catalog) beside a Slurm region of
    A100s: the simulated runs taught the real A100s' factor while the daemon ran (a restart
    would not have); now only the real runs teach it, live as after a restart."""
    clock = FakeClock()
    measurement = _node_meter(clock, "sim/0")
    sim = RegionSettings(name="sim", zone="CA-QC", executor="simulated", gpus=(GPU,))
    service = _service(tmp_path, [RecordingExecutor("simulated"), _sacct(500.0)], (sim, HPC),
                       measurement)  # fmt: skip
    service.start(clock())
    with capture_logs() as events:
        _run(service, clock, "simulated", region="sim")
    metered = service.ledger.outcome("simulated")
    assert metered is not None and metered["measured_energy_j"]
    assert service.learning.recalibration.get(MODEL, GPU).samples == 0
    assert "recalibration_ignored" in [e["event"] for e in events]
    _run(service, clock, "real", region="hpc")
    assert service.learning.recalibration.get(MODEL, GPU).samples == 1
    live = service.learning.recalibration
    service.close()
    measurement.close()
    restarted = _service(tmp_path, [RecordingExecutor("simulated"), _sacct(500.0)], (sim, HPC))
    restarted.start(clock())
    assert restarted.learning.recalibration == live


def test_a_simulated_run_whose_executor_measured_it_does_not_teach_real_gpus(
    tmp_path: Path,
) -> None:
    """The same through the executor's measurement (no meter here): a simulated executor that
    reports its runs' energy teaches the real A100s nothing."""
    clock = FakeClock()
    simulated = RecordingExecutor("simulated")
    simulated.reported_power_w = 500.0  # as sacct would
    sim = RegionSettings(name="sim", zone="CA-QC", executor="simulated", gpus=(GPU,))
    service = _service(tmp_path, [simulated, _sacct(500.0)], (sim, HPC))
    service.start(clock())
    _run(service, clock, "simulated", region="sim")
    outcome = service.ledger.outcome("simulated")
    assert outcome is not None and outcome["measured_energy_j"]
    assert service.learning.recalibration.get(MODEL, GPU).samples == 0
    _run(service, clock, "real", region="hpc")
    assert service.learning.recalibration.get(MODEL, GPU).samples == 1
    service.close()


# -- a restart on a bigger, mixed ledger --------------------------------------------------------

T4 = "T4"
CLUSTER = RegionSettings(name="hpc", zone="CA-QC", executor="slurm", gpus=(GPU, GPU, T4, T4),
                         slurm=SlurmRegionSettings(partition="alpha"))  # fmt: skip
Lesson = tuple[JobSpec, Device, float, float]


class _RecordingLearning(Learning):
    """A :class:`Learning` that keeps every run it was taught, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.lessons: list[Lesson] = []

    def observe(self, job: JobSpec, device: Device, energy_j: float, duration_s: float) -> bool:
        self.lessons.append((job, device, energy_j, duration_s))
        return super().observe(job, device, energy_j, duration_s)


def _mixed_service(tmp_path: Path, clock: FakeClock) -> tuple[Service, JobMeasurement]:
    """A daemon metering its node's A100 (simulated, 1.3x its catalog power) and running Slurm
    jobs on A100s and T4s (``sacct`` reports 250 W); runs last longer or shorter than planned."""
    measurement = _node_meter(clock)
    local = RecordingExecutor("local", duration_factor=0.9)
    slurm = _sacct(250.0)
    slurm.duration_factor = 1.15
    return _service(tmp_path, [local, slurm], (NODE, CLUSTER), measurement), measurement


def _mixed_jobs() -> Iterator[dict[str, object]]:
    """24 jobs: a few workloads submitted again and again (some with deadlines), on the node
    and on the cluster's A100s and T4s, the 8B model eager on the node and with vLLM on the
    cluster, the T4s' models in fp16 and in fp32; three of them fail."""
    shapes = [("node", "llama-3.1-8b", GPU, 256, "hf-eager"),
              ("hpc", "llama-3.1-8b", GPU, 512, "vllm"),
              ("hpc", "llama-3.2-1b", T4, 256, "hf-eager"),
              ("hpc", "llama-3.2-3b", T4, 128, "hf-eager")]  # fmt: skip
    for n in range(24):
        region, model, gpu, requests, runtime = shapes[n % len(shapes)]
        precision = "fp32" if gpu == T4 and n % 8 >= 4 else "fp16"
        deadline = {"deadline": f"+{24 + n}h"} if n % 3 == 0 else {}
        yield {"id": f"m{n:02d}", "model": model, "requests": requests, "batch_size": 8,
               "regions": [region], "gpu_types": [gpu], "runtime": runtime,
               "precision": precision, **deadline}  # fmt: skip


FAILING = ("m05", "m09", "m14")


def _run_mixed(tmp_path: Path) -> tuple[dict[Key, RecalibrationFactor], list[Lesson]]:
    """Run :func:`_mixed_jobs` to their ends (all queued at once: several end in one poll);
    the factors learned live and every run taught, in order."""
    clock = FakeClock()
    service, measurement = _mixed_service(tmp_path, clock)
    recording = _RecordingLearning()
    measurement.learning = recording
    service.start(clock())
    for line in _mixed_jobs():
        append(service.queue.path, job_line(**line))
    slurm = service.executors["slurm"]
    assert isinstance(slurm, RecordingExecutor)
    failed: set[str] = set()
    for _ in range(200):
        service.tick(clock.advance(300.0))
        for spec in slurm.launches:
            if spec.job_id in FAILING and spec.job_id not in failed:
                slurm.finish(spec.job_id, clock() + timedelta(seconds=120), exit_code=1)
                failed.add(spec.job_id)
        if service.ledger.counts_by_state().keys() <= {"succeeded", "failed"}:
            break
    assert service.ledger.counts_by_state() == {"succeeded": 21, "failed": 3}
    assert service.learning is recording
    live = dict(recording.recalibration.factors)
    service.close()
    measurement.close()
    return live, recording.lessons


def _reference_history(ledger: Ledger, inventory: Sequence[InventoryGpu]) -> Iterator[Lesson]:
    """What a restart relearned from before :meth:`Ledger.measured_runs`: each outcome row
    read with its job and latest decision, its job's spec parsed (the same filters)."""
    by_type = {gpu.device.gpu.name: gpu.device for gpu in inventory}
    rows = [r for r in ledger.rows("outcomes")
            if r.get("measured_energy_j") is not None and r.get("duration_s")]  # fmt: skip
    for row in sorted(rows, key=lambda r: str(r["recorded_at"])):
        job = ledger.job(row["job_id"])
        decision = ledger.latest_decision(job.job_id)
        device = by_type.get(decision.gpu or "") if decision else None
        if job.state != "succeeded" or device is None:
            continue
        try:
            spec = job_spec(job)
        except PoliciesError:
            continue
        yield spec, device, float(row["measured_energy_j"]), float(row["duration_s"])


def test_a_restart_relearns_what_a_mixed_ledger_taught_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GPU-metered and sacct-metered runs of several models, GPU types and workloads, several
    ending in one poll, some failing (measured, teaching nothing): a restart relearns exactly
    the factors folded live, reading what the per-row reads read."""
    live, lessons = _run_mixed(tmp_path)
    assert set(live) == {
        ("llama-3.1-8b", "a100-80gb", "", ""), ("llama-3.2-1b", "t4", "", ""),
        ("llama-3.2-3b", "t4", "", ""),  # per (model, GPU type), and per runtime and precision:
        ("llama-3.1-8b", "a100-80gb", "hf-eager", "fp16"),
        ("llama-3.1-8b", "a100-80gb", "vllm", "fp16"),
        ("llama-3.2-1b", "t4", "hf-eager", "fp16"), ("llama-3.2-1b", "t4", "hf-eager", "fp32"),
        ("llama-3.2-3b", "t4", "hf-eager", "fp16"), ("llama-3.2-3b", "t4", "hf-eager", "fp32"),
    }  # fmt: skip
    assert len(lessons) == 21 and not {job.job_id for job, *_ in lessons} & set(FAILING)
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        failed = ledger.outcome("m05")
        assert failed is not None and failed["measured_energy_j"] and failed["duration_s"]
        outcomes = [ledger.outcome(job.job_id) or {} for job, *_ in lessons]
        assert {o["energy_method"] for o in outcomes} == {"simulated-counter", "slurm-sacct"}
        inventory = build_inventory((NODE, CLUSTER))
        history = list(measured_history(ledger, inventory))
        assert history == list(_reference_history(ledger, inventory))
        assert [job.job_id for job, *_ in history] == [job.job_id for job, *_ in lessons]
        assert all(job == job_spec(ledger.job(job.job_id)) for job, *_ in history)
        ledger._json_functions = False  # as on an SQLite without them: no keys, a parse per run
        assert list(measured_history(ledger, inventory)) == history
        ledger._json_functions = None
        monkeypatch.setattr(factors, "_VIEWS_KEPT", 2)  # the parsed views emptied as they fill
        assert list(measured_history(ledger, inventory)) == history

    restarted, measurement = _mixed_service(tmp_path, FakeClock())
    restarted.start(FakeClock()())
    assert dict(restarted.learning.recalibration.factors) == live
    restarted.close()
    measurement.close()
    again, measurement = _mixed_service(tmp_path, FakeClock())  # from the checkpoint's table
    with capture_logs() as logs:
        again.start(FakeClock()())
    loaded = [e for e in logs if e["event"] == "recalibration_checkpoint_loaded"]
    assert [(e["runs"], e["tail_runs"], e["pairs"], e["keys"]) for e in loaded] == [(21, 0, 3, 9)]
    assert dict(again.learning.recalibration.factors) == live
    again.close()
    measurement.close()


def _rewrite_request(path: Path, job_id: str, rewrite: Callable[[str], str]) -> None:
    """Replace ``job_id``'s stored request (``spec_json``) by ``rewrite`` of it."""
    db = sqlite3.connect(path)
    try:
        with db:
            (text,) = db.execute(
                "SELECT spec_json FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
            db.execute("UPDATE jobs SET spec_json = ? WHERE job_id = ?", (rewrite(text), job_id))
    finally:
        db.close()


def _edited(text: str, **fields: object) -> str:
    """The stored request ``text`` with ``fields`` set (None: removed)."""
    request = json.loads(text) | fields
    return json.dumps({k: v for k, v in request.items() if v is not None})


def test_a_run_whose_request_no_longer_parses_is_skipped_and_named(tmp_path: Path) -> None:
    """A model gone from the catalog, a request that is not JSON, one missing a field: each of
    those runs is skipped, each reason logged once naming its jobs; every other run is
    relearned, as folding the live runs without them gives."""
    live, lessons = _run_mixed(tmp_path)
    path = tmp_path / "ledger.db"
    bad = {  # a cluster A100 run, a T4 run and a metered run
        "m01": lambda text: _edited(text, model="llama-0b"),
        "m03": lambda text: _edited(text, model="llama-0b"),  # the same reason: one event
        "m02": lambda text: "{not json",
        "m04": lambda text: _edited(text, input_tokens=None),
    }
    for job_id, rewrite in bad.items():
        _rewrite_request(path, job_id, rewrite)

    restarted, measurement = _mixed_service(tmp_path, FakeClock())
    with capture_logs() as events:
        restarted.start(FakeClock()())
    skipped = [e for e in events if e["event"] == "recalibration_history_skipped"]
    assert sorted(job for e in skipped for job in e["job_ids"]) == sorted(bad)
    assert sorted(e["jobs"] for e in skipped) == [1, 1, 2]
    assert all(e["log_level"] == "warning" and e["error"] for e in skipped)
    expected = Learning()
    expected.relearn(lesson for lesson in lessons if lesson[0].job_id not in bad)
    assert dict(restarted.learning.recalibration.factors) == dict(expected.recalibration.factors)
    assert dict(expected.recalibration.factors) != live  # the skipped runs taught something
    (relearned,) = [e for e in events if e["event"] == "recalibration_relearned"]
    assert relearned["runs"] == len(lessons) - len(bad)
    restarted.close()
    measurement.close()


def test_a_run_that_teaches_nothing_is_logged_as_ignored() -> None:
    """A run metered at 0 J folds nothing (its energy ratio is unusable); it was logged as
    ``recalibrated`` all the same, with the unchanged state."""
    from tests.policies.conftest import devices, job

    learner, device = Learning(), devices("qc", "CA-QC", "T4", 1)[0]
    with capture_logs() as events:
        assert learner.learn(job("zero"), device, 0.0, 600.0)
        assert learner.learn(job("good"), device, 50_000.0, 600.0)
    assert [e["event"] for e in events] == ["recalibration_ignored", "recalibrated"]
    assert events[0]["job_id"] == "zero" and events[1]["samples"] == 1


def test_a_vllm_bf16_run_on_a_t4_teaches_and_logs_the_fp16_factor_it_was_priced_at() -> None:
    """vLLM serves bf16 as fp16 on a T4 and the planner prices it so (the estimate names fp16,
    and the factor is looked up by the estimate's precision): the run teaches that factor, and
    the log line and the dispatcher's raw duration (``fine_key``) name it, not an empty bf16
    one."""
    from dataclasses import replace as replaced

    from policies.footprint import Workload
    from tests.policies.conftest import devices, job

    learner, device = Learning(), devices("qc", "CA-QC", "T4", 1)[0]
    spec = job("bf16")
    w = spec.workload
    spec = replaced(spec, runtime="vllm", workload=Workload(
        w.batch_size, w.input_tokens, w.output_tokens, w.requests, "bf16"))  # fmt: skip
    assert factors.fine_key(spec, device.gpu) == ("vllm", "fp16")
    eager = replaced(spec, runtime="hf-eager")
    assert factors.fine_key(eager, device.gpu) == ("hf-eager", "bf16")
    with capture_logs() as events:
        assert learner.learn(spec, device, 50_000.0, 600.0)
    assert (events[0]["precision"], events[0]["samples"]) == ("fp16", 1)
    assert learner.recalibration.get(spec.model.name, "T4", "vllm", "fp16").samples == 1
