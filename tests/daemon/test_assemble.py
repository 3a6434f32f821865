"""The composition root: settings become executors, intervals and a service."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.assemble import build_daemon, build_executors, intervals_of, rebuild_service
from daemon.executors.local import LocalExecutor
from daemon.executors.simulated import SimulatedExecutor
from daemon.settings import RegionSettings, Settings
from daemon.supervision.loop import Intervals
from policies.footprint.recalibration import Observation


def test_executors_and_intervals_follow_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        intervals={"ingest_s": 1.0, "refresh_s": 60.0, "plan_s": 10.0, "reconcile_s": 3.0},
        executors={"simulated": {"truth_factor": 2.0}},
    )

    executors = build_executors(settings)

    assert isinstance(executors["local"], LocalExecutor)
    assert isinstance(executors["simulated"], SimulatedExecutor)
    assert executors["simulated"].duration_s("j", 100.0) == 200.0
    assert intervals_of(settings) == Intervals(1.0, 60.0, 10.0, 3.0)


def test_a_restart_without_slurm_regions_follows_the_jobs_still_on_slurm(tmp_path: Path) -> None:
    """A restart whose config no longer had a Slurm region built no Slurm executor, so the
    jobs carbond had handed to Slurm stayed ``running`` (or held in Slurm, to start there at
    their planned time while carbond ran them elsewhere). A Slurm executor without regions is
    built while the ledger has such runs, and only then."""
    from daemon.executors.slurm import SlurmExecutor
    from daemon.ledger import Ledger
    from tests.daemon.helpers import job_request

    region = RegionSettings(name="sim", zone="CA-QC", executor="simulated", gpus=("T4",))
    settings = Settings(state_dir=tmp_path, regions=(region,), policy={"name": "run-now"})
    daemon = build_daemon(settings)
    assert "slurm" not in daemon.executors
    daemon.close()
    at = datetime(2026, 12, 6, tzinfo=UTC)
    with Ledger.open(tmp_path / "ledger.db") as ledger, ledger.transaction():
        ledger.add_job(job_request("held", at), 0, 0, "queue.jsonl:1", at)
        ledger.transition("held", "planned", at, "planned")
        ledger.add_run("held", "slurm", ("qc/0",), (0,), 60.0, at)

    daemon = build_daemon(settings)
    try:
        slurm = daemon.executors["slurm"]
        assert isinstance(slurm, SlurmExecutor) and slurm.undiscovered() == {}
    finally:
        daemon.close()


def test_a_restart_without_slurm_regions_follows_a_run_still_being_stopped_on_slurm(
    tmp_path: Path,
) -> None:
    """A lost GPU's job ended while its Slurm run was still being stopped: a restart whose
    config had no Slurm region built no Slurm executor for it (only for running or held
    jobs), so the run was never cancelled nor polled again. It is followed now."""
    from daemon.executors.slurm import SlurmExecutor
    from daemon.ledger import Ledger
    from tests.daemon.helpers import job_request

    region = RegionSettings(name="sim", zone="CA-QC", executor="simulated", gpus=("T4",))
    settings = Settings(state_dir=tmp_path, regions=(region,), policy={"name": "run-now"})
    build_daemon(settings).close()
    at = datetime(2026, 12, 6, tzinfo=UTC)
    with Ledger.open(tmp_path / "ledger.db") as ledger, ledger.transaction():
        ledger.add_job(job_request("lost", at), 0, 0, "queue.jsonl:1", at)
        ledger.transition("lost", "running", at, "started")
        ledger.add_run("lost", "slurm", ("qc/0",), (0,), 60.0, at)
        ledger.set_run_started("lost", "4242", at)
        ledger.set_stopping("lost", "gpu 0 lost")
        ledger.transition("lost", "failed", at, "gpu 0 lost")

    daemon = build_daemon(settings)
    try:
        assert isinstance(daemon.executors["slurm"], SlurmExecutor)
    finally:
        daemon.close()


def test_discovered_gpus_become_devices_and_close_releases_them(tmp_path: Path) -> None:
    released: list[bool] = []
    region = RegionSettings(name="here", zone="CA-QC", executor="local", gpus="discover")
    settings = Settings(state_dir=tmp_path, regions=(region,), policy={"name": "run-now"})

    def discover(r: RegionSettings) -> Sequence[tuple[int, str]]:
        return [(0, "T4"), (3, "RTX6000-Ada")]

    daemon = build_daemon(settings, discover=discover)
    daemon.release = lambda: released.append(True)
    try:
        ids = [gpu.device_id for gpu in daemon.service.inventory]
        indices = [gpu.index for gpu in daemon.service.inventory]
    finally:
        daemon.close()

    assert ids == ["here/0", "here/3"] and indices == [0, 3]
    assert released == [True]
    assert (tmp_path / "ledger.db").is_file()


MODEL, GPU = "llama-1b", "T4"
# one measured 60 s run that drew 1.5x the estimated energy
RUN = Observation(MODEL, GPU, 100.0, 150.0, 60.0, 60.0)


@pytest.mark.parametrize("executor", ["simulated", "slurm"])
def test_the_recalibration_thresholds_follow_the_settings_at_start_and_reload(
    tmp_path: Path, executor: str
) -> None:
    """Whether GPUs are metered here (``simulated``: the measurement's learning) or not (a
    Slurm region: the service's own), ``[recalibration]`` decides when learned factors are used,
    and a reload applies new thresholds to what was learned."""
    region = RegionSettings(name="r", zone="CA-QC", executor=executor, gpus=(GPU,),
                            slurm={"partition": "p"} if executor == "slurm" else None)  # fmt: skip
    lenient = {"min_samples": 1, "min_measured_s": 60.0}
    settings = Settings(state_dir=tmp_path, regions=(region,), policy={"name": "run-now"},
                        recalibration=lenient)  # fmt: skip
    daemon = build_daemon(settings, gpu_clock=lambda: 0.0)
    try:
        assert (daemon.measurement is not None) == (executor == "simulated")
        learning = daemon.service.learning
        learning.recalibration = learning.recalibration.updated(RUN)
        assert learning.recalibration.energy_factor(MODEL, GPU) == pytest.approx(1.5)

        strict = Settings(state_dir=tmp_path, regions=(region,), policy={"name": "run-now"})
        reloaded = rebuild_service(daemon, strict, None).learning.recalibration
        assert reloaded.get(MODEL, GPU).samples == 1  # kept
        assert reloaded.energy_factor(MODEL, GPU) == 1.0  # defaults: 3 runs, 600 s

        back = rebuild_service(daemon, settings, None).learning.recalibration
        assert back.energy_factor(MODEL, GPU) == pytest.approx(1.5)
    finally:
        daemon.close()


@pytest.mark.parametrize(
    ("policy", "params", "planned"),
    [("run-now", {}, 4.0), ("carbon-window", {}, 4.0),
     ("carbon-window", {"lifetime_years": 6.0}, 6.0)],
)  # fmt: skip
def test_the_policy_plans_with_the_lifetime_outcomes_are_charged_with(
    tmp_path: Path, policy: str, params: dict[str, float], planned: float
) -> None:
    """``lifetime_years = 4`` charged outcomes over 4 years while every policy planned over
    its own default of 5 (predicted and measured embodied grams 25 % apart); a lifetime in
    the policy's own params still wins."""
    settings = Settings(
        state_dir=tmp_path, lifetime_years=4.0, policy={"name": policy, "params": params}
    )
    daemon = build_daemon(settings, gpu_clock=lambda: 0.0)
    try:
        chosen = daemon.service.policy
        params = getattr(chosen, "params", chosen)  # carbon-window keeps them in .params
    finally:
        daemon.close()
    assert params.lifetime_years == planned


def test_a_service_that_cannot_be_built_closes_the_chain_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload whose new config is valid but cannot be wired (a site's CSV that cannot be
    read) left the new intensity chain's HTTP session open for the garbage collector."""
    from daemon import assemble_service
    from daemon.errors import DaemonError
    from daemon.ledger import Ledger
    from daemon.settings import SiteSettings

    closed: list[bool] = []
    real = assemble_service.build_signal_chain

    class Spy:  # the wiring as built, its close() recorded
        def __init__(self, settings: Settings) -> None:
            wiring = real(settings, offline=True)
            self.chain, self.notes = wiring.chain, wiring.notes

        def close(self) -> None:
            closed.append(True)

    spy = Spy

    monkeypatch.setattr(assemble_service, "build_signal_chain", spy)
    site = SiteSettings(pv_csv=tmp_path / "missing.csv")
    region = RegionSettings(name="solar", zone="DE", executor="simulated", gpus=["T4"], site=site)
    settings = Settings(state_dir=tmp_path, regions=(region,))
    ledger = Ledger.open(tmp_path / "ledger.db")
    try:
        with pytest.raises(DaemonError, match=r"missing\.csv"):
            assemble_service.build_service(settings, ledger, build_executors(settings))
    finally:
        ledger.close()
    assert closed == [True]


@pytest.mark.parametrize("executor", ["simulated", "local"])
def test_a_job_of_a_region_a_reload_removed_ends_with_its_gpu_zone_and_grams(
    tmp_path: Path, executor: str
) -> None:
    """A reload that removed the region (or the GPU) a job was running on: the job was still
    polled to its end, but its outcome row had no zone and no PUE, and, where no GPU meter
    measured it, no estimated energy and no grams (the GPU was no longer in the inventory):
    the report's totals lost it. The GPUs of the runs in progress are kept for their ends."""
    from daemon.testing import FakeClock
    from tests.daemon.helpers import append, job_line

    gone = RegionSettings(name="a", zone="CA-QC", executor=executor, gpus=("T4",))
    kept = RegionSettings(name="b", zone="US-CAL-CISO", executor=executor, gpus=("T4",))
    settings = Settings(state_dir=tmp_path, regions=(gone,), policy={"name": "run-now"},
                        intensity={"source": "static"}, gpu={"backend": "simulated"})  # fmt: skip
    clock = FakeClock()
    daemon = build_daemon(settings, gpu_clock=clock.monotonic())
    try:
        daemon.service.start(clock())
        append(daemon.service.queue.path, job_line(id="j", command=["sleep", "0.2"]))
        daemon.service.tick(clock())
        assert daemon.ledger.job("j").state == "running"
        service = rebuild_service(daemon, settings.model_copy(update={"regions": (kept,)}), None)
        for _ in range(100):
            service.tick(clock.advance(60))
            if daemon.ledger.job("j").state != "running":
                break
            time.sleep(0.05)
        assert daemon.ledger.job("j").state == "succeeded"
        outcome = daemon.ledger.outcome("j")
        assert outcome is not None
        assert (outcome["region"], outcome["zone"], outcome["gpu"]) == ("a", "CA-QC", "T4")
        assert outcome["pue"] is not None and outcome["energy_j"] is not None
        assert outcome["total_g"] is not None and outcome["total_g"] > 0
    finally:
        daemon.close()


def test_a_previous_service_that_fails_to_close_leaves_the_new_one_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGHUP: the old service's close raising after the swap used to escape the reload, so
    the loop kept driving the old, closed service while the daemon held the new one."""
    settings = Settings(state_dir=tmp_path, policy={"name": "run-now"})
    daemon = build_daemon(settings, gpu_clock=lambda: 0.0)
    previous = daemon.service

    def broken_close() -> None:
        raise OSError("cannot write sites.json")

    monkeypatch.setattr(previous, "close", broken_close)
    try:
        with capture_logs() as events:
            service = rebuild_service(daemon, settings, None)
        assert service is not previous
        assert daemon.service is service
        failed = [e for e in events if e["event"] == "reload_close_failed"]
        assert len(failed) == 1 and failed[0]["log_level"] == "error"
    finally:
        daemon.close()
