"""The one rule for whether a queue file's owner can vouch for its lines
(:func:`daemon.queue.file_verdict.file_verdict`): writable by others first, then hard-linked,
so a file that is both is named writable everywhere (daemon, submit, doctor)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.queue.file_verdict import file_verdict


@pytest.mark.parametrize(
    ("mode", "links", "expected"),
    [
        (0o644, 1, None),
        (0o600, 1, None),
        (0o664, 1, "writable"),
        (0o646, 1, "writable"),
        (0o644, 2, "linked"),
        (0o666, 2, "writable"),
    ],
)
def test_the_verdict_names_writable_before_linked(
    tmp_path: Path, mode: int, links: int, expected: str | None
) -> None:
    path = tmp_path / "queue.jsonl"
    path.write_bytes(b"")
    path.chmod(mode)
    for n in range(1, links):
        os.link(path, tmp_path / f"other-{n}")
    assert file_verdict(os.lstat(path)) == expected
