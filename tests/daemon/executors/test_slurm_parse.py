"""The Slurm parsers against outputs recorded from a real Slurm 22.05 (slurm_outputs/)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.executors.slurm.acct import energy_j, parse_sacct
from daemon.executors.slurm.ends import ended_unstarted
from daemon.executors.slurm.parse import (
    SlurmOutputError,
    allocated_count,
    by_id,
    expand_hostlist,
    gpu_count,
    parse_running,
    parse_sbatch,
    parse_squeue,
    parse_time,
)
from daemon.executors.slurm.reach import controller_up, no_answer, unreachable
from daemon.executors.slurm.scontrol import (
    parse_nodes,
)
from daemon.executors.slurm.states import ended_status, is_ended

RECORDED = Path(__file__).parent / "slurm_outputs"


def _read(name: str) -> str:
    return (RECORDED / name).read_text(encoding="utf-8")


def test_sbatch_answer_is_the_id_with_an_optional_cluster() -> None:
    assert parse_sbatch(_read("sbatch.txt")) == ("3", None)
    assert parse_sbatch("812;west\n") == ("812", "west")
    with pytest.raises(SlurmOutputError, match="no job id"):
        parse_sbatch("sbatch: error: Batch job submission failed\n")


def test_squeue_rows_keep_state_reason_and_planned_start() -> None:
    rows = {r.slurm_id: r for r in parse_squeue(_read("squeue_states.txt"))}
    later = rows["6"]
    assert (later.state, later.reason, later.partition) == ("PENDING", "BeginTime", "alpha")
    assert later.start == datetime(2026, 12, 4, 22, 10, 45, tzinfo=UTC)
    assert later.end is None  # NONE
    assert rows["8"].reason == "Resources"
    assert rows["4"].state == "RUNNING" and rows["4"].nodes == "n1"
    assert rows["3"].state == "FAILED"


def test_squeue_skips_cluster_banners() -> None:
    text = "CLUSTER: west\n" + _read("squeue_states.txt")
    assert len(parse_squeue(text)) == len(parse_squeue(_read("squeue_states.txt")))


def test_a_cut_short_squeue_row_or_unreadable_time_is_kept_to_its_row() -> None:
    """A squeue line with the wrong number of fields, or a time that is no time, failed the
    parse of every row (``squeue: expected 7 '|'-separated fields``), so no job of the
    cluster was followed. The line is now a lost row of the job its first field names (its
    state unknown), a time is unknown and named; the other rows are read; a readable row of
    an id wins over a fragment that reads as the same id."""
    text = _read("squeue_states.txt").replace("||alpha\n4|RUNNING|None", "\n4|RUNNING|None")
    text = text.replace("7|RUNNING|None|2026-12-04T21:10:45|", "7|RUNNING|None|2026-12-04T2x|")
    rows = parse_squeue(text + "5|RUNN\n")
    lost = [r for r in rows if r.lost]
    assert [(r.slurm_id, r.state) for r in lost] == [("6", ""), ("5", "")]
    assert lost[0].unreadable[0].startswith("row of 5 '|'-separated fields, not 7: '6|PENDING")
    queue = by_id(rows)
    assert (queue["7"].state, queue["7"].start, queue["7"].unreadable) == (
        "RUNNING", None, ("StartTime '2026-12-04T2x'",),
    )  # fmt: skip
    assert queue["7"].end == datetime(2026, 12, 4, 21, 11, 45, tzinfo=UTC)
    assert queue["4"].state == "RUNNING" and not queue["4"].unreadable
    assert queue["5"].state == "RUNNING" and not queue["5"].lost  # the readable row
    assert queue["6"].lost and not is_ended(queue["6"].state)  # state unknown, not ended


def test_sacct_rows_split_steps_exit_codes_cancelling_uid_and_gpus() -> None:
    rows = parse_sacct(_read("sacct_mixed.txt"))
    by = {(r.slurm_id, r.step): r for r in rows}
    assert by[("3", "")].state == "FAILED" and by[("3", "")].exit_code == 3
    cancelled = by[("4", "")]
    assert (cancelled.state, cancelled.by_uid) == ("CANCELLED", 0)
    assert by[("4", "batch")].signal == 15 and by[("4", "batch")].exit_code is None
    assert by[("6", "")].start is None and by[("6", "")].energy_j is None  # pending: 0 J
    # AllocTRES: the GPUs each run was given (its --gres=gpu:N), on the job row and its batch
    # step; none printed for the job that never ran
    assert {key: r.gpus for key, r in by.items() if key[0] in ("1", "7", "8")} == {
        ("1", ""): 1, ("1", "batch"): 1, ("7", ""): 2, ("7", "batch"): 2, ("8", ""): 2,
        ("8", "batch"): 2,
    }  # fmt: skip
    assert by[("6", "")].gpus is None
    assert all(r.unreadable == () for r in rows)


def test_energy_is_the_batch_step_s_joules_and_none_without_accounting() -> None:
    rows = parse_sacct(_read("sacct_mixed.txt"))
    assert energy_j(rows, "1") == 300.0  # 2 s on the 150 W fake meter
    assert energy_j(rows, "2") == 400.0  # 2 s at 200 W
    assert energy_j(rows, "3") is None  # ran for no time: 0 J reads as unmeasured
    no_energy = "9|COMPLETED|0:0|2026-12-04T21:10:32|2026-12-04T21:10:34|n1|alpha||\n"
    assert energy_j(parse_sacct(no_energy), "9") is None
    huge = no_energy.replace("alpha|", "alpha|18446744073709551614")
    assert energy_j(parse_sacct(huge), "9") is None  # Slurm's NO_VAL64


def test_energy_with_srun_steps_is_the_batch_step_s_not_the_job_row_s_sum_of_steps() -> None:
    """Recorded on the local cluster (150 W on n1): ``srun sleep 4; srun sleep 4; sleep 2``.
    Slurm fills the job's own row with the sum of the two srun steps (1,185 J), leaving out
    the script's 2 s outside them; the batch step spans the whole script (1,524 J, 10 s)."""
    text = (
        "14|COMPLETED|0:0|2026-12-07T04:26:06|2026-12-07T04:26:16|n1|alpha|1185|\n"
        "14.batch|COMPLETED|0:0|2026-12-07T04:26:06|2026-12-07T04:26:16|n1||1524|\n"
        "14.0|COMPLETED|0:0|2026-12-07T04:26:06|2026-12-07T04:26:10|n1||591|\n"
        "14.1|COMPLETED|0:0|2026-12-07T04:26:10|2026-12-07T04:26:14|n1||594|\n"
    )
    assert energy_j(parse_sacct(text), "14") == 1524.0
    no_batch_value = text.replace("n1||1524", "n1||0")
    assert energy_j(parse_sacct(no_batch_value), "14") == 1185.0  # the job's row, else


def test_an_unreadable_exit_code_or_energy_is_unknown_and_named_not_the_whole_answer() -> None:
    """One row's odd ExitCode or ConsumedEnergyRaw failed the parse of every row."""
    text = _read("sacct_mixed.txt").replace("1|COMPLETED|0:0|", "1|COMPLETED|0:x|", 1)
    text = text.replace("||300|", "||30 0|")
    rows = {(r.slurm_id, r.step): r for r in parse_sacct(text)}
    assert rows[("1", "")].exit_code is None and rows[("1", "")].unreadable == ("ExitCode '0:x'",)
    assert rows[("1", "batch")].unreadable == ("ConsumedEnergyRaw '30 0'",)
    assert energy_j(list(rows.values()), "1") is None  # not the other steps' joules instead
    assert energy_j(list(rows.values()), "2") == 400.0 and rows[("2", "")].unreadable == ()


def test_a_cut_short_row_or_unreadable_time_is_kept_to_its_row_not_the_whole_answer() -> None:
    """A sacct line with the wrong number of fields, or a Start or End that is no time,
    failed the parse of every row. The line is now a lost row of the job its first field
    names (its state unknown), a time is unknown and named; the other rows are read."""
    text = _read("sacct_mixed.txt")
    first = next(line for line in text.splitlines() if line.startswith("1|"))
    text = text.replace(first, first[:25], 1)
    text = text.replace("2|COMPLETED|0:0|2026-12-07T11:36:", "2|COMPLETED|0:0|2026-12-07T25:36:")
    rows = {(r.slurm_id, r.step): r for r in parse_sacct(text)}
    lost = rows[("1", "")]
    assert lost.lost and lost.state == "" and lost.start_unknown
    assert lost.unreadable[0].startswith("row of 4 '|'-separated fields, not 9: '1|COMPLETED")
    assert energy_j(list(rows.values()), "1") == 300.0  # its batch step's, read whole
    odd = rows[("2", "")]
    assert (odd.state, odd.start, odd.start_unknown) == ("COMPLETED", None, True)
    assert odd.unreadable[0].startswith("Start '2026-12-07T25:36:") and odd.end is not None
    assert rows[("3", "")].unreadable == () and rows[("3", "")].exit_code == 3
    assert energy_j(list(rows.values()), "2") == 400.0  # its energy is still read


def test_a_job_whose_start_cannot_be_read_ended_unstarted_only_without_a_node() -> None:
    """An unreadable Start is not "never started": whether a held job ran is then told by
    the node Slurm assigned it, as for a job that has a Start."""
    row = "7|CANCELLED by 0|0:0|2026-12-04T2x|2026-12-04T21:10:34|{}|alpha||\n"
    assert ended_unstarted("7", parse_sacct(row.format("n1")), 0) is None  # it ran on n1
    unstarted = ended_unstarted("7", parse_sacct(row.format("None assigned")), 0)
    assert unstarted is not None and unstarted.reason == "slurm CANCELLED by uid 0"


def test_nodes_read_gres_partitions_state_and_the_free_text_reason() -> None:
    nodes = {n.name: n for n in parse_nodes(_read("scontrol_nodes_drained.txt"))}
    n1, n2 = nodes["n1"], nodes["n2"]
    assert n1.partitions == ("alpha",) and n2.partitions == ("beta",)
    assert [(g.name, g.type, g.count) for g in n1.gres] == [("gpu", "t4", 2)]
    assert n1.state == ("MIXED", "DRAIN") and not n1.usable
    assert n1.reason.startswith("disk check by ops")
    assert n2.usable
    lost = {n.name: n.usable for n in parse_nodes(_read("scontrol_nodes_not_responding.txt"))}
    assert lost == {"n1": False, "n2": True}  # n1 IDLE+NOT_RESPONDING


def test_a_node_in_an_active_reservation_is_reserved_but_up() -> None:
    # scontrol -o show node n1 (fields cut) during "scontrol create reservation ... flags=maint"
    line = "NodeName=n1 Gres=gpu:t4:2 State=IDLE+MAINTENANCE+RESERVED Partitions=alpha\n"
    [n1] = parse_nodes(line)
    assert (n1.usable, n1.reserved) == (True, True)
    [plain] = parse_nodes(line.replace("+MAINTENANCE+RESERVED", "+PLANNED"))
    assert (plain.usable, plain.reserved) == (True, False)


def test_running_jobs_expand_hosts_and_count_gpus_per_node() -> None:
    per_node, per_job = parse_running(_read("squeue_running_beta.txt"))
    assert (per_node.user, per_node.nodes, per_node.gpus_per_node) == ("root", ("n2",), 1)
    assert per_node.end is None  # no time limit
    # --gpus=1 asks nothing per node (N/A): its GPU is the one allocated to it
    assert (per_job.user, per_job.nodes, per_job.gpus_per_node) == (
        "carbond-slurm-other", ("n2",), 1,
    )  # fmt: skip
    assert per_job.end == datetime(2026, 12, 6, 16, 37, 44, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tres", "gpus"),
    [
        ("cpu=1,mem=100M,node=1,billing=1,gres/gpu=2", 2),
        ("cpu=1,gres/gpu=4,gres/gpu:a100=4", 4),  # typed TRES tracked too: not counted twice
        ("cpu=1,gres/gpu:a100=2,gres/gpu:v100=1", 3),
        ("cpu=8,mem=800M,node=1,billing=8", 0),
        ("", 0),
    ],
)
def test_allocated_gpus_are_read_from_the_tres(tres: str, gpus: int) -> None:
    assert allocated_count(tres) == gpus


def test_a_cut_short_running_row_or_unreadable_field_counts_only_that_job_s_gpus() -> None:
    """A running job's squeue line with the wrong number of fields, an unreadable end or host
    list failed the parse of every row, so no GPU of the cluster was counted as held. Now
    that row alone is unknown (named): no hosts (no GPUs counted) or no end; the others are
    read."""
    text = _read("squeue_running_beta.txt")
    rows = parse_running(text + "31|alice|n[1-\n32|bob|n[1-2|N/A|gres/gpu=2|NONE\n"
                         "33|carol|n1|gres:gpu:1|cpu=1|tomorrow\n")  # fmt: skip
    assert rows[:2] == parse_running(text)
    cut, hosts, end = rows[2:]
    assert (cut.slurm_id, cut.nodes, cut.gpus_per_node) == ("31", (), 0)
    assert cut.unreadable[0].startswith("row of 3 '|'-separated fields, not 6")
    assert (hosts.nodes, hosts.unreadable) == ((), ("NodeList 'n[1-2'",))
    assert (end.nodes, end.gpus_per_node, end.end) == (("n1",), 1, None)
    assert end.unreadable == ("EndTime 'tomorrow'",)


def test_allocated_gpus_spread_over_a_job_s_nodes_rounded_up() -> None:
    line = "7|alice|n[1-2]|N/A|cpu=2,node=2,gres/gpu=3|NONE\n"
    [row] = parse_running(line)
    assert (row.nodes, row.gpus_per_node) == (("n1", "n2"), 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gres:gpu:2", 2),
        ("gres/gpu:t4:3", 3),
        ("gres/gpu=4", 4),
        ("N/A", 0),
        ("gres:shard:2", 0),
        ("gres:gpu:1,gres:gpu:a100:2", 3),
    ],
)
def test_gpu_count(text: str, expected: int) -> None:
    assert gpu_count(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n1", ("n1",)),
        ("n[1-3,5]", ("n1", "n2", "n3", "n5")),
        ("gpu[08-10],login1", ("gpu08", "gpu09", "gpu10", "login1")),
        ("", ()),
    ],
)
def test_expand_hostlist(text: str, expected: tuple[str, ...]) -> None:
    assert expand_hostlist(text) == expected


@pytest.mark.parametrize("text", ["n[2-1]", "n[1-3,9-8]", "n1,gpu[10-09]"])
def test_a_host_range_that_runs_down_is_an_unreadable_host_list(text: str) -> None:
    """``n[2-1]`` expanded to no host without a word (``range(2, 2)``): a running job's row
    read as a job on no node, whole, with nothing unreadable named. It is now an unreadable
    host list, as other malformed ones are, which a running row names (its NodeList)."""
    with pytest.raises(SlurmOutputError, match=rf"host list {re.escape(repr(text))}"):
        expand_hostlist(text)
    [row] = parse_running(f"7|alice|{text}|gres/gpu:1|cpu=1|2026-12-04T22:00:00\n", "gpu")
    assert row.nodes == () and row.unreadable == (f"NodeList {text!r}",)


def test_a_bad_host_list_or_time_is_an_error_naming_it() -> None:
    with pytest.raises(SlurmOutputError, match="host list"):
        expand_hostlist("n[1-x]")
    with pytest.raises(ValueError):
        parse_time("yesterday")


@pytest.mark.parametrize(
    ("state", "code", "sig", "exit_code", "signal", "reason"),
    [
        ("COMPLETED", 0, None, 0, None, "slurm COMPLETED"),
        ("FAILED", 3, None, 3, None, "slurm FAILED"),
        ("FAILED", None, 9, None, 9, "slurm FAILED"),
        ("FAILED", 0, None, None, None, "slurm FAILED"),
        ("CANCELLED", 0, None, None, None, "slurm CANCELLED by uid 0"),
        ("TIMEOUT", 0, None, None, None, "slurm TIMEOUT: the job reached its time limit"),
        ("OUT_OF_MEMORY", 0, None, None, None, "slurm OUT_OF_MEMORY: the job ran out of memory"),
        ("NODE_FAIL", 0, None, None, None, "slurm NODE_FAIL: a node of the job failed (n1)"),
        ("PREEMPTED", 0, None, None, None, "slurm PREEMPTED: the job was preempted"),
        ("BOOT_FAIL", 0, None, None, None, "slurm BOOT_FAIL: a node of the job failed to boot"),
        ("DEADLINE", 0, None, None, None, "slurm DEADLINE: the job reached its Slurm deadline"),
    ],
)
def test_every_final_state_maps_with_its_reason(
    state: str, code: int | None, sig: int | None, exit_code: int | None,
    signal: int | None, reason: str,
) -> None:  # fmt: skip
    at = datetime(2026, 12, 4, tzinfo=UTC)
    status = ended_status("j", state, exit_code=code, signal=sig, finished_at=at,
                          by_uid=0, nodes="n1")  # fmt: skip
    assert is_ended(state)
    assert (status.exit_code, status.signal) == (exit_code, signal)
    assert status.reason.startswith(reason)
    assert status.succeeded == (state == "COMPLETED")


@pytest.mark.parametrize(
    ("state", "by_uid", "owner", "expected"),
    [
        ("CANCELLED", 1000, 1000, True),  # the owner's own scancel
        ("CANCELLED", 0, 1000, False),  # root's (or carbond's) scancel
        ("CANCELLED", None, 1000, False),
        ("CANCELLED", 1000, None, False),  # owner not known
        ("FAILED", 1000, 1000, False),
    ],
)
def test_a_cancel_is_the_owners_only_when_slurm_names_the_owner(
    state: str, by_uid: int | None, owner: int | None, expected: bool
) -> None:
    at = datetime(2026, 12, 4, tzinfo=UTC)
    status = ended_status("j", state, exit_code=None, signal=None, finished_at=at,
                          by_uid=by_uid, owner=owner)  # fmt: skip
    assert status.cancelled_by_owner is expected


@pytest.mark.parametrize("state", ["PENDING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED"])
def test_waiting_and_active_states_are_not_ended(state: str) -> None:
    assert not is_ended(state)


@pytest.mark.parametrize(
    ("name", "usable"),
    [
        ("idle", {"n1": True, "n2": True}),
        ("mixed", {"n1": True, "n2": True}),
        ("mixed_allocated", {"n1": True, "n2": True}),
        ("draining", {"n1": False, "n2": True}),
        ("down", {"n1": False, "n2": False}),  # n1 still draining, n2 down and not responding
        ("drained", {"n1": False, "n2": False}),
    ],
)
def test_node_states_recorded_by_the_cluster_recorder(name: str, usable: dict[str, bool]) -> None:
    text = _read(f"states/scontrol_show_node_{name}.txt")
    nodes = parse_nodes(text)
    assert {n.name: n.usable for n in nodes} == usable
    assert {n.name: [(g.type, g.count) for g in n.gres] for n in nodes} == {
        "n1": [("t4", 2)], "n2": [("l4", 2)],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("returncode", "stderr", "expected"),
    [
        (1, _read("squeue_ctld_down.stderr.txt"), True),  # slurmctld stopped
        (1, _read("scontrol_clusters_ctld_down.stderr.txt"), True),  # the same, with --clusters
        (1, "squeue: error: Socket timed out on send/recv operation\n", True),
        (1, "sbatch: error: invalid partition specified: alpha\n", False),  # refused, answered
        (1, "slurm_load_jobs error: Invalid job id specified\n", False),
        (0, "", False),
    ],
)
def test_an_unreachable_controller_is_told_from_a_refusal(
    returncode: int, stderr: str, expected: bool
) -> None:
    assert unreachable(returncode, stderr) is expected


def test_ping_reads_up_and_down() -> None:
    assert controller_up(0, _read("scontrol_ping_up.txt"))
    assert not controller_up(1, _read("scontrol_ping_down.txt"))
    assert controller_up(1, "Slurmctld(primary) at a is DOWN\nSlurmctld(backup) at b is UP\n")


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n",
         True),  # the controller took the request and did not answer: it may have the job
        (_read("squeue_ctld_down.stderr.txt"), False),  # connect failure: it never got it
        (_read("scontrol_clusters_ctld_down.stderr.txt"), False),
        ("sbatch: error: invalid partition specified: alpha\n", False),
    ],
)  # fmt: skip
def test_a_request_the_controller_may_have_acted_on_is_told_from_one_it_never_got(
    stderr: str, expected: bool
) -> None:
    assert no_answer(stderr) is expected


def test_the_gpus_a_run_held_are_read_from_sacct_s_alloc_tres() -> None:
    """``AllocTRES`` as the local cluster prints it (``AccountingStorageTRES=gres/gpu``):
    the job row and its batch step name ``gres/gpu=N``; a job that never ran names none;
    accounting that tracks GPU types only names ``gres/gpu:TYPE=N``."""
    text = (
        "7|COMPLETED|0:0|2026-12-07T06:18:00|2026-12-07T06:18:04|n1|alpha|0|"
        "billing=1,cpu=1,gres/gpu=2,mem=100M,node=1\n"
        "7.batch|COMPLETED|0:0|2026-12-07T06:18:00|2026-12-07T06:18:04|n1||599|"
        "cpu=1,gres/gpu=2,mem=100M,node=1\n"
        "8|CANCELLED by 0|0:0|None|2026-12-07T06:19:00|None assigned|alpha||\n"
        "9|COMPLETED|0:0|2026-12-07T06:18:00|2026-12-07T06:18:04|n1|alpha|0|"
        "cpu=1,gres/gpu:l4=1,gres/gpu:t4=2,node=1\n"
    )
    rows = {(r.slurm_id, r.step): r for r in parse_sacct(text)}
    assert rows[("7", "")].gpus == rows[("7", "batch")].gpus == 2
    assert rows[("8", "")].gpus is None and rows[("9", "")].gpus == 3


def test_a_squeue_answer_cut_inside_its_last_line_s_last_field_is_a_lost_row() -> None:
    """A read cut short inside the last line's last field (``Partition``) has every field,
    so it was read as whole: ``alpha`` cut to ``alp`` was a job in partition ``alp``. squeue
    ends every line with a newline, so a last line without one is now a lost row of the job
    its first field names, naming the line and the field; the rows before it are read."""
    text = "4|RUNNING|None|2026-12-04T21:10:45|2026-12-04T21:11:45|n1|alpha\n"
    cut = text + "6|PENDING|BeginTime|2026-12-04T22:10:45|N/A||alp"
    queue = by_id(parse_squeue(cut))
    assert queue["4"].partition == "alpha" and not queue["4"].unreadable
    assert queue["6"].lost and queue["6"].state == "" and queue["6"].partition == ""
    assert queue["6"].unreadable == (
        "row cut short: squeue's answer ends inside its line 2, with no end of line, so its "
        "last field (Partition) may be cut: '6|PENDING|BeginTime|2026-12-04T22:10:45|N/A||alp'",
    )
    whole = by_id(parse_squeue(cut + "ha\n"))  # with its newline it is read
    assert whole["6"].partition == "alpha" and not whole["6"].unreadable
    assert by_id(parse_squeue(text.rstrip("\n")))["4"].lost  # a single line, too
