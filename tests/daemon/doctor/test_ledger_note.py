"""``carbond doctor``'s ``ledger`` line notes a ledger other users can open (they can read
every job's argv, and stall the daemon's writes by locking ``ledger.db-shm``): a note, not a
failure, since that is the default (``[ledger] private = false``)."""

from __future__ import annotations

from pathlib import Path

from daemon.ledger.privacy import ledger_files
from tests.daemon.doctor.doctor_setup import healthy_setup, run_doctor


def test_a_ledger_readable_by_others_is_noted_not_failed(tmp_path: Path) -> None:
    state, config = healthy_setup(tmp_path)
    (state / "ledger.db").chmod(0o644)

    code, checks = run_doctor(config)

    assert code == 0
    assert checks["ledger"].startswith(f"pass: {state / 'ledger.db'}: schema v")
    assert checks["ledger"].endswith(
        "; note: readable by other users (ledger.db 0644): any of them can read every job's "
        "argv and cwd, and stall the daemon's ledger writes by locking ledger.db-shm; "
        '`[ledger] private = true` closes this (docs/operations.md, "Who can read the ledger")'
    )
    config.write_text(config.read_text() + "[ledger]\nprivate = true\n")
    assert run_doctor(config)[1]["ledger"].endswith(
        "; note: ledger.db 0644: `carbond run` makes them private (0600) when it next starts"
    )
    for file in ledger_files(state / "ledger.db"):
        if file.exists():
            file.chmod(0o600)
    assert "note" not in run_doctor(config)[1]["ledger"]
