"""The README's annotated repository tree ("Repository layout") names only files and folders
that exist, each where the tree puts it, and has a line for every folder of the three packages
(``daemon/run_now_busy/`` had none)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME_WIDTH = 22  # the tree's name column; its comments start past it
PACKAGES = ("forecasts", "policies", "daemon")


def _tree(readme: str) -> list[str]:
    section = readme[readme.index("## Repository layout") :]
    block = re.search(r"^```\n(.*?)^```", section, re.M | re.S)
    assert block is not None, "no tree under ## Repository layout"
    return block.group(1).splitlines()


def entries(lines: list[str], root: Path) -> Iterator[tuple[str, Path | None, Path]]:
    """``(line, the path its name column names or None, the folder it is under)``: a name is
    under the nearest less indented folder above it; the ``x.py`` of a comment is in that
    folder, one of its subfolders, or beside it ("Beside it: busy.py")."""
    stack: list[tuple[int, Path]] = []
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if indent >= NAME_WIDTH or not line.strip():  # a comment's continuation
            yield line, None, stack[-1][1] if stack else root
            continue
        name = line.split()[0].rstrip(",")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        base = stack[-1][1] if stack else root
        path = base / name.rstrip("/")
        if name.endswith("/"):
            stack.append((indent, path))
        yield line, path, path if name.endswith("/") else base


def problems(lines: list[str], root: Path) -> Iterator[str]:
    for line, path, folder in entries(lines, root):
        if path is not None and not path.exists():
            yield f"{path.relative_to(root)}: no such file or folder"
        comment = line[NAME_WIDTH:] if path is not None else line
        for module in re.findall(r"\b(\w+\.py)\b", comment):
            if not any(folder.rglob(module)) and not (folder.parent / module).is_file():
                yield f"{module}: not in {folder.relative_to(root)}/ (line: {line.strip()})"


def test_every_file_and_folder_of_the_tree_exists() -> None:
    wrong = list(problems(_tree((ROOT / "README.md").read_text("utf-8")), ROOT))
    assert not wrong, "\n".join(wrong)


def test_every_folder_of_the_packages_is_in_the_tree() -> None:
    lines = _tree((ROOT / "README.md").read_text("utf-8"))
    named = {p for _, p, _ in entries(lines, ROOT) if p is not None}
    said = "\n".join(lines)
    folders = [
        d
        for package in PACKAGES
        for d in sorted((ROOT / package).iterdir())
        if d.is_dir() and any(d.glob("*.py"))
    ]
    missing = [
        str(d.relative_to(ROOT))
        for d in folders
        if d not in named and not re.search(rf"\b{d.name}/", said)
    ]
    assert len(folders) > 15
    assert not missing, missing


def test_the_scan_places_names_in_their_folders() -> None:
    lines = [
        "daemon/               everything",
        "  ledger/             SQLite: store.py, kept.py",
        "  statedir.py         a file",
        "  nope/               no such folder",
        "                      nope.py: continues",
        "policies/             the core; greedy.py, busy.py",
    ]
    found = {(str(p.relative_to(ROOT)) if p else None) for _, p, _ in entries(lines, ROOT)}
    assert {"daemon", "daemon/ledger", "daemon/statedir.py", "policies"} <= found
    assert list(problems(lines, ROOT)) == [
        "daemon/nope: no such file or folder",
        "nope.py: not in daemon/nope/ (line: nope.py: continues)",
        "busy.py: not in policies/ (line: policies/             the core; greedy.py, busy.py)",
    ]
