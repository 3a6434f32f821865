"""A held job whose new plan turns its GRES request from untyped (``gpu:2``: GPUs of mixed
types, or no layout known) to typed (``gpu:t4:1``) or back: Slurm refuses such an
``scontrol update`` whole ("with and without type identification", seen on Slurm 22.05), so
the job is taken back and submitted afresh (:meth:`SlurmExecutor._move`), not left where it
was with its old start."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from daemon.executors.slurm import SlurmExecutor, Target
from daemon.executors.slurm.commands import slurm_time
from daemon.executors.slurm.queries import Token
from policies.footprint import DEFAULT_GPU_CATALOG
from tests.daemon.executors.fake_slurm import T0, FakeSlurm, launch_spec

_PLANNED = T0 + timedelta(hours=1)
_LATER = T0 + timedelta(hours=3)


def _mixed_node(slurm: FakeSlurm) -> SlurmExecutor:
    """Region ``qc`` on partition alpha, whose node n1 has an A100 (``qc/0``) and a T4."""
    slurm.nodes = slurm.nodes.replace("Gres=gpu:t4:2", "Gres=gpu:a100:1(S:0),gpu:t4:1(S:1)")
    executor = SlurmExecutor({"qc": Target("alpha")}, runner=slurm,
                             gpu_names={"qc": {"a100": "A100-80GB"}},
                             known_gpus=DEFAULT_GPU_CATALOG.names())  # fmt: skip
    assert executor.discover("qc") == [(0, "A100-80GB"), (1, "T4")]
    return executor


def test_a_held_job_moved_from_mixed_gpus_to_one_type_is_resubmitted_at_its_new_start(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    executor = _mixed_node(slurm)
    both = replace(launch_spec(tmp_path), device_ids=("qc/0", "qc/1"), gpu_indices=(0, 1))
    held = executor.hold(both, _PLANNED, "", T0)
    [first] = slurm.jobs.values()
    assert first.gres == "gpu:2"  # an A100 and a T4: any type

    moved = executor.hold(launch_spec(tmp_path, "qc", "qc/1"), _LATER, held.token, T0)

    old, new = slurm.jobs.values()
    assert old.held and old.state == "CANCELLED"
    assert (new.gres, new.start, new.state) == ("gpu:t4:1", slurm_time(_LATER), "PENDING")
    assert Token.decode("j1", moved.token).slurm_id != Token.decode("j1", held.token).slurm_id


def test_a_held_job_released_onto_mixed_gpus_from_one_type_is_submitted_to_start_now(
    tmp_path: Path,
) -> None:
    slurm = FakeSlurm()
    executor = _mixed_node(slurm)
    held = executor.hold(launch_spec(tmp_path, "qc", "qc/1"), _PLANNED, "", T0)
    both = replace(launch_spec(tmp_path), device_ids=("qc/0", "qc/1"), gpu_indices=(0, 1))

    handle = executor.release(both, held.token, T0)

    old, new = slurm.jobs.values()
    assert (old.gres, old.state) == ("gpu:t4:1", "CANCELLED")
    assert (new.gres, new.state) == ("gpu:2", "RUNNING")
    assert Token.decode("j1", handle.token).slurm_id != Token.decode("j1", held.token).slurm_id


def test_a_move_that_keeps_a_typed_request_typed_is_still_made_in_place(tmp_path: Path) -> None:
    slurm = FakeSlurm()
    executor = _mixed_node(slurm)
    held = executor.hold(launch_spec(tmp_path, "qc", "qc/1"), _PLANNED, "", T0)

    executor.hold(launch_spec(tmp_path, "qc", "qc/0"), _LATER, held.token, T0)

    [job] = slurm.jobs.values()
    assert (job.gres, job.start, job.state) == ("gpu:a100:1", slurm_time(_LATER), "PENDING")
