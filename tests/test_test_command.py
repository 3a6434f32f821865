"""The test command (``make test``): the suite on pytest-xdist workers with ``--dist loadgroup``,
every test on the one local Slurm cluster in one work unit (tests/xdist_slurm.py), and the
hypothesis closing line still counting the workers' examples."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests import conftest
from tests.slurm.cluster import REQUIRE_ENV

ROOT = Path(__file__).resolve().parents[1]


def test_make_test_runs_the_suite_on_xdist_workers_grouped_by_loadgroup() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    found = re.search(r"^test:.*\n\t(.+)$", makefile, re.MULTILINE)
    assert found, "the Makefile has no `test` target"
    argv = found.group(1).split()
    assert argv[:3] == ["$(BIN)/python", "-m", "pytest"]
    assert "-n" in argv and argv[argv.index("-n") + 1] == "$(TEST_WORKERS)"
    assert "--dist" in argv and argv[argv.index("--dist") + 1] == "loadgroup"
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = config["project"]["optional-dependencies"]["test"]
    assert any(re.match(r"pytest-xdist\b", spec) for spec in extras), extras
    assert "-n" not in config["tool"]["pytest"]["ini_options"]["addopts"]  # plain pytest: no xdist


def test_xdist_runs_the_slurm_tests_on_one_worker_and_counts_every_workers_examples(
    tmp_path: Path,
) -> None:
    """A real ``-n 3 --dist loadgroup`` run (the Slurm tests skip: no cluster at the folder
    given): every test under tests/slurm/ ran on one worker, and the closing line counts the
    examples of the hypothesis tests, which ran on the others."""
    pytest.importorskip("xdist")
    env = {k: v for k, v in os.environ.items() if k not in (REQUIRE_ENV, "SLURM_CONF")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "3", "--dist", "loadgroup", "-v",
         "-p", "no:cacheprovider", "tests/daemon/test_isotime.py",
         "tests/slurm/test_noexec_on_slurm.py", "tests/slurm/test_names_on_slurm.py"],
        cwd=ROOT, env={**env, "CARBOND_SLURM_DIR": str(tmp_path / "no-cluster")},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ran = re.findall(r"^\[(gw\d+)\] \[ *\d+%\] (\w+) (\S+)", done.stdout, re.MULTILINE)
    on_slurm = {(worker, outcome) for worker, outcome, test in ran if "/slurm/" in test}
    assert len(on_slurm) == 1 and next(iter(on_slurm))[1] == "SKIPPED", ran
    assert len([test for _, _, test in ran if "/slurm/" in test]) == 4, ran
    assert "hypothesis: 120 examples in 2 property tests" in done.stdout, done.stdout


def test_a_test_on_the_slurm_cluster_outside_tests_slurm_is_named(
    request: pytest.FixtureRequest,
) -> None:
    """make test groups the Slurm tests by where they live: one elsewhere would run beside
    them on the shared cluster, so collection refuses it (this test, marked ``slurm`` here)."""
    assert conftest.slurm_tests_elsewhere([request.node]) == []
    request.node.add_marker(pytest.mark.slurm)
    assert conftest.slurm_tests_elsewhere([request.node]) == [request.node.nodeid]
