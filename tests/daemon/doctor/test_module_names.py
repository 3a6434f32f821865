"""The doctor reads what the supervision writes (``health.json``): its modules are named by
their own concept, so a traceback or a log line naming one cannot be taken for the other."""

from __future__ import annotations

from pathlib import Path

import daemon.doctor
import daemon.supervision


def _modules(package: object) -> set[str]:
    folder = Path(str(getattr(package, "__file__", ""))).parent
    return {path.stem for path in folder.glob("*.py")} - {"__init__"}


def test_the_doctor_and_the_supervision_share_no_module_name() -> None:
    """``daemon/doctor/health.py`` (the doctor's check of the running daemon) and
    ``daemon/supervision/health.py`` (the file the daemon writes) were both ``health.py``."""
    assert _modules(daemon.doctor) & _modules(daemon.supervision) == set()
    assert "running_daemon" in _modules(daemon.doctor)
