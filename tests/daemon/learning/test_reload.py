"""A reload (or a Slurm region discovered late) that changes which runs teach a GPU type
(:func:`daemon.learning.factors.teaches`) refolds that type's factors from the ledger, as a restart
would; the other types keep their live factors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from structlog.testing import capture_logs

from daemon.assemble import Daemon, build_daemon, rebuild_service
from daemon.inventory import build_inventory
from daemon.learning.factors import refold_changed
from daemon.ledger import Ledger, LedgerError, MeasuredRun
from daemon.ledger.measured import Watermark
from daemon.settings import RegionSettings, Settings, SlurmRegionSettings
from daemon.testing import FakeClock, RecordingExecutor
from policies.footprint.recalibration import Observation
from tests.daemon.helpers import append, job_line
from tests.daemon.late_slurm import LateSlurm

MODEL, GPU = "llama-3.1-8b", "A100-80GB"
SIM = RegionSettings(name="sim", zone="CA-QC", executor="simulated", gpus=(GPU, "T4"))
REAL = RegionSettings(name="node", zone="CA-QC", executor="local", gpus=(GPU,))
# a factor learned live for the simulated-only T4 (not in the ledger: a refold would lose it)
T4_RUN = Observation(MODEL, "T4", 100.0, 150.0, 60.0, 60.0)


def _settings(tmp_path: Path, *regions: RegionSettings) -> Settings:
    """The simulated GPUs metered here draw 1.3x their catalog power."""
    return Settings(state_dir=tmp_path, regions=regions, policy={"name": "run-now"},
                    gpu={"backend": "simulated", "simulated_power_factor": 1.3})  # fmt: skip


def _daemon(tmp_path: Path, clock: FakeClock, *regions: RegionSettings) -> Daemon:
    executors = {"simulated": RecordingExecutor("simulated"), "local": RecordingExecutor("local")}
    daemon = build_daemon(_settings(tmp_path, *regions), executors=executors,
                          gpu_clock=clock.monotonic())  # fmt: skip
    daemon.service.start(clock())
    return daemon


def _run_simulated(daemon: Daemon, clock: FakeClock, job_id: str) -> None:
    """Run ``job_id`` on the simulated A100 to its end."""
    service = daemon.service
    append(service.queue.path, job_line(id=job_id, model=MODEL, requests=1024, batch_size=8,
                                        regions=["sim"], gpu_types=[GPU]))  # fmt: skip
    service.tick(clock())
    decision = service.ledger.latest_decision(job_id)
    assert decision is not None and decision.gpu == GPU and decision.expected_duration_s
    service.tick(clock.advance(decision.expected_duration_s * 1.01))
    assert service.ledger.job(job_id).state == "succeeded"


def test_a_reload_that_adds_real_gpus_of_a_simulated_type_drops_what_the_simulation_taught(
    tmp_path: Path,
) -> None:
    """Simulated-only A100s taught their factor (1.3x power); a SIGHUP added a local region of
    A100s and the real A100s went on being planned on the simulation's 1.3x until a restart.
    The reload now refolds the A100's factors from the ledger (no real run yet: none), and a
    reload back to simulated-only A100s folds the simulated runs again."""
    clock = FakeClock()
    daemon = _daemon(tmp_path, clock, SIM)
    try:
        for n in range(2):
            _run_simulated(daemon, clock, f"sim{n}")
        learning = daemon.service.learning
        taught = learning.recalibration.get(MODEL, GPU)
        assert taught.samples == 2 and taught.energy_factor > 1.2
        learning.recalibration = learning.recalibration.updated(T4_RUN)
        t4 = learning.recalibration.get(MODEL, "T4")

        with capture_logs() as events:
            mixed = rebuild_service(daemon, _settings(tmp_path, SIM, REAL), None)
        assert mixed.learning.recalibration.get(MODEL, GPU).samples == 0  # as a restart
        assert mixed.learning.recalibration.get(MODEL, "T4") == t4  # unchanged type: kept
        refolded = [e for e in events if e["event"] == "recalibration_refolded"]
        assert [(e["gpus"], e["runs"]) for e in refolded] == [([GPU], 0)]

        back = rebuild_service(daemon, _settings(tmp_path, SIM), None)
        assert back.learning.recalibration.get(MODEL, GPU) == taught  # the ledger's 2 runs
        assert back.learning.recalibration.get(MODEL, "T4") == t4
    finally:
        daemon.close()

    restarted = _daemon(tmp_path, clock, SIM, REAL)
    try:
        assert restarted.service.learning.recalibration.get(MODEL, GPU).samples == 0
    finally:
        restarted.close()


def test_a_reload_that_changes_no_gpu_type_refolds_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    daemon = _daemon(tmp_path, clock, SIM)
    try:
        _run_simulated(daemon, clock, "sim0")
        live = daemon.service.learning.recalibration
        with capture_logs() as events:
            reloaded = rebuild_service(daemon, _settings(tmp_path, SIM), None)
        assert reloaded.learning.recalibration.factors == live.factors
        assert "recalibration_refolded" not in [e["event"] for e in events]
    finally:
        daemon.close()


def test_a_slurm_region_of_a_simulated_type_discovered_late_drops_what_the_simulation_taught(
    tmp_path: Path,
) -> None:
    """Slurm did not answer at start, so its A100s were not in the inventory: the simulated
    A100s taught the A100's factor (as a start without them folds it). Once Slurm answered,
    its real A100s were planned on that factor until a restart; the A100 is refolded then."""
    clock = FakeClock()
    hpc = RegionSettings(name="hpc", zone="CA-QC", executor="slurm", gpus="discover",
                         slurm=SlurmRegionSettings(partition="alpha"))  # fmt: skip
    slurm = LateSlurm({"hpc": [(0, GPU)]})
    executors = {"simulated": RecordingExecutor("simulated"), "slurm": slurm}
    daemon = build_daemon(_settings(tmp_path, SIM, hpc), executors=executors,
                          gpu_clock=clock.monotonic())  # fmt: skip
    try:
        service = daemon.service
        service.start(clock())
        assert {gpu.executor for gpu in service.inventory} == {"simulated"}
        _run_simulated(daemon, clock, "sim0")
        assert service.learning.recalibration.get(MODEL, GPU).samples == 1
        slurm.up = True
        service.tick(clock.advance(60))  # asked again: Slurm answers
        assert {gpu.executor for gpu in service.inventory} == {"simulated", "slurm"}
        assert service.learning.recalibration.get(MODEL, GPU).samples == 0  # as a restart
    finally:
        daemon.close()


class _UnreadableLedger(Ledger):
    """A ledger whose measured runs cannot be read (a damaged page, say)."""

    def measured_runs(
        self, after: Watermark | None = None, through: Watermark | None = None
    ) -> Iterator[MeasuredRun]:
        raise LedgerError("ledger.db: database disk image is malformed (test)")


def test_a_refold_the_ledger_cannot_answer_keeps_the_live_factors(tmp_path: Path) -> None:
    """The discovery (or reload) that asks for a refold must not fail with it: a discovered
    region whose refold raised would never be added (its executor answered already)."""
    clock = FakeClock()
    daemon = _daemon(tmp_path, clock, SIM)
    try:
        _run_simulated(daemon, clock, "sim0")
        learning = daemon.service.learning
        live = learning.recalibration
        ledger = _UnreadableLedger.open(tmp_path / "unreadable.db")
        try:
            with capture_logs() as events:
                assert refold_changed(learning, ledger, daemon.service.inventory,
                                      build_inventory((SIM, REAL))) == []  # fmt: skip
        finally:
            ledger.close()
        assert learning.recalibration is live
        assert "recalibration_refold_failed" in [e["event"] for e in events]
    finally:
        daemon.close()


def test_a_reload_that_changes_a_types_catalog_spec_refolds_it_as_a_restart_would(
    tmp_path: Path,
) -> None:
    """The factors are measured / raw estimate, and the raw estimate follows the catalog: a
    reload that raised the A100's ``tdp_w`` kept the factor learned against the old estimate,
    and applied it to the new one (1.30 where a restart, which folds the ledger again under
    the new catalog, gives 0.84: the A100 planned 1.54x high) until the next restart. The
    reload now refolds that type as a restart does; the T4, whose spec did not change, keeps
    its factor."""
    clock = FakeClock()
    daemon = _daemon(tmp_path, clock, SIM)
    try:
        for n in range(2):
            _run_simulated(daemon, clock, f"sim{n}")
        learning = daemon.service.learning
        taught = learning.recalibration.get(MODEL, GPU)
        assert taught.samples == 2
        learning.recalibration = learning.recalibration.updated(T4_RUN)
        t4 = learning.recalibration.get(MODEL, "T4")
        hotter = Settings(state_dir=tmp_path, regions=(SIM,), policy={"name": "run-now"},
                          gpu={"backend": "simulated", "simulated_power_factor": 1.3},
                          catalog={"gpus": {GPU: {"tdp_w": 700.0}}})  # fmt: skip
        with capture_logs() as events:
            reloaded = rebuild_service(daemon, hotter, None)
        after = reloaded.learning.recalibration.get(MODEL, GPU)
        assert after.samples == 2 and after.energy_factor < taught.energy_factor / 1.2
        assert reloaded.learning.recalibration.get(MODEL, "T4") == t4
        refolded = [e for e in events if e["event"] == "recalibration_refolded"]
        assert [(e["gpus"], e["runs"]) for e in refolded] == [([GPU], 2)]
    finally:
        daemon.close()

    restarted = build_daemon(hotter, executors={"simulated": RecordingExecutor("simulated")},
                             gpu_clock=clock.monotonic())  # fmt: skip
    try:
        restarted.service.start(clock())
        assert restarted.service.learning.recalibration.get(MODEL, GPU) == after
    finally:
        restarted.close()
