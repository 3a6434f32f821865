"""Fixtures shared by every test package, and the hypothesis profiles.

Profiles (``--hypothesis-profile NAME``): ``ci``, the default, runs each property test for a
few seconds at most; ``fuzz`` (``make fuzz``) sets ``CARBOND_FUZZ_EXAMPLES`` examples (default
17,000), which a test may scale by a weight (cheap properties run more). Every hypothesis test
is marked ``fuzz`` at collection, and the number of examples run is printed at the end.

``make test`` runs the suite in parallel (pytest-xdist, ``--dist loadgroup``): the tests on the
one local Slurm cluster (marked ``slurm``, or asking for ``slurm_cluster``), which must all live
under ``tests/slurm/`` (collection stops saying so otherwise), are one work unit
(tests/xdist_slurm.py), so they run one after another on one worker while the others run beside
them; the workers' example counts are summed for the closing line.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, settings

from tests.slurm.cluster import REQUIRE_ENV, SlurmCluster, unavailable_reason
from tests.slurm.localcluster import Layout

REPO_ROOT = Path(__file__).resolve().parents[1]

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("CARBOND_FUZZ_EXAMPLES", "17000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
settings.load_profile("ci")

_EXAMPLES: dict[str, int] = {}
_EXAMPLES_KEY = "carbond_hypothesis_examples"  # in an xdist worker's ``workeroutput``
SLURM_TESTS = REPO_ROOT / "tests" / "slurm"  # every test on the shared local Slurm cluster


def _counting(nodeid: str, inner: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(inner)
    def run(*args: Any, **kwargs: Any) -> Any:
        _EXAMPLES[nodeid] = _EXAMPLES.get(nodeid, 0) + 1
        return inner(*args, **kwargs)

    return run


def _on_slurm(item: pytest.Item) -> bool:
    return item.get_closest_marker("slurm") is not None or "slurm_cluster" in getattr(
        item, "fixturenames", ()
    )


def slurm_tests_elsewhere(items: list[pytest.Item]) -> list[str]:
    """The node ids of tests on the local Slurm cluster that are not under ``tests/slurm/``."""
    return [
        i.nodeid for i in items if _on_slurm(i) and not i.path.resolve().is_relative_to(SLURM_TESTS)
    ]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every hypothesis test ``fuzz`` and count the examples it runs; refuse a test on the
    local Slurm cluster outside ``tests/slurm/`` (``make test`` would run it beside them).

    Raises:
        pytest.UsageError: such a test was collected (named in the message).
    """
    if elsewhere := slurm_tests_elsewhere(items):
        raise pytest.UsageError(
            f"{', '.join(elsewhere)}: a test on the local Slurm cluster goes under tests/slurm/ "
            "(make test runs those one at a time, on one worker)"
        )
    for item in items:
        test = getattr(item, "obj", None)
        if getattr(test, "is_hypothesis_test", False) and test is not None:
            item.add_marker(pytest.mark.fuzz)
            handle = test.hypothesis  # documented: inner_test may be replaced to wrap it
            handle.inner_test = _counting(item.nodeid, handle.inner_test)


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own; absent without xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with every test under ``tests/slurm/`` in one work unit."""
    if config.getoption("dist") != "loadgroup":
        return None
    from tests.xdist_slurm import SlurmGroupScheduling  # imports xdist: only where it runs

    return SlurmGroupScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In an xdist worker, hand its example counts to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_EXAMPLES_KEY] = dict(_EXAMPLES)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: absent when the plugin is not installed
def pytest_testnodedown(node: Any, error: object) -> None:
    """In the xdist controller, add up the example counts of a worker that finished."""
    for nodeid, count in getattr(node, "workeroutput", {}).get(_EXAMPLES_KEY, {}).items():
        _EXAMPLES[nodeid] = _EXAMPLES.get(nodeid, 0) + count


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """``hypothesis: N examples in M property tests`` when any ran."""
    if _EXAMPLES:
        total = sum(_EXAMPLES.values())
        terminalreporter.write_line(
            f"hypothesis: {total:,} examples in {len(_EXAMPLES)} property tests "
            f"(profile {settings().max_examples:,} before each test's weight)"
        )


def shared_data_dir() -> Path:
    """Where the third-party data lives: ``$CARBOND_SHARED_DATA`` or ``../shared/data``."""
    return Path(os.environ.get("CARBOND_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder; the test is skipped, with the reason, when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"third-party data not found at {path} (set CARBOND_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def _slurm_cluster_session() -> SlurmCluster:
    layout = Layout.from_env()
    reason = unavailable_reason(layout)
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return SlurmCluster(layout)


@pytest.fixture
def slurm_cluster(_slurm_cluster_session: SlurmCluster) -> Iterator[SlurmCluster]:
    """The local Slurm cluster (``make slurm-up``), clean before and after the test.

    Skipped, with the reason, when it is not up; failed instead under ``CARBOND_REQUIRE_SLURM=1``.
    See tests/slurm/cluster.py for what it offers.
    """
    _slurm_cluster_session.reset()
    yield _slurm_cluster_session
    _slurm_cluster_session.reset()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The stdlib root logger and structlog's configuration as they were before the test (for
    tests that call ``configure_logging``)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)
