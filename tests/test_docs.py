"""The README and docs/*.md name only what exists: every ``carbond`` command and option they
show (in code spans and code blocks) is one the parser has, every ``make`` target is in the
Makefile, every ``python -m`` module is a file of the repository, and every relative link
(with its ``#anchor``) leads to a file and heading that exist.

Figures and example outputs are checked elsewhere (tests/daemon/cli/test_demo.py,
tests/daemon/metrics/test_metrics_docs.py, tests/bench/test_accuracy_shared.py)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
IDS = [str(p.relative_to(ROOT)) for p in DOCS]

_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.M | re.S)
_SPAN = re.compile(r"`([^`\n]+(?:\n[^`\n]+)?)`")  # a span may wrap onto the next line
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")
_OPTION = re.compile(r"^-{1,2}[A-Za-z][\w-]*")


def _code(text: str) -> Iterator[str]:
    """What a page shows as code: each line of its fenced and indented blocks, and each
    inline span. Of an output block (```text) only the lines that start with ``$``; a line
    that continues the one before (``\\`` at its end, or indented and starting with ``[`` or
    ``-``) is joined to it."""
    text = re.sub(r"\\\n\s*", " ", text)
    blocks = [
        "\n".join(line for line in m.group(2).splitlines() if line.startswith("$ "))
        if m.group(1) == "text"
        else m.group(2)
        for m in _FENCE.finditer(text)
    ]
    prose = _FENCE.sub("", text)
    blocks.append("\n".join(line for line in prose.splitlines() if line.startswith("    ")))
    for block in blocks:
        lines: list[str] = []
        for line in block.splitlines():
            if lines and re.match(r"\s+[-\[]", line) and not line.lstrip().startswith("- "):
                lines[-1] += " " + line.strip()
            else:
                lines.append(line)
        yield from lines
    for m in _SPAN.finditer(prose):
        yield " ".join(m.group(1).split())


def _commands(text: str) -> Iterator[tuple[list[str], str]]:
    """``(words after carbond, the code line)`` for every line of code that runs carbond: it
    starts with ``carbond`` (after ``$``, ``sudo`` or ``VAR=value`` words), or a piece of it
    after ``|``, ``&&`` or ``;`` does."""
    for line in _code(text):
        words = line.split()
        start = 0
        while start < len(words):
            w = start
            while w < len(words) and (words[w] in ("$", "sudo") or _ENV.match(words[w])):
                w += 1
            if w < len(words) and words[w] in ("carbond", ".venv/bin/carbond"):
                argv, depth = [], 0
                for word in words[w + 1 :]:
                    if depth == 0 and (word in ("|", "&&", ";", "--") or word.startswith("#")):
                        break
                    depth += word.count("[") - word.count("]")
                    argv.append(word)
                yield argv, line
            # the next piece of a pipeline or command list
            rest = [i for i in range(w, len(words)) if words[i] in ("|", "&&", ";")]
            start = rest[0] + 1 if rest else len(words)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for action in parser._actions for o in action.option_strings}


def _problems(argv: list[str], root: argparse.ArgumentParser) -> Iterator[str]:
    """What in one ``carbond ARGV`` the parser does not have."""
    parser, name, words = root, "carbond", list(argv)
    while (subs := _subparsers(parser)) and words and not words[0].startswith(("-", "[")):
        if words[0] not in subs:
            yield f"{name}: no subcommand {words[0]!r}"
            return
        name, parser = f"{name} {words[0]}", subs[words.pop(0)]
    for word in words:
        m = _OPTION.match(word.lstrip("[("))
        if m and m.group(0) not in _options(parser):
            yield f"{name}: no option {m.group(0)}"


@pytest.mark.parametrize("page", DOCS, ids=IDS)
def test_every_carbond_command_and_option_shown_exists(page: Path) -> None:
    root = build_parser()
    wrong = [
        f"{problem}  (in: {line.strip()[:100]})"
        for argv, line in _commands(page.read_text(encoding="utf-8"))
        for problem in _problems(argv, root)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_command_scan_sees_the_commands() -> None:
    """Guards the scan itself: the pages' commands are found, continuation lines included."""
    seen = {
        (argv[0], word)
        for page in DOCS
        for argv, _ in _commands(page.read_text(encoding="utf-8"))
        if argv
        for word in argv
        if word.lstrip("[").startswith("-")
    }
    found = {(cmd, w.lstrip("[").rstrip("]").split("=")[0]) for cmd, w in seen}
    expected = {("submit", "--tensor-parallel"), ("replay", "--bound-window"),
                ("forecast", "--every-hours"), ("report", "--audit"), ("tune", "--grid"),
                ("doctor", "--state-dir"), ("estimate", "--prompts"),
                ("intensity", "--offline")}  # fmt: skip
    assert expected <= found, sorted(expected - found)
    assert len(found) > 100
    problems = list(_problems(["replay", "--nope"], build_parser()))
    assert problems == ["carbond replay: no option --nope"]


def test_every_make_target_shown_exists() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    wrong = [
        f"{page.name}: make {target}"
        for page in DOCS
        for line in _code(page.read_text(encoding="utf-8"))
        for target in re.findall(r"(?:^|[\s;&(])make ([a-z][\w-]*)", line)
        if target not in targets
    ]
    assert not wrong, wrong


def test_every_python_module_shown_exists() -> None:
    wrong = []
    for page in DOCS:
        for line in _code(page.read_text(encoding="utf-8")):
            for module, names in re.findall(r"python3? (?:-I )?-m ([\w.]+)((?: [a-z]\w*)*)", line):
                path = ROOT / module.replace(".", "/")
                ours = module.split(".")[0] in ("bench", "tests", "daemon", "policies")
                found = path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()
                if ours and not found:
                    wrong.append(f"{page.name}: python -m {module}")
                if module == "bench":  # python -m bench NAME...: bench/bench_NAME.py each
                    wrong += [f"{page.name}: python -m bench {name}" for name in names.split()
                              if not (ROOT / "bench" / f"bench_{name}.py").is_file()]  # fmt: skip
    assert not wrong, wrong


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", DOCS, ids=IDS)
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    wrong = []
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(#[^)\s]*)?\)", page.read_text("utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        path = page.parent / target if target else page
        if not path.exists():
            wrong.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", path.read_text("utf-8"), re.M)
            if anchor[1:] not in {_anchor(h) for h in headings}:
                wrong.append(f"{target}{anchor}: no such heading")
    assert not wrong, wrong


def _synopses(text: str) -> Iterator[tuple[list[str], str]]:
    """``(words after carbond, the line)`` of each synopsis: a fenced block whose first
    command (continuation lines joined) runs carbond with ``[optional]`` parts."""
    for m in _FENCE.finditer(re.sub(r"\\\n\s*", " ", text)):
        if m.group(1) == "text":
            continue
        first = next(_code(f"```\n{m.group(2)}```\n"), "")
        if first.startswith("carbond ") and "[" in first:
            argv = first.split()[1:]
            cut = [i for i, w in enumerate(argv) if w == "--" or w.startswith("#")]
            yield argv[: cut[0] if cut else len(argv)], first


@pytest.mark.parametrize("page", DOCS, ids=IDS)
def test_every_synopsis_shows_every_option_of_its_command(page: Path) -> None:
    """The reverse of the check above: a synopsis block lists each option its command
    has (until 2026-12-07 `carbond replay`'s left out `--optimum`)."""
    root, wrong = build_parser(), []
    for argv, line in _synopses(page.read_text(encoding="utf-8")):
        parser, name, words = root, "carbond", list(argv)
        while (subs := _subparsers(parser)) and words and words[0] in subs:
            name, parser = f"{name} {words[0]}", subs[words.pop(0)]
        shown = {m.group(0) for w in words if (m := _OPTION.match(w.lstrip("[(|")))}
        missing = sorted(_options(parser) - shown - {"-h", "--help"})
        if missing:
            wrong.append(f"{name}: {', '.join(missing)} not shown  (in: {line[:80]})")
    assert not wrong, "\n".join(wrong)


def test_the_synopsis_scan_sees_the_synopses() -> None:
    found = {
        " ".join(argv[:1])
        for page in DOCS
        for argv, _ in _synopses(page.read_text(encoding="utf-8"))
    }
    assert {"run", "doctor", "demo", "replay", "tune", "submit", "backup", "prune-logs"} <= found
