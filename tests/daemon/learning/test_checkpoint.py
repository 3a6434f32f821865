"""daemon.learning.checkpoint: a restart resumes from the ledger's recalibration checkpoint and
folds only the measured runs since, with factors equal (==, every field) to a fold of every run
from scratch; whenever that would not hold (the fold's inputs changed, rows up to the watermark
added, replaced or removed, a folded job's state or decision changed) it folds from scratch;
a schema-6 ledger migrates; a kill inside the checkpoint's write changes nothing learned."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from daemon.inventory import InventoryGpu, build_inventory
from daemon.learning.checkpoint import (
    _DAEMON_DIR,
    _DAEMON_SOURCES,
    Folded,
    FoldInputs,
    advance,
    checkpoint_due,
    peek,
    restore,
)
from daemon.ledger import SCHEMA_VERSION, Ledger
from daemon.settings import RegionSettings
from policies import Alternative, Decision
from policies.footprint import DEFAULT_GPU_CATALOG
from policies.footprint.recalibration import Recalibration, RecalibrationConfig
from tests.daemon.learning.measured_runs import (
    CONFIG,
    INVENTORY,
    MODELS,
    REGION,
    T0,
    Run,
    fold_from_scratch,
    job_request,
    record_run,
    sample_run,
)
from tests.daemon.ledger.undo_migrations import UNDO_VERSION_7, UNDO_VERSION_10, UNDO_VERSION_12
from tests.fuzzing import examples

REPO = Path(__file__).resolve().parents[3]
GPUS = ("A100-80GB", "T4", "H100")  # H100 is in no inventory below: its runs are skipped
SIMULATED_INVENTORY_REGION = REGION.model_copy(update={"name": "sim", "executor": "simulated"})
SIMULATED_INVENTORY = build_inventory((SIMULATED_INVENTORY_REGION,))


def _assert_marks_true(ledger: Ledger) -> None:
    """The stored checkpoint's marks (moved on by the rows since the previous one when it
    resumed) are what counting the whole ledger gives now (the succeeded jobs: with the moves
    to ``succeeded`` since)."""
    stored = ledger.recalibration_checkpoint()
    if stored is not None:
        then, now = stored.marks, ledger.ledger_marks(stored.watermark)
        assert (then.measured_rows, then.measured_rowid_sum) == (
            now.measured_rows,
            now.measured_rowid_sum,
        )
        db = sqlite3.connect(ledger.path)
        (moves,) = db.execute("SELECT count(*) FROM transitions WHERE seq > ? AND to_state"
                              " = 'succeeded'", (then.transitions_seq,)).fetchone()  # fmt: skip
        db.close()
        assert then.succeeded_jobs + moves == now.succeeded_jobs


def _assert_same(folded: Folded, expected: tuple[Recalibration, int]) -> None:
    recalibration, runs = expected
    assert folded.recalibration == recalibration
    assert dict(folded.recalibration.factors) == dict(recalibration.factors)  # every field
    assert folded.runs == runs


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.open(tmp_path / "ledger.db", durable=False)


def _ledger_with(ledger: Ledger, runs: int, first: int = 0) -> Ledger:
    for n in range(first, first + runs):
        record_run(ledger, f"j{n}", sample_run(n))
    return ledger


# -- random histories ----------------------------------------------------------------------

_runs = st.builds(
    Run,
    model=st.sampled_from(MODELS),
    requests=st.integers(1, 4096),
    gpu=st.sampled_from(GPUS),
    energy_j=st.floats(1.0, 1e8),
    duration_s=st.floats(0.5, 1e5),
    state=st.sampled_from(("succeeded", "succeeded", "succeeded", "failed")),
    minute=st.integers(-4, 12),  # after the previous run's: repeats, and goes back (stepped)
    runtime=st.sampled_from(("hf-eager", "vllm")),  # factors per runtime and precision too
    precision=st.sampled_from(("fp16", "bf16", "fp32")),
)
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("run"), _runs),
        st.tuples(st.just("restart"), st.none()),
        st.tuples(st.just("advance"), st.integers(1, 5)),  # a running daemon's, limited
    ),
    max_size=40,
)


@settings(max_examples=examples(0.02, floor=40), deadline=None)
@given(steps=_steps)
def test_restarts_at_random_points_learn_what_a_fold_from_scratch_learns(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, object]]
) -> None:
    path = tmp_path_factory.mktemp("history") / "ledger.db"
    minute = 0
    with Ledger.open(path, durable=False) as ledger:
        for n, (step, arg) in enumerate(steps):
            if step == "run":
                assert isinstance(arg, Run)
                minute += arg.minute
                record_run(ledger, f"j{n}", replace(arg, minute=minute))
            elif step == "restart":
                folded = restore(ledger, INVENTORY, CONFIG, T0)
                event(f"restart: {'resumed' if folded.from_checkpoint else 'from scratch'}")
                _assert_same(folded, fold_from_scratch(ledger))
                _assert_marks_true(ledger)
            else:
                assert isinstance(arg, int)
                advance(ledger, INVENTORY, CONFIG, T0, limit=arg)
                _assert_marks_true(ledger)
        _assert_same(restore(ledger, INVENTORY, CONFIG, T0), fold_from_scratch(ledger))
        _assert_same(restore(ledger, INVENTORY, CONFIG, T0), fold_from_scratch(ledger))  # again


def test_a_restart_folds_only_the_runs_since_the_checkpoint(ledger: Ledger) -> None:
    _ledger_with(ledger, 20)
    first = restore(ledger, INVENTORY, CONFIG, T0)
    assert (first.from_checkpoint, first.discarded, first.written) == (False, None, True)
    assert first.tail_rows == 20
    _ledger_with(ledger, 5, first=20)
    again = restore(ledger, INVENTORY, CONFIG, T0)
    assert (again.from_checkpoint, again.tail_rows, again.tail_runs) == (True, 5, 5)
    _assert_same(again, fold_from_scratch(ledger))
    stored = ledger.recalibration_checkpoint()
    assert stored is not None and stored.runs_folded == again.runs == 25
    _assert_marks_true(ledger)


def test_a_restart_without_new_runs_reads_no_row_and_writes_nothing(ledger: Ledger) -> None:
    _ledger_with(ledger, 6)
    restore(ledger, INVENTORY, CONFIG, T0)
    again = restore(ledger, INVENTORY, CONFIG, T0)
    assert (again.from_checkpoint, again.tail_rows, again.written) == (True, 0, False)
    _assert_same(again, fold_from_scratch(ledger))


def test_a_ledger_without_measured_runs_keeps_no_checkpoint(ledger: Ledger) -> None:
    folded = restore(ledger, INVENTORY, CONFIG, T0)
    assert (folded.runs, folded.written) == (0, False)
    assert ledger.recalibration_checkpoint() is None
    db = sqlite3.connect(ledger.path)
    assert db.execute("SELECT count(*) FROM recalibration_checkpoint_factors").fetchone() == (0,)
    db.close()


def test_a_start_after_jobs_nothing_measured_moves_the_checkpoint_marks_on(ledger: Ledger) -> None:
    """So the next start's checks read only the transitions and decisions after them."""
    _ledger_with(ledger, 5)
    restore(ledger, INVENTORY, CONFIG, T0)
    before = ledger.recalibration_checkpoint()
    for n in range(3):  # queued and never run: no outcome
        with ledger.transaction():
            ledger.add_job(job_request(f"q{n}", sample_run(n)), 1000, 1000, "queue.jsonl:1", T0)
    inputs = FoldInputs.of(CONFIG, INVENTORY)
    assert not checkpoint_due(ledger, inputs, every=1)  # 3 transitions since: not 10
    folded = restore(ledger, INVENTORY, CONFIG, T0)
    assert (folded.from_checkpoint, folded.tail_rows, folded.written) == (True, 0, True)
    after = ledger.recalibration_checkpoint()
    assert before is not None and after is not None
    assert after.marks.transitions_seq == before.marks.transitions_seq + 3
    assert (after.watermark, after.factors) == (before.watermark, before.factors)
    _assert_marks_true(ledger)
    for n in range(3, 13):
        with ledger.transaction():
            ledger.add_job(job_request(f"q{n}", sample_run(n)), 1000, 1000, "queue.jsonl:1", T0)
    assert checkpoint_due(ledger, inputs, every=1)  # 10 transitions since


def test_a_checkpoint_that_cannot_be_written_still_learns_from_scratch(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        _ledger_with(ledger, 7)
        expected = fold_from_scratch(ledger)
    with Ledger.open_readonly(path) as reader, capture_logs() as events:
        folded = restore(reader, INVENTORY, CONFIG, T0)
    _assert_same(folded, expected)
    assert not folded.written
    assert [e["event"] for e in events if e["log_level"] == "warning"] == [
        "recalibration_checkpoint_failed"
    ]


# -- each reason to fold from scratch ------------------------------------------------------


def _checkpointed(ledger: Ledger, runs: int = 12) -> Folded:
    _ledger_with(ledger, runs)
    folded = restore(ledger, INVENTORY, CONFIG, T0)
    assert folded.written
    return folded


@pytest.mark.parametrize(
    ("inventory", "config", "inputs", "reason"),
    [
        (INVENTORY, RecalibrationConfig(min_samples=5, min_measured_s=0.0), None,
         "recalibration settings changed"),
        (INVENTORY, RecalibrationConfig(min_samples=2, min_measured_s=0.0, decay=0.5), None,
         "recalibration settings changed"),
        (build_inventory((RegionSettings(name="qc", zone="CA-QC", executor="local",
                                         gpus=("A100-80GB",)),)),
         CONFIG, None, "inventory GPU types changed"),
        (build_inventory((REGION,), DEFAULT_GPU_CATALOG.with_overrides({"T4": {"tdp_w": 90}})),
         CONFIG, None, "GPU catalog changed"),
        (SIMULATED_INVENTORY, CONFIG, None,
         "inventory GPU types changed between real and simulated GPUs"),
        (INVENTORY, CONFIG, FoldInputs.of(CONFIG, INVENTORY, code="another estimator"),
         "estimator or catalog sources changed"),
        (INVENTORY, CONFIG, FoldInputs.of(CONFIG, INVENTORY, version="99.0"),
         "carbond version changed"),
    ],
)  # fmt: skip
def test_changed_inputs_fold_from_scratch(
    ledger: Ledger,
    inventory: Sequence[InventoryGpu],
    config: RecalibrationConfig,
    inputs: FoldInputs | None,
    reason: str,
) -> None:
    _checkpointed(ledger)
    _ledger_with(ledger, 3, first=12)
    folded = restore(ledger, inventory, config, T0, inputs=inputs)
    assert folded.discarded is not None and folded.discarded.startswith(reason)
    assert not folded.from_checkpoint and folded.tail_rows == 15
    _assert_same(folded, fold_from_scratch(ledger, inventory, config))
    again = restore(ledger, inventory, config, T0, inputs=inputs)  # the new one is used
    assert (again.from_checkpoint, again.discarded) == (True, None)
    _assert_same(again, fold_from_scratch(ledger, inventory, config))


def test_the_code_digest_reads_every_source_it_names() -> None:
    """A source moved or renamed would be digested as missing (``?``), so a change to it would
    no longer tell a restart that the checkpoint's fold is stale."""
    assert _DAEMON_DIR == REPO / "daemon"
    missing = [name for name in _DAEMON_SOURCES if not (_DAEMON_DIR / name).is_file()]
    assert not missing, f"code_digest names sources that are not there: {missing}"


def _sql(ledger: Ledger, *statements: str) -> None:
    """Statements another program (or a bug) runs on the ledger file."""
    db = sqlite3.connect(ledger.path)
    try:
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("UPDATE recalibration_checkpoint_factors SET energy_log = 'x'", "'x' is not a finite"),
        ("UPDATE recalibration_checkpoint_factors SET duration_log = 9e999", "inf is not a fin"),
        ("UPDATE recalibration_checkpoint SET folded_rowid = 'abc'", "'abc' is not an integer"),
        ("UPDATE recalibration_checkpoint SET measured_rows = 1.5", "1.5 is not an integer"),
        ("UPDATE recalibration_checkpoint_factors SET energy_log = 1000", "out of range"),
        ("UPDATE recalibration_checkpoint_factors SET samples = 0", "out of range"),
        ("UPDATE recalibration_checkpoint_factors SET early_json = '{'", "unreadable"),
        (
            "UPDATE recalibration_checkpoint_factors SET early_json = '{\"energy\": [[0.1, 0]]}'",
            "a weight <= 0",
        ),
        (
            "UPDATE recalibration_checkpoint_factors SET early_json = '{\"energy\": [[99, 5]]}'",
            "out of range",
        ),
    ],
)
def test_a_checkpoint_whose_values_do_not_read_folds_from_scratch(
    ledger: Ledger, statement: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # a hand edit: carbond run could not start (ValueError, OverflowError from a factor's
    # exp) nor carbond gpus --learned read the ledger, and the running daemon's reconcile
    # failed at every round; a checkpoint is derived state that a fold from scratch replaces
    _checkpointed(ledger)
    _sql(ledger, statement)
    due = checkpoint_due(ledger, FoldInputs.of(CONFIG, INVENTORY))  # reads no factor
    assert due == ("checkpoint_factors" not in statement)
    peeked = peek(ledger, INVENTORY, CONFIG)
    assert peeked.discarded is not None and reason in peeked.discarded
    _assert_same(peeked, fold_from_scratch(ledger))
    folded = restore(ledger, INVENTORY, CONFIG, T0)
    assert folded.discarded == peeked.discarded and folded.written
    _assert_same(folded, fold_from_scratch(ledger))
    again = restore(ledger, INVENTORY, CONFIG, T0)  # replaced by a readable one
    assert (again.from_checkpoint, again.discarded) == (True, None)


def test_an_unreadable_checkpoint_of_a_ledger_without_measured_runs_is_dropped(
    ledger: Ledger,
) -> None:
    _checkpointed(ledger)
    _sql(ledger, "UPDATE recalibration_checkpoint SET folded_rowid = 'abc'",
         "DELETE FROM outcomes")  # fmt: skip
    folded = restore(ledger, INVENTORY, CONFIG, T0)
    assert (folded.runs, folded.written) == (0, False)
    assert ledger.recalibration_checkpoint() is None


def test_a_replaced_outcome_row_folds_from_scratch(ledger: Ledger) -> None:
    _checkpointed(ledger)
    with ledger.transaction():  # j3 recorded again, later, with another measurement
        ledger.record_outcome("j3", T0 + timedelta(minutes=30), measured_energy_j=9e4,
                              duration_s=900.0)  # fmt: skip
    folded = restore(ledger, INVENTORY, CONFIG, T0)
    assert folded.discarded is not None and "outcome rows" in folded.discarded
    _assert_same(folded, fold_from_scratch(ledger))


def test_a_replaced_outcome_row_sorting_before_the_watermark_folds_from_scratch(
    ledger: Ledger,
) -> None:
    """The count up to the watermark stays: one row went, one came (a new rowid)."""
    _checkpointed(ledger)
    with ledger.transaction():
        ledger.record_outcome("j3", T0 + timedelta(minutes=5), measured_energy_j=9e4,
                              duration_s=900.0)  # fmt: skip
    folded = restore(ledger, INVENTORY, CONFIG, T0)
    assert folded.discarded is not None and "outcome rows" in folded.discarded
    _assert_same(folded, fold_from_scratch(ledger))


def test_a_run_recorded_before_the_watermark_folds_from_scratch(ledger: Ledger) -> None:
    _checkpointed(ledger)
    record_run(ledger, "late", sample_run(40, minute=4))  # the clock stepped back
    folded = restore(ledger, INVENTORY, CONFIG, T0)
    assert folded.discarded is not None and "outcome rows" in folded.discarded
    _assert_same(folded, fold_from_scratch(ledger))


def test_removed_rows_fold_from_scratch(ledger: Ledger) -> None:
    _checkpointed(ledger)
    _sql(ledger, "DELETE FROM outcomes WHERE job_id = 'j2'")
    folded = restore(ledger, INVENTORY, CONFIG, T0)
    assert folded.discarded is not None and "outcome rows" in folded.discarded
    _assert_same(folded, fold_from_scratch(ledger))


def test_a_folded_job_whose_state_changed_folds_from_scratch(ledger: Ledger) -> None:
    _checkpointed(ledger)
    _sql(ledger, "UPDATE jobs SET state = 'failed' WHERE job_id = 'j4'")  # no transition
    folded = restore(ledger, INVENTORY, CONFIG, T0)
    assert folded.discarded is not None and "succeeded jobs" in folded.discarded
    _assert_same(folded, fold_from_scratch(ledger))


def test_a_failed_folded_row_that_succeeded_since_folds_from_scratch(ledger: Ledger) -> None:
    """A measured run of a failed job is up to the watermark but taught nothing; moved to
    ``succeeded`` with a transition (the succeeded count agrees), it must be folded."""
    record_run(ledger, "f", sample_run(3, state="failed"))
    _checkpointed(ledger)
    _sql(ledger, "UPDATE jobs SET state = 'succeeded' WHERE job_id = 'f'",
         "INSERT INTO transitions (job_id, from_state, to_state, at, reason)"
         " VALUES ('f', 'failed', 'succeeded', '2024-06-01T01:00:00+00:00', 'edited')")  # fmt: skip
    folded = restore(ledger, INVENTORY, CONFIG, T0)
    assert folded.discarded is not None and "new transitions" in folded.discarded
    _assert_same(folded, fold_from_scratch(ledger))


def test_a_new_decision_of_a_folded_job_folds_from_scratch(ledger: Ledger) -> None:
    """A run is folded on its job's latest decision's GPU type."""
    _checkpointed(ledger)
    plan = Alternative(("qc/1",), "qc", "T4", T0, 60.0, 3.6e5, 30.0, 1.0, 0.1)
    with ledger.transaction():
        ledger.record_decision(Decision("j5", "start", "again", "test", plan, plan), T0)
    folded = restore(ledger, INVENTORY, CONFIG, T0)
    assert folded.discarded is not None and "new decisions" in folded.discarded
    _assert_same(folded, fold_from_scratch(ledger))


def test_runs_since_do_not_discard_the_checkpoint(ledger: Ledger) -> None:
    """New jobs of every kind after the watermark (failed, unmeasured, decided, waiting)."""
    _checkpointed(ledger)
    record_run(ledger, "failed", sample_run(30, state="failed"))
    _ledger_with(ledger, 4, first=31)
    plan = Alternative(("qc/1",), "qc", "T4", T0, 60.0, 3.6e5, 30.0, 1.0, 0.1)
    with ledger.transaction():
        ledger.add_job(job_request("waiting", sample_run(50)), 1000, 1000, "queue.jsonl:1", T0)
        ledger.record_decision(Decision("waiting", "hold", "later", "test", plan, plan), T0)
    folded = restore(ledger, INVENTORY, CONFIG, T0)
    assert (folded.from_checkpoint, folded.discarded, folded.tail_rows) == (True, None, 4)
    _assert_same(folded, fold_from_scratch(ledger))


# -- a running daemon's checkpoints --------------------------------------------------------


def test_checkpoints_while_running_fold_at_most_the_limit_and_catch_up(ledger: Ledger) -> None:
    inputs = FoldInputs.of(CONFIG, INVENTORY)
    _ledger_with(ledger, 4)
    assert not checkpoint_due(ledger, inputs, every=5)
    _ledger_with(ledger, 8, first=4)
    assert checkpoint_due(ledger, inputs, every=5)
    folded = advance(ledger, INVENTORY, CONFIG, T0, limit=5)
    assert (folded.tail_rows, folded.written) == (5, True)
    assert checkpoint_due(ledger, inputs, every=5)  # 7 past it
    advance(ledger, INVENTORY, CONFIG, T0, limit=5)
    assert not checkpoint_due(ledger, inputs, every=5)  # 2 past it
    changed = FoldInputs.of(RecalibrationConfig(min_samples=4), INVENTORY)
    assert checkpoint_due(ledger, changed, every=5)  # a reload changed the settings
    restart = restore(ledger, INVENTORY, CONFIG, T0)
    assert (restart.from_checkpoint, restart.tail_rows) == (True, 2)
    _assert_same(restart, fold_from_scratch(ledger))


def test_the_checkpoint_moves_past_measured_runs_of_failed_jobs(ledger: Ledger) -> None:
    """They teach nothing but count towards ``every``: the checkpoint moves past them, so it is
    not due again at each round."""
    inputs = FoldInputs.of(CONFIG, INVENTORY)
    for n in range(6):
        record_run(ledger, f"f{n}", sample_run(n, state="failed"))
    assert checkpoint_due(ledger, inputs, every=4)
    folded = advance(ledger, INVENTORY, CONFIG, T0, limit=4)
    assert (folded.runs, folded.tail_rows, folded.written) == (0, 0, True)
    assert not checkpoint_due(ledger, inputs, every=4)  # 2 past it
    _ledger_with(ledger, 3, first=10)
    assert checkpoint_due(ledger, inputs, every=4)
    folded = advance(ledger, INVENTORY, CONFIG, T0, limit=4)  # 2 failed, 2 succeeded
    assert (folded.runs, folded.tail_rows) == (2, 2)
    _assert_same(restore(ledger, INVENTORY, CONFIG, T0), fold_from_scratch(ledger))


# -- schema 6 and kills --------------------------------------------------------------------


def test_a_schema_6_ledger_migrates_and_learns_the_same(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        _ledger_with(ledger, 9)
        expected = fold_from_scratch(ledger)
    db = sqlite3.connect(path)  # as an older carbond left it
    db.executescript(UNDO_VERSION_7 + "DELETE FROM schema_migrations WHERE version > 6;"
                     "PRAGMA user_version = 6;")  # fmt: skip
    db.close()
    with Ledger.open(path) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
        first = restore(ledger, INVENTORY, CONFIG, T0)
        assert (first.from_checkpoint, first.written) == (False, True)
        _assert_same(first, expected)
        _assert_same(restore(ledger, INVENTORY, CONFIG, T0), expected)


def test_a_checkpoint_of_factors_not_yet_in_use_resumes_their_median(ledger: Ledger) -> None:
    # until in use a factor is the time-weighted median of its runs: a checkpoint that kept
    # only the factor would resume a median from one point, not from the runs it folded
    config = RecalibrationConfig(min_samples=3, min_measured_s=3000.0)
    for n in range(4):
        record_run(ledger, f"j{n}", replace(sample_run(n, minute=n), model=MODELS[n % 2]))
    first = restore(ledger, INVENTORY, config, T0)
    assert first.written and not any(first.recalibration.in_use(*key)
                                     for key in first.recalibration.factors)  # fmt: skip
    for n in range(4, 12):
        record_run(ledger, f"j{n}", replace(sample_run(n, minute=n), model=MODELS[n % 2]))
    resumed = restore(ledger, INVENTORY, config, T0)
    assert resumed.from_checkpoint
    _assert_same(resumed, fold_from_scratch(ledger, INVENTORY, config))


def test_a_schema_9_checkpoint_is_dropped_and_folded_again(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        _ledger_with(ledger, 9)
        restore(ledger, INVENTORY, CONFIG, T0)
        expected = fold_from_scratch(ledger)
    db = sqlite3.connect(path)  # as carbond 9 left it: its checkpoint's factors are means
    db.executescript(UNDO_VERSION_10 + "DELETE FROM schema_migrations WHERE version > 9;"
                     "PRAGMA user_version = 9;")  # fmt: skip
    db.close()
    with Ledger.open(path) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
        assert ledger.recalibration_checkpoint() is None
        folded = restore(ledger, INVENTORY, CONFIG, T0)
        assert (folded.from_checkpoint, folded.written) == (False, True)
        _assert_same(folded, expected)


def test_a_schema_11_checkpoint_of_pairs_only_is_dropped_and_folded_again(tmp_path: Path) -> None:
    # carbond 11 kept one factor per (model, GPU type), eager and vLLM runs mixed: resuming
    # from it would lose the runtimes' own factors until a fold from scratch
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        for n in range(9):
            record_run(
                ledger, f"j{n}", replace(sample_run(n), runtime="vllm" if n % 2 else "hf-eager")
            )
        restore(ledger, INVENTORY, CONFIG, T0)
        stored = ledger.recalibration_checkpoint()
        expected = fold_from_scratch(ledger)
    assert stored is not None and {f.runtime for f in stored.factors} == {"", "hf-eager", "vllm"}
    db = sqlite3.connect(path)  # as carbond 11 left it: a row per pair
    db.executescript(UNDO_VERSION_12 + "DELETE FROM schema_migrations WHERE version > 11;"
                     "PRAGMA user_version = 11;")  # fmt: skip
    db.executemany("INSERT INTO recalibration_checkpoint_factors VALUES (?, ?, ?, ?, ?, ?, NULL)",
                   [(f.model, f.gpu, f.samples, f.energy_log, f.duration_log, f.measured_s)
                    for f in stored.factors if f.coarse])  # fmt: skip
    db.commit()
    db.close()
    with Ledger.open(path) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
        assert ledger.recalibration_checkpoint() is None
        folded = restore(ledger, INVENTORY, CONFIG, T0)
        assert (folded.from_checkpoint, folded.written) == (False, True)
        _assert_same(folded, expected)
        assert ledger.recalibration_checkpoint() == stored


_KILLED = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from daemon.learning.checkpoint import restore
from daemon.ledger import Ledger
from tests.daemon.learning.measured_runs import CONFIG, INVENTORY
with Ledger.open(Path(sys.argv[1])) as ledger:
    restore(ledger, INVENTORY, CONFIG, datetime(2024, 6, 1, tzinfo=UTC))
print("not killed")
"""


@pytest.mark.parametrize("checkpointed", [False, True])
def test_a_kill_while_writing_the_checkpoint_changes_nothing_learned(
    tmp_path: Path, checkpointed: bool
) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        _ledger_with(ledger, 10)
        if checkpointed:
            restore(ledger, INVENTORY, CONFIG, T0)
        _ledger_with(ledger, 4, first=10)
        before = ledger.recalibration_checkpoint()
    env = {**os.environ, "CARBOND_KILL_AT": "recalibration_checkpoint"}
    done = subprocess.run([sys.executable, "-c", _KILLED, str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == -9, done.stderr
    with Ledger.open(path) as ledger:
        assert ledger.recalibration_checkpoint() == before  # rolled back: the previous one
        folded = restore(ledger, INVENTORY, CONFIG, T0)
        assert folded.from_checkpoint == checkpointed
        _assert_same(folded, fold_from_scratch(ledger))


def test_the_simulated_executors_runs_teach_only_its_gpus_of_their_type(
    ledger: Ledger,
) -> None:
    # a region tried on the simulated executor (its GPUs drawing 1.3 x the catalog) and then
    # switched to real GPUs of the same types, same state dir: the restart planned the real
    # GPUs on the factors the simulation taught (and kept them in the checkpoint)
    for n in range(9):
        record_run(ledger, f"sim{n}" if n < 6 else f"real{n}", sample_run(n))
    _sql(ledger, "INSERT INTO runs (job_id, executor, device_ids_json, gpu_indices_json,"
                 " launched_at) SELECT job_id, CASE WHEN job_id LIKE 'sim%' THEN 'simulated'"
                 " ELSE 'local' END, '[\"qc/0\"]', '[0]', recorded_at FROM outcomes")  # fmt: skip
    simulated = restore(ledger, SIMULATED_INVENTORY, CONFIG, T0)
    assert simulated.runs == 6  # the simulated runs only
    real = restore(ledger, INVENTORY, CONFIG, T0)
    assert real.discarded == "inventory GPU types changed between real and simulated GPUs"
    assert real.runs == 3  # the real runs only
    assert real.recalibration == fold_from_scratch(ledger, INVENTORY, CONFIG)[0]
    both = build_inventory((REGION, SIMULATED_INVENTORY_REGION))
    assert restore(ledger, both, CONFIG, T0).runs == 3  # real evidence wins


def test_a_daemon_with_simulated_and_real_gpus_of_a_type_learns_from_the_real_runs_only(
    ledger: Ledger,
) -> None:
    # a simulated region and a local region of the same GPU types, one state dir: the
    # simulation's runs (here 3x the estimate, as a truth_factor would make them) taught the
    # real GPUs' factors, before and after the first real run
    for n in range(9):
        simulated = n % 3 != 2
        run = Run(MODELS[0], 512 + n, "A100-80GB", (3.0 if simulated else 1.1) * 4e4,
                  300.0 + n, "succeeded", n)  # fmt: skip
        record_run(ledger, f"sim{n}" if simulated else f"real{n}", run)
    _sql(ledger, "INSERT INTO runs (job_id, executor, device_ids_json, gpu_indices_json,"
                 " launched_at) SELECT job_id, CASE WHEN job_id LIKE 'sim%' THEN 'simulated'"
                 " ELSE 'local' END, '[\"qc/0\"]', '[0]', recorded_at FROM outcomes")  # fmt: skip
    both = build_inventory((REGION, SIMULATED_INVENTORY_REGION))
    mixed = restore(ledger, both, CONFIG, T0)
    real_only = fold_from_scratch(ledger, INVENTORY, CONFIG)[0]
    assert mixed.runs == 3
    assert mixed.recalibration.get(MODELS[0], "A100-80GB").samples == 3
    assert mixed.recalibration.factors == real_only.factors
    assert peek(ledger, both, CONFIG).recalibration.factors == real_only.factors
