"""The README's ``carbond doctor`` line names every check doctor runs, by the name its output
gives it (until 2026-12-07 it named neither ``gpus`` nor ``wrapper``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from daemon.doctor.checks import run_checks

README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readme_doctor_line_names_every_check(tmp_path: Path) -> None:
    bad = tmp_path / "carbond.toml"
    bad.write_text("[policy]\nname = 1\n")  # every check, most skipped: only the names count
    names = [check.name for check in run_checks(bad, datetime.now(UTC))]
    [comment] = [
        line.split("#", 1)[1]
        for line in README.read_text(encoding="utf-8").splitlines()
        if re.match(r"\s+carbond doctor\s+#", line)
    ]

    missing = [name for name in names if not re.search(rf"\b{name}\b", comment)]

    assert len(names) > 10
    assert not missing, f"README's `carbond doctor` line does not name {missing}: {comment}"
