"""Counts as Slurm prints them (GPUs, uids, exit codes, job ids, host numbers): ASCII digits.

``str.isdigit`` alone lets through what ``int`` refuses: ``²`` is a digit to it, and ``int``
reads no more than 4,300 digits; ``\\d`` in a pattern matches ``٣``. Slurm's counts are at
most 64-bit, so a longer run of digits is no count either.
"""

from __future__ import annotations

import re

__all__ = ["COUNT", "read_count"]

# A count in a pattern: 1 to 20 ASCII digits (2**64 - 1 has 20).
COUNT = "[0-9]{1,20}"
_WHOLE = re.compile(COUNT)


def read_count(text: str) -> int | None:
    """``text`` as a count (1 to 20 ASCII digits, nothing else), None when it is not one."""
    return int(text) if _WHOLE.fullmatch(text) is not None else None
