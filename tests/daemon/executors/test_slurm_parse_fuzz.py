"""Fuzzing the Slurm parsers: whatever ``squeue``, ``sacct``, ``scontrol`` and ``sbatch``
print (odd fields, wrong field counts, a last line cut short, any text), each answer reads as
rows or raises ``SlurmOutputError`` naming the command, never another exception nor a hang;
one odd line of a listing is kept to its own row, every other line reads as it would alone."""

from __future__ import annotations

import string
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from daemon.executors.slurm.acct import FIELDS, parse_sacct
from daemon.executors.slurm.parse import (
    SlurmOutputError,
    allocated_count,
    expand_hostlist,
    gpu_count,
    parse_running,
    parse_sbatch,
    parse_squeue,
)
from daemon.executors.slurm.scontrol import (
    GresCount,
    parse_nodes,
    parse_partitions,
)
from tests.fuzzing import examples

_times = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%S")
)
_digits = st.one_of(
    st.integers(0, 10**6).map(str), st.integers(0, 2**64).map(str),
    st.sampled_from(["²", "٣", "1" * 5000, "0" * 30 + "1", "-1", "", " 2"]),
)  # fmt: skip
_odd = st.text(max_size=12).filter(lambda s: "\n" not in s and "\r" not in s)
_hostlist = st.one_of(
    st.sampled_from(["n1", "n[1-3,5],gpu7", "n[01-02]", "(null)", "None", "", "n[", "n[1-",
                     "n[a-b]", "n[2-1]", "n[1-99999999999999]", "a[0-70000],b[0-70000]"]),
    st.builds(lambda p, lo, hi: f"{p}[{lo}-{hi}]", st.sampled_from(["n", "gpu", ""]), _digits,
              _digits),
    _odd,
)  # fmt: skip
_tres = st.one_of(
    st.builds(lambda k, n: f"cpu=1,{k}={n},mem=1G",
              st.sampled_from(["gres/gpu", "gres/gpu:t4", "gres/shard", "gres:gpu"]), _digits),
    st.sampled_from(["N/A", "", "gres:gpu:2", "gres/gpu:t4:2", "gres/gpu=2,gres/gpu:t4=2"]),
    st.builds(lambda n: f"gres:gpu:{n}", _digits),
    _odd,
)  # fmt: skip
_state = st.sampled_from(["RUNNING", "PENDING", "COMPLETED", "FAILED", "CANCELLED by 1000",
                          "CANCELLED by ²", "REQUEUED", "TIMEOUT", ""])  # fmt: skip
_field = {
    "id": st.one_of(_digits, st.sampled_from(["7.batch", "7.extern", "7.0", "12_3"])),
    "time": st.one_of(_times, st.sampled_from(["N/A", "Unknown", "NONE", "", "2026-13-01T00:00:00",
                                                "99999-01-01T00:00:00"]), _odd),
    "exit": st.one_of(st.builds(lambda a, b: f"{a}:{b}", _digits, _digits), _odd),
    "energy": st.one_of(_digits, st.sampled_from(["nan", "inf", "-5", "1e308", "0"]), _odd),
}  # fmt: skip


@settings(max_examples=examples(0.25))
@given(st.one_of(_tres, st.text(max_size=30)), st.sampled_from(["gpu", "shard"]))
@example("gres/gpu=²", "gpu")
@example("gres:gpu:" + "1" * 5000, "gpu")
def test_any_gres_or_tres_text_is_a_count(text: str, gres: str) -> None:
    assert gpu_count(text, gres) >= 0
    assert allocated_count(text, gres) >= 0


@settings(max_examples=examples(0.25))
@given(st.one_of(st.builds(lambda i, c: f"{i};{c}\n", _digits, _odd), st.text(max_size=30)))
@example("²\n")
def test_any_sbatch_answer_is_a_job_id_or_the_slurm_error(text: str) -> None:
    try:
        slurm_id, _ = parse_sbatch(text)
    except SlurmOutputError as exc:
        assert str(exc).startswith("sbatch: ")
        return
    assert int(slurm_id) >= 0 and slurm_id.isascii()


def test_a_count_int_cannot_read_is_unknown_not_a_value_error() -> None:
    """``²`` passed the parsers' ``str.isdigit`` and ``int`` refused it; 5,000 digits passed
    it too and ``int`` refuses past 4,300: a ``ValueError`` out of the poll, not a row. Such a
    count is now not read (the field unknown, the rest of its row read)."""
    big = "1" * 5000
    row = parse_sacct(f"5|CANCELLED by ²|{big}:0|N/A|N/A|n1|alpha|1|gres/gpu={big}\n")[0]
    assert (row.state, row.by_uid, row.exit_code, row.gpus) == ("CANCELLED", None, None, None)
    assert row.unreadable == (f"ExitCode '{big}:0'",) and row.energy_j == 1.0
    nodes = parse_nodes(f"NodeName=n1 Gres=gpu:t4:²,shard:4\nNodeName=n2 Gres=gpu:{big}\n")
    assert [n.gres for n in nodes] == [(GresCount("shard", "", 4),), ()]
    assert allocated_count("gres/gpu=²,gres/gpu:t4=2") == 2
    assert gpu_count(f"gres:gpu:{big},gres:gpu:٣,gres:gpu:1") == 1
    with pytest.raises(SlurmOutputError, match="unreadable host list"):
        expand_hostlist("n[²]")
    with pytest.raises(SlurmOutputError, match="no job id"):
        parse_sbatch("²\n")


@settings(max_examples=examples(0.25))
@given(st.one_of(_hostlist, st.text(max_size=30)))
@example("n[²]")
@example("n[" + "1" * 5000 + "]")
@example("n[1-99999999999999]")
@example("a[1-40000],b[1-40000]")
def test_any_host_list_expands_or_fails_with_the_slurm_error(text: str) -> None:
    try:
        hosts = expand_hostlist(text)
    except SlurmOutputError as exc:
        assert repr(text) in str(exc)
        return
    assert all(hosts) and len(hosts) <= 65_536  # MAX_HOSTS


_free_text = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=["Cs"]),
                     max_size=30)  # fmt: skip
_node_name = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=6)


@st.composite
def _node_line(draw: st.DrawFn) -> tuple[str, str, str]:
    """A ``scontrol show node`` line: its name, the free text of its ``Reason`` (an
    operator's words, any character but a newline), the line."""
    name, reason = draw(_node_name), draw(_free_text)
    gres = draw(st.one_of(_tres, st.sampled_from(["gpu:t4:2(S:0)", "(null)", "gpu:2,shard:4"])))
    state = draw(st.sampled_from(["IDLE", "IDLE+DRAIN", "DOWN+NOT_RESPONDING", "MIXED"]))
    line = f"NodeName={name} Arch=x86_64 Gres={gres.replace(' ', '')} State={state} "
    line += f"Partitions=alpha,beta Reason={reason}"
    return name, reason.strip(), line


@settings(max_examples=examples(0.25))
@given(st.lists(st.one_of(_odd, _node_line().map(lambda n: n[2])), max_size=5))
@example(["No nodes in the system"])
def test_any_scontrol_answer_reads_or_names_the_line(lines: list[str]) -> None:
    """A line with no ``Key=value`` (``No partitions in the system``) raised ``ValueError``
    (``zip() argument 2 is longer``), not the error naming the line."""
    text = "\n".join(lines) + "\n"
    for parse, command in ((parse_nodes, "scontrol show node"),
                           (parse_partitions, "scontrol show partition")):  # fmt: skip
        try:
            parse(text)
        except SlurmOutputError as exc:
            assert str(exc).startswith(command + ": no ")


@settings(max_examples=examples(0.25))
@given(st.lists(_node_line(), max_size=5), st.booleans())
@example([("n1", "a\x0cb", "NodeName=n1 State=IDLE+DRAIN Reason=a\x0cb")], True)
@example([("n1", "a\u2028b", "NodeName=n1 State=IDLE+DRAIN Reason=a\u2028b")], True)
def test_every_node_line_reads_whatever_its_reason_says(
    nodes: list[tuple[str, str, str]], ended: bool
) -> None:
    text = "\n".join(line for _, _, line in nodes) + ("\n" if ended else "")
    rows = parse_nodes(text)
    assert [(r.name, r.reason) for r in rows] == [(n, why) for n, why, _ in nodes]
    assert all(g.count >= 0 for r in rows for g in r.gres)


def _field_text(draw: st.DrawFn, kind: str) -> str:
    strategy = {"state": _state, "hosts": _hostlist, "tres": _tres}.get(kind, _field.get(kind))
    return draw(st.one_of(strategy, _odd) if strategy is not None else _odd)


_SQUEUE = ("id", "state", "reason", "time", "time", "hosts", "partition")
_RUNNING = ("id", "user", "hosts", "tres", "tres", "time")
_SACCT = ("id", "state", "exit", "time", "time", "hosts", "partition", "energy", "tres")
assert len(_SACCT) == FIELDS


@st.composite
def _listing(draw: st.DrawFn, kinds: tuple[str, ...]) -> list[str]:
    """Lines of a ``|``-separated listing: mostly whole rows of odd fields, now and then one
    with a field too few or too many, a ``CLUSTER:`` banner or a blank line."""
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        pick = draw(st.integers(0, 12))
        if pick == 0:
            lines.append(draw(st.sampled_from(["CLUSTER: west", "", "   "])))
            continue
        fields = [_field_text(draw, kind).replace("|", "") for kind in kinds]
        if pick == 1:
            fields = fields[: draw(st.integers(1, len(fields) - 1))]
        elif pick == 2:
            fields.append(draw(_odd).replace("|", ""))
        lines.append("|".join(fields))
    return lines


def _alone(parse: object, line: str) -> list[object]:
    return parse(line + "\n")  # type: ignore[operator, no-any-return]


def _check_listing(parse: object, lines: list[str], ended: bool) -> list[object]:
    """``parse`` of the lines (the last without its newline unless ``ended``): one row per
    data line, each but a cut-short last one the row it reads as alone."""
    text = "\n".join(lines) + ("\n" if ended else "")
    rows = parse(text)  # type: ignore[operator]
    data = [line for line in lines if line.strip() and not line.startswith("CLUSTER:")]
    assert len(rows) == len(data)
    for k, (row, line) in enumerate(zip(rows, data, strict=True)):
        if k == len(data) - 1 and not ended and text.endswith(line):
            assert row.unreadable, row  # cut short: named as such
            continue
        # sacct: which run of its job a row belongs to needs the rows around it
        mine = replace(row, run=0) if hasattr(row, "run") else row  # type: ignore[type-var]
        assert [mine] == _alone(parse, line), line
    return rows  # type: ignore[no-any-return]


@settings(max_examples=examples(0.25))
@given(_listing(_SQUEUE), st.booleans())
def test_any_squeue_answer_reads_row_by_row(lines: list[str], ended: bool) -> None:
    _check_listing(parse_squeue, lines, ended)


@settings(max_examples=examples(0.25))
@given(_listing(_RUNNING), st.booleans(), st.sampled_from(["gpu", "shard"]))
def test_any_running_jobs_answer_reads_row_by_row(lines: list[str], ended: bool, gres: str) -> None:
    rows = _check_listing(lambda text: parse_running(text, gres), lines, ended)
    for row in rows:
        assert row.gpus_per_node >= 0  # type: ignore[attr-defined]


@settings(max_examples=examples(0.25))
@given(_listing(_SACCT), st.booleans())
def test_any_sacct_answer_reads_row_by_row(lines: list[str], ended: bool) -> None:
    rows = _check_listing(parse_sacct, lines, ended)
    for row in rows:
        assert row.gpus is None or row.gpus >= 0  # type: ignore[attr-defined]
        assert row.energy_j is None or row.energy_j > 0  # type: ignore[attr-defined]


def test_a_good_squeue_row_reads_whole() -> None:
    """A sanity anchor for the strategies above: a row of good fields reads whole."""
    row = parse_squeue("5|RUNNING|None|2026-12-04T21:10:45|N/A|n1|alpha\n")[0]
    assert row.start == datetime(2026, 12, 4, 21, 10, 45, tzinfo=UTC) and not row.unreadable
