"""docs/gpus.md's table of NVML errors is the translation the NVML backend makes: each NVML
code it names becomes the carbond error the table gives, for a device query and for
``nvmlInit`` where the table tells them apart, and any other code a plain ``GpuError``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daemon.gpu import errors, fake_nvml_errors
from daemon.gpu.fake_nvml_errors import NVMLError
from daemon.gpu.nvml import _translate

PAGE = Path(__file__).resolve().parents[3] / "docs" / "gpus.md"


def _table() -> list[tuple[list[str], str]]:
    """``(NVML names, carbond cell)`` per row of the page's NVML table."""
    rows = re.findall(
        r"^\| (`[A-Z_]+`.*?|anything else) \| (.*`\w+Error`.*) \|$", PAGE.read_text(), re.M
    )
    return [(re.findall(r"`([A-Z_]+)`", nvml), carbond) for nvml, carbond in rows]


def _class(cell: str, where: str) -> str:
    """The error class a cell gives: its only one, or the one ``for <where>`` names."""
    classes = re.findall(rf"`(\w+Error)`[^`]*?for (?:a )?`?{where}", cell) if where else []
    found = classes or re.findall(r"`(\w+Error)`", cell)
    assert len(found) == 1 or where, cell
    return found[0]


def _translated(name: str, index: int) -> str:
    code = getattr(fake_nvml_errors, f"NVML_ERROR_{name}")
    return type(_translate(NVMLError(code), "nvmlCall", index)).__name__


def test_the_table_names_every_code_the_backend_tells_apart() -> None:
    rows = _table()
    named = {name for names, _ in rows for name in names}
    assert {"NOT_SUPPORTED", "GPU_IS_LOST", "NO_PERMISSION", "LIBRARY_NOT_FOUND",
            "FUNCTION_NOT_FOUND", "LIB_RM_VERSION_MISMATCH"} <= named  # fmt: skip
    assert rows[-1][1] == "`GpuError`"
    for names, cell in rows:
        for name in names:
            query = _class(cell, "device query" if "nvmlInit" in cell else "")
            init = _class(cell, "nvmlInit") if "nvmlInit" in cell else query
            assert (_translated(name, 0), _translated(name, -1)) == (query, init), name
            assert issubclass(getattr(errors, query), errors.GpuError)


@pytest.mark.parametrize("name", ["TIMEOUT", "UNKNOWN", "INVALID_ARGUMENT", "MEMORY"])
def test_a_code_the_table_leaves_to_anything_else_is_a_plain_gpu_error(name: str) -> None:
    assert name not in {n for names, _ in _table() for n in names}
    assert _translated(name, 0) == "GpuError"
