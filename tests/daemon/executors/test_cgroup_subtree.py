"""The real-cgroup tests' skip messages: where the kernel has a controller the cgroup2
subtree lacks (:func:`~tests.daemon.executors.cgroup_subtree.controller_whereabouts`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon.executors.cgroup_subtree import controller_whereabouts

# /proc/cgroups of a hybrid host (systemd's default before v2 only): pids on cgroup v1
PROC_CGROUPS = """#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t1\t1
memory\t0\t85\t1
pids\t8\t1\t1
rdma\t9\t1\t0
"""


@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("pids", "pids attached to cgroup v1 hierarchy 8"),
        ("memory", "memory on cgroup v2 (or mounted nowhere), not handed down to this subtree"),
        ("rdma", "rdma disabled in this kernel (cgroup_disable=)"),
        ("misc", "misc not in this kernel (not in"),
    ],
)
def test_a_skip_says_where_the_controller_is(tmp_path: Path, name: str, where: str) -> None:
    """The pids tests skipped with "no pids controller" on a hybrid host, which has one, on
    cgroup v1: the reader could not tell why. The skip now says where it is."""
    proc = tmp_path / "cgroups"
    proc.write_text(PROC_CGROUPS)
    assert controller_whereabouts(name, proc).startswith(where)
    assert controller_whereabouts(name, proc).endswith(f"{proc})")
