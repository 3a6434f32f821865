"""A Slurm region's ``sbatch_options``: what would replace carbond's own sbatch options, or
what carbond relies on from sbatch, is refused at its line; the rest is kept as it is."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from daemon.settings import ConfigError, load_settings
from daemon.settings.sbatch_options import refusal
from daemon.settings.sbatch_table import (
    EMPTY_MISREAD,
    EMPTY_NONE,
    EMPTY_REFUSED,
    EQUALS_MISREAD,
    EQUALS_REFUSED,
    FLAGS_SHORT,
    LEADING_MISREAD,
    LEADING_REFUSED,
    LEADING_SAME,
    SPACE_MISREAD,
    SPACED_MISREAD,
    SPACED_REFUSED,
    SPACED_SAME,
    TRAILING_MISREAD,
    TRAILING_MISREAD_SHORT,
    TRAILING_REFUSED,
    TRAILING_REFUSED_SHORT,
    TRAILING_SAME,
    TRAILING_SAME_SHORT,
    VALUE_OPTIONAL,
    VALUE_OPTIONAL_SHORT,
    VALUE_REQUIRED,
    VALUE_REQUIRED_SHORT,
)
from tests.daemon.settings.toml_values import toml_value
from tests.fuzzing import examples

_SLURM_REGION = '[[regions]]\nname = "b"\nzone = "FR"\nexecutor = "slurm"\n\n[regions.slurm]\n'


def _problems(tmp_path: Path, table: str) -> list[str]:
    config = tmp_path / "sbatch.toml"
    config.write_text(f'{_SLURM_REGION}partition = "gpu"\n{table}')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    return [p.removeprefix(f"{config}:") for p in info.value.problems]


# (option, the sbatch option it gives, why)
_SETS = [
    ("--job-name=mine", "--job-name (-J)", "carbond-<job id>, by which a restarted carbond "
     "finds the job"),
    ("-Jmine", "--job-name (-J)", "carbond-<job id>, by which a restarted carbond finds the job"),
    ("-J mine", "--job-name (-J)", "carbond-<job id>, by which a restarted carbond finds the "
     "job"),
    ("--begin=now+1hour", "--begin (-b)", "the job's planned start, moved by each new plan"),
    ("--begin now", "--begin (-b)", "the job's planned start, moved by each new plan"),
    ("-bnow", "--begin (-b)", "the job's planned start, moved by each new plan"),
    ("--output=/tmp/x.out", "--output (-o)", "the job's .out in carbond's log dir, read back "
     "for why it exited"),
    ("-o/tmp/x", "--output (-o)", "the job's .out in carbond's log dir, read back for why it "
     "exited"),
    ("--error=/dev/null", "--error (-e)", "the job's .err in carbond's log dir, read back for "
     "why it exited"),
    ("-vve /dev/null", "--error (-e)", "the job's .err in carbond's log dir, read back for why "
     "it exited"),
    ("--partition=debug", "--partition (-p)", "from partition in this table"),
    ("-pdebug", "--partition (-p)", "from partition in this table"),
    ("--clusters=other", "--clusters (-M)", "from cluster in this table"),
    ("-M other", "--clusters (-M)", "from cluster in this table"),
    ("--cluster=other", "--cluster", "from cluster in this table"),
    ("--nodes=2", "--nodes (-N)", "one node: a job's planned GPUs are on one node"),
    ("-N2", "--nodes (-N)", "one node: a job's planned GPUs are on one node"),
    ("--nodelist=n9", "--nodelist (-w)", "the node of the job's planned GPUs"),
    ("-wn9", "--nodelist (-w)", "the node of the job's planned GPUs"),
    ("-F/tmp/nodes", "--nodefile (-F)", "the node of the job's planned GPUs, as --nodelist"),
    ("--chdir=/tmp", "--chdir (-D)", "the job's own working directory"),
    ("-D/tmp", "--chdir (-D)", "the job's own working directory"),
    ("--export=NONE", "--export", "ALL: the environment carbond builds for the job"),
    ("--comment=x", "--comment", "the job's name, shown in squeue"),
    ("--parsable", "--parsable", "its answer is read as the job's Slurm id"),
]  # fmt: skip
_CANNOT = [
    ("--hold", "--hold (-H)", "a held job does not start when carbond releases it"),
    ("-H", "--hold (-H)", "a held job does not start when carbond releases it"),
    ("-vH", "--hold (-H)", "a held job does not start when carbond releases it"),
    ("-vHbnow", "--hold (-H)", "a held job does not start when carbond releases it"),
    ("--wait", "--wait (-W)", "sbatch would not answer until the job ended"),
    ("-W", "--wait (-W)", "sbatch would not answer until the job ended"),
    ("--quiet", "--quiet (-Q)", "sbatch would not print the job's id"),
    ("-sQ", "--quiet (-Q)", "sbatch would not print the job's id"),
    ("--test-only", "--test-only", "sbatch would submit no job"),
    ("--version", "--version (-V)", "sbatch would submit no job"),
    ("-h", "--help (-h)", "sbatch would submit no job"),
    ("--usage", "--usage", "sbatch would submit no job"),
    ("--wrap=hostname", "--wrap", "the job is carbond's batch script, on sbatch's input"),
    ("--uid=0", "--uid", "sbatch runs as the job's owner, whose job it is"),
    ("--gid 0", "--gid", "sbatch runs as the job's owner, whose job it is"),
    ("--dependency=afterok:7", "--dependency (-d)", "a released job would wait for it, "
     "pending, and be taken back and planned again"),
    ("-dafterok:7", "--dependency (-d)", "a released job would wait for it, pending, and be "
     "taken back and planned again"),
]  # fmt: skip


@pytest.mark.parametrize(("option", "gives", "why"), _SETS)
def test_an_option_carbond_sets_is_refused_at_its_line(
    tmp_path: Path, option: str, gives: str, why: str
) -> None:
    """carbond's sbatch options come first, a region's after them, and sbatch takes the last:
    ``--job-name`` renamed the job (a restarted carbond no longer found it), ``--begin``
    started it before its plan, ``--output`` lost the log carbond reads back... Such an
    option is a settings problem now, at its line, naming it and why."""
    assert _problems(tmp_path, f'sbatch_options = ["--mem=4G", "{option}"]\n') == [
        f"8: regions.b.slurm.sbatch_options: {option!r} gives sbatch's {gives}, which "
        f"carbond sets itself ({why}): leave it out"
    ]


@pytest.mark.parametrize(("option", "gives", "why"), _CANNOT)
def test_an_option_carbond_cannot_submit_with_is_refused_at_its_line(
    tmp_path: Path, option: str, gives: str, why: str
) -> None:
    """``--wait`` kept sbatch from answering until the job ended (carbond's submission timed
    out, the job unconfirmed), ``--hold`` kept a released job from ever starting, ``--quiet``
    left carbond without the job's id...: refused at its line, naming it and why."""
    assert _problems(tmp_path, f'sbatch_options = ["{option}"]\n') == [
        f"8: regions.b.slurm.sbatch_options: {option!r} gives sbatch's {gives}, which "
        f"carbond's jobs cannot take ({why}): leave it out"
    ]


@pytest.mark.parametrize(
    ("option", "gives"),
    [("--job=x", "--job-name (-J)"), ("--beg=now", "--begin (-b)"), ("--out=x", "--output (-o)"),
     ("--part=debug", "--partition (-p)"), ("--pars", "--parsable"), ("--ho", "--hold (-H)"),
     ("--wr=true", "--wrap"), ("--dep afterok:7", "--dependency (-d)")],
)  # fmt: skip
def test_an_abbreviation_sbatch_takes_is_refused_as_its_option(
    tmp_path: Path, option: str, gives: str
) -> None:
    """sbatch takes any unambiguous prefix of a long option (``--part`` is ``--partition``)."""
    [problem] = _problems(tmp_path, f'sbatch_options = ["{option}"]\n')
    assert problem.startswith(
        f"8: regions.b.slurm.sbatch_options: {option!r} abbreviates sbatch's {gives}, which "
    )


def test_an_ambiguous_abbreviation_of_a_refused_option_is_refused(tmp_path: Path) -> None:
    """``--pa`` is ``--parsable`` or ``--partition`` (sbatch refuses it as ambiguous)."""
    assert _problems(tmp_path, 'sbatch_options = ["--pa=debug"]\n') == [
        "8: regions.b.slurm.sbatch_options: '--pa=debug' abbreviates more than one sbatch "
        "option (--parsable, --partition (-p)), and carbond refuses --parsable: leave it out"
    ]


def test_double_dash_that_ends_sbatchs_options_is_refused(tmp_path: Path) -> None:
    """After ``--`` sbatch reads the next option as the batch script's file."""
    assert _problems(tmp_path, 'sbatch_options = ["--", "--mem=4G"]\n') == [
        "8: regions.b.slurm.sbatch_options: '--' ends sbatch's options: the options after it "
        "would be read as the batch script and its arguments: leave it out"
    ]


def test_account_and_qos_are_refused_only_where_the_table_sets_them(tmp_path: Path) -> None:
    """carbond gives ``--account``/``--qos`` only from the table's own ``account``/``qos``:
    with them set, the option would replace them; without, it is the region's to give."""
    assert _problems(tmp_path, 'account = "a"\nqos = "q"\nsbatch_options = ["-Ab"]\n') == [
        "10: regions.b.slurm.sbatch_options: '-Ab' gives sbatch's --account (-A), which "
        "carbond sets itself (from account in this table): leave it out"
    ]
    assert _problems(tmp_path, 'qos = "q"\nsbatch_options = ["--qos=high"]\n') == [
        "9: regions.b.slurm.sbatch_options: '--qos=high' gives sbatch's --qos (-q), which "
        "carbond sets itself (from qos in this table): leave it out"
    ]
    config = tmp_path / "own.toml"
    config.write_text(f'{_SLURM_REGION}partition = "gpu"\nsbatch_options = ["-Ab", "-qhigh"]\n')
    [region] = load_settings(config).regions
    assert region.slurm is not None and region.slurm.sbatch_options == ("-Ab", "-qhigh")


def test_options_carbond_neither_sets_nor_relies_on_are_kept(tmp_path: Path) -> None:
    """A time limit, a requeue policy (docs/slurm.md: a requeued job is taken back), a
    reservation, a deadline, a signal, and options that only start like a refused one
    (``--wait-all-nodes``, ``--exclude``, ``--export-file``) are kept as they were."""
    options = ("--time=04:00:00", "-t60", "--requeue", "--no-requeue", "--reservation=maint",
               "--deadline=now+2hours", "--signal=B:USR1@60", "--exclusive", "--exclude=n3",
               "--wait-all-nodes=1", "--time-min=30", "-vk", "--mem=4G", "-c4", "--nice=10",
               "--open-mode=append", "--use-min-nodes", "--constraint=ib", "-i/dev/null",
               "--export-file=/etc/job.env", "-vc2")  # fmt: skip
    config = tmp_path / "kept.toml"
    listed = ", ".join(f'"{o}"' for o in options)
    config.write_text(f'{_SLURM_REGION}partition = "gpu"\nsbatch_options = [{listed}]\n')
    [region] = load_settings(config).regions
    assert region.slurm is not None and region.slurm.sbatch_options == options


def test_a_long_option_and_its_value_in_one_entry_split_by_a_space_is_refused(
    tmp_path: Path,
) -> None:
    """``"--mem 4G"`` loaded, and sbatch (22.05) refuses that argv word as an option it does
    not know (``unrecognized option '--mem 4G'``): every launch in the region failed. A
    value with spaces after ``=`` is one option (``--comment=a b`` is kept)."""
    assert _problems(tmp_path, 'sbatch_options = ["--mem 4G"]\n') == [
        "8: regions.b.slurm.sbatch_options: sbatch reads '--mem 4G' as one word, an option it "
        "does not know, and refuses every job of this region: write it --mem=4G"
    ]
    config = tmp_path / "kept.toml"
    config.write_text(f'{_SLURM_REGION}partition = "gpu"\nsbatch_options = ["--mail-user=a b"]\n')
    [region] = load_settings(config).regions
    assert region.slurm is not None and region.slurm.sbatch_options == ("--mail-user=a b",)


@pytest.mark.parametrize(
    ("option", "spelled", "how"),
    [("--mem", "--mem", "--mem=<value>"), ("--wck", "--wckey", "--wckey=<value>"),
     ("--time", "--time", "--time=<value>"), ("--reservation", "--reservation",
     "--reservation=<value>"), ("--wait-", "--wait-all-nodes", "--wait-all-nodes=<value>"),
     ("-t", "-t", "-t<value>"), ("-vt", "-t", "-vt<value>"), ("-c", "-c", "-c<value>"),
     ("-sOq", "-q", "-sOq<value>")],
)  # fmt: skip
def test_an_option_that_requires_a_value_given_none_is_refused_at_its_line(
    tmp_path: Path, option: str, spelled: str, how: str
) -> None:
    """``"--mem"`` alone loaded, and sbatch (22.05: "option '--mem' requires an argument")
    took the next word of its command line as its value: ``["--mem", "--reservation=x"]``
    read to carbond as a reservation that sbatch never saw, and a last ``"--mem"`` made
    every submit fail. Refused at its line, with how to write it."""
    assert _problems(tmp_path, f'sbatch_options = ["{option}", "--reservation=x"]\n') == [
        f"8: regions.b.slurm.sbatch_options: {option!r} gives sbatch's {spelled} without the "
        "value it requires: sbatch would take the next word of its command line as it (the "
        f"next option, or none, and every job of this region refused): write it {how}"
    ]


def test_an_option_whose_value_is_optional_or_none_is_kept_bare(tmp_path: Path) -> None:
    """sbatch takes these alone (``--exclusive[=user]``, ``-k`` is ``--no-kill[=off]``):
    only a value it requires is refused missing."""
    options = ("--exclusive", "--nice", "--get-user-env", "--no-kill", "--propagate", "-k",
               "-vk", "--requeue", "--contiguous", "--use-min-nodes", "-v", "-s", "-O",
               "--mem=4G", "-t60")  # fmt: skip
    config = tmp_path / "kept.toml"
    listed = ", ".join(f'"{o}"' for o in options)
    config.write_text(f'{_SLURM_REGION}partition = "gpu"\nsbatch_options = [{listed}]\n')
    [region] = load_settings(config).regions
    assert region.slurm is not None and region.slurm.sbatch_options == options


@pytest.mark.parametrize("option", ["-koff", "-kOFF", "-vkoff", "-skoff"])
def test_no_kills_value_in_its_word_is_kept(tmp_path: Path, option: str) -> None:
    """sbatch 22.05's ``-k`` takes an optional value in its own word (``-koff`` is
    ``--no-kill=off``; ``-kA``: "Invalid --no-kill specification"), but was read as a flag:
    the valid ``-koff`` was refused as giving ``--output (-o)``. Kept as sbatch reads it."""
    config = tmp_path / "nokill.toml"
    config.write_text(f'{_SLURM_REGION}partition = "gpu"\nsbatch_options = ["{option}"]\n')
    [region] = load_settings(config).regions
    assert region.slurm is not None and region.slurm.sbatch_options == (option,)


@pytest.mark.parametrize(
    "escaped", ["--mem=4G\\u0000", "--mail-user=a\\tb", "--mem=4G\\r", "-\\u001b[0m", "-", "--=x",
                "-- x"],
)  # fmt: skip
def test_an_option_that_is_no_whole_option_is_refused_at_its_line(
    tmp_path: Path, escaped: str
) -> None:
    """A NUL in an option loaded, and then every launch in the region raised ``ValueError:
    embedded null byte`` from the sbatch argv (no argv word can hold one); a tab, carriage
    return or escape is no part of an sbatch option either, nor a bare ``-`` (sbatch reads it
    as the script's file) or an option without a name (``--=x``)."""
    option = escaped.encode().decode("unicode_escape")
    assert _problems(tmp_path, f'sbatch_options = ["--mem=4G", "{escaped}"]\n') == [
        "8: regions.b.slurm.sbatch_options: each sbatch option must be one whole option, with "
        f"no control character, got {option!r}"
    ]


# sbatch's long names, refused and kept, some a prefix of another
_NAMES = ["array", "account", "begin", "chdir", "clusters", "comment", "dependency", "error",
          "export", "export-file", "gpus", "gpus-per-node", "gres", "gres-flags", "hold",
          "job-name", "mem", "nodelist", "nodes", "output", "parsable", "partition", "qos",
          "quiet", "requeue", "reservation", "test-only", "time", "tres-per-task", "uid", "wait",
          "wait-all-nodes", "wrap"]  # fmt: skip
_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)  # TOML has no surrogates
_option_text = st.one_of(
    _text,
    st.builds(lambda name, cut, sep, value: "--" + name[: max(1, len(name) - cut)] + sep + value,
              st.sampled_from(_NAMES), st.integers(0, 12), st.sampled_from(["", "=", " ", "\t"]),
              _text),
    st.builds(lambda letters, value: "-" + letters + value,
              st.text(alphabet="aAbDdeFGHhJkMNOopQqsVvWwxtc-", min_size=1, max_size=4),
              _text),
)  # fmt: skip


@settings(max_examples=examples(0.3), deadline=None)
@given(_option_text, st.booleans())
@example("--mem=4G\x00", False)  # loaded, then each launch raised ValueError
@example("--acc=b", True)
@example("--mem", False)  # loaded, and sbatch took the next option as its value
@example("-vt", True)
def test_any_sbatch_option_loads_or_is_refused_in_one_line(option: str, account: bool) -> None:
    """Whatever one ``sbatch_options`` entry holds, the config loads with it as it was (an
    argv word a launch can pass: it starts with ``-`` and holds no NUL) or fails with one
    ``ConfigError`` problem at its line, naming the field and the option — never another
    exception."""
    table = ('account = "a"\n' if account else "") + f"sbatch_options = [{toml_value(option)}]\n"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "fuzz.toml"
        config.write_text(f'{_SLURM_REGION}partition = "gpu"\n{table}')
        try:
            [region] = load_settings(config).regions
        except ConfigError as exc:
            [problem] = exc.problems
            line = 9 if account else 8
            assert problem.startswith(f"{config}:{line}: regions.b.slurm.sbatch_options: ")
            assert "\n" not in problem and repr(option) in problem
            return
    assert region.slurm is not None and region.slurm.sbatch_options == (option,)
    assert option.startswith("-") and "\x00" not in option


@pytest.mark.parametrize(
    ("option", "spelled"),
    [("--mem=", "--mem"), ("--time=", "--time"), ("--time-min=", "--time-min"),
     ("--cpus-per-task=", "--cpus-per-task"), ("--mem-per-c=", "--mem-per-cpu"),
     ("--signal=", "--signal"), ("--gres-flags=", "--gres-flags"), ("--batch=", "--batch")],
)  # fmt: skip
def test_an_empty_value_sbatch_refuses_is_refused_at_its_line(
    tmp_path: Path, option: str, spelled: str
) -> None:
    """``"--mem="`` loaded, and sbatch 22.05 refuses every job given it ("Invalid --mem
    specification"; "Invalid numeric value "" for --cpus-per-task"; the controller's "Job
    --batch option is invalid"): every launch in the region failed."""
    assert _problems(tmp_path, f'sbatch_options = ["{option}"]\n') == [
        f"8: regions.b.slurm.sbatch_options: {option!r} gives sbatch's {spelled} an empty "
        "value, which sbatch refuses, and with it every job of this region: give it a value, "
        "or leave it out"
    ]


@pytest.mark.parametrize(
    ("option", "spelled", "reads"),
    [("--input=", "--input", "the job's working directory as its standard input"),
     ("--qos=", "--qos", "a QOS named ''"),
     ("--core-s=", "--core-spec", "--core-spec=0, no core kept for the system")],
)  # fmt: skip
def test_an_empty_value_slurm_misreads_is_refused_at_its_line(
    tmp_path: Path, option: str, spelled: str, reads: str
) -> None:
    """sbatch 22.05 takes these empty, and the job then means something else: ``--input=``
    gives it its working directory as standard input (measured on the local cluster:
    ``cat: -: Is a directory``), ``--qos=`` no QOS rather than the user's default."""
    [problem] = _problems(tmp_path, f'sbatch_options = ["{option}"]\n')
    assert problem.startswith(
        f"8: regions.b.slurm.sbatch_options: {option!r} gives sbatch's {spelled} an empty "
        f"value, which Slurm reads as {reads}"
    )
    assert problem.endswith(": give it a value, or leave it out")


def test_an_empty_value_sbatch_reads_as_none_is_kept(tmp_path: Path) -> None:
    """An empty value that asks for none (``--reservation=`` plans the job outside any
    reservation, ``--constraint=`` asks no feature; sbatch 22.05 on the local cluster), and
    one of an option whose value is optional (``--exclusive=`` is ``--exclusive``), load."""
    options = ("--reservation=", "--constraint=", "--exclude=", "--account=", "--priority=",
               "--wckey=", "--licenses=", "--mail-user=", "--exclusive=", "--nice=",
               "--res=")  # fmt: skip
    config = tmp_path / "kept.toml"
    listed = ", ".join(f'"{o}"' for o in options)
    config.write_text(f'{_SLURM_REGION}partition = "gpu"\nsbatch_options = [{listed}]\n')
    [region] = load_settings(config).regions
    assert region.slurm is not None and region.slurm.sbatch_options == options


def test_every_option_that_requires_a_value_says_what_sbatch_does_with_an_empty_one() -> None:
    """Each of sbatch's options that require a value is in one of the three sets read from
    sbatch 22.05 (refused empty, misread empty, empty as none), and in one only: a new
    option added to the table without that reading fails here."""
    sets = [EMPTY_REFUSED, frozenset(EMPTY_MISREAD), EMPTY_NONE]
    assert frozenset().union(*sets) == VALUE_REQUIRED
    assert sum(len(s) for s in sets) == len(VALUE_REQUIRED)


@pytest.mark.parametrize(
    ("option", "letter", "value", "how"),
    [("-t 60", "t", " 60", "-t60"), ("-t ''", "t", " ''", "-t''"), ("-vt 60", "t", " 60", "-vt60"),
     ("-m block", "m", " block", "-mblock"), ("-C fast", "C", " fast", "-Cfast"),
     ("-L lic", "L", " lic", "-Llic"), ("-k off", "k", " off", "-koff"),
     ("-vk  off", "k", "  off", "-vkoff")],
)  # fmt: skip
def test_a_short_option_whose_value_sbatch_refuses_after_a_space_is_refused(
    tmp_path: Path, option: str, letter: str, value: str, how: str
) -> None:
    """``"-t 60"`` loaded, and sbatch 22.05 gives ``-t`` the rest of the word, space and all
    (" 60"), and refuses it ("Invalid --time specification"; ``-k off``: "Invalid --no-kill
    specification"; ``-C fast``, ``-L lic``: the controller's "Invalid feature/license
    specification"): every launch in the region failed."""
    assert _problems(tmp_path, f'sbatch_options = ["{option}"]\n') == [
        f"8: regions.b.slurm.sbatch_options: {option!r} gives sbatch's -{letter} the value "
        f"{value!r}, its space and all (sbatch reads one entry as one word), which sbatch "
        f"refuses, and with it every job of this region: write it {how}"
    ]


@pytest.mark.parametrize(
    ("option", "letter", "reads"),
    [("-A carbond", "A", "an account whose name starts with a space"),
     ("-q normal", "q", "a QOS whose name starts with a space"),
     ("-i /dev/null", "i", "a file whose name starts with a space"),
     ("-vi /dev/null", "i", "a file whose name starts with a space")],
)  # fmt: skip
def test_a_short_option_whose_value_slurm_misreads_after_a_space_is_refused(
    tmp_path: Path, option: str, letter: str, reads: str
) -> None:
    """sbatch 22.05 takes these, and the job means something else (local cluster, ``scontrol
    show job``): ``-A carbond`` is charged to the user's default account, ``-q normal`` has
    no QOS (``QOS=``), ``-i /dev/null`` reads ``<cwd>/ /dev/null``."""
    [problem] = _problems(tmp_path, f'sbatch_options = ["{option}"]\n')
    value = option[option.index(" ") :]
    assert problem.startswith(
        f"8: regions.b.slurm.sbatch_options: {option!r} gives sbatch's -{letter} the value "
        f"{value!r}, its space and all (sbatch reads one entry as one word), which Slurm reads "
        f"as {reads}"
    )
    assert problem.endswith(f": write it {option.replace(' ', '')}")


@pytest.mark.parametrize("option", ["-v x", "-s 2", "-O x", "-vs x"])
def test_a_flag_followed_by_a_space_in_one_entry_is_refused(tmp_path: Path, option: str) -> None:
    """``"-v x"`` loaded, and sbatch 22.05 reads the space after the flag as an option
    letter it does not know ("invalid option -- ' '"): every launch in the region failed."""
    flag = option.split(maxsplit=1)[0][-1]
    assert _problems(tmp_path, f'sbatch_options = ["{option}"]\n') == [
        f"8: regions.b.slurm.sbatch_options: sbatch reads {option!r} as one word, in which "
        f"the space after -{flag} is an option it does not know (\"invalid option -- ' '\"), "
        "and refuses every job of this region: give each option its own entry, with its "
        "value in the same word"
    ]


def test_a_short_option_whose_value_sbatch_reads_the_same_after_a_space_is_kept(
    tmp_path: Path,
) -> None:
    """sbatch 22.05 reads these as it reads them without the space (a number: ``-c 2`` is
    ``cpus-per-task: 2``; a node list: ``-x n2`` excludes n2), so they load as they are."""
    options = ("-c 2", "-n 2", "-x n2", "-B 1", "-S 1", "-vc 2", "-c  4")
    config = tmp_path / "kept.toml"
    listed = ", ".join(f'"{o}"' for o in options)
    config.write_text(f'{_SLURM_REGION}partition = "gpu"\nsbatch_options = [{listed}]\n')
    [region] = load_settings(config).regions
    assert region.slurm is not None and region.slurm.sbatch_options == options


def test_every_short_option_with_a_value_says_what_sbatch_does_with_one_after_a_space() -> None:
    """Each of sbatch's short letters that take a value in their word is in one of the three
    sets read from sbatch 22.05 (refused, misread, read the same), and in one only."""
    sets = [SPACED_REFUSED, frozenset(SPACED_MISREAD), SPACED_SAME]
    assert frozenset().union(*sets) == VALUE_REQUIRED_SHORT | VALUE_OPTIONAL_SHORT
    assert sum(len(s) for s in sets) == len(VALUE_REQUIRED_SHORT | VALUE_OPTIONAL_SHORT)


@pytest.mark.parametrize(
    ("option", "letter", "value", "how"),
    [("-t=60", "t", "=60", "-t60"), ("-c=2", "c", "=2", "-c2"), ("-x=n2", "x", "=n2", "-xn2"),
     ("-vx=n2", "x", "=n2", "-vxn2"), ("-k=off", "k", "=off", "-koff"), ("-C=fast", "C", "=fast",
     "-Cfast"), ("-m=block", "m", "=block", "-mblock")],
)  # fmt: skip
def test_a_short_option_whose_value_sbatch_refuses_after_an_equals_sign_is_refused(
    tmp_path: Path, option: str, letter: str, value: str, how: str
) -> None:
    """``"-t=60"`` loaded, and sbatch 22.05 gives ``-t`` the rest of its word, ``=`` and all
    ("=60"), and refuses it ("Invalid --time specification"; ``-x=n2``: the controller's
    "Invalid node name specified"): every launch in the region failed."""
    assert _problems(tmp_path, f'sbatch_options = ["{option}"]\n') == [
        f"8: regions.b.slurm.sbatch_options: {option!r} gives sbatch's -{letter} the value "
        f"{value!r}, '=' and all (a short option's value follows its letter), which sbatch "
        f"refuses, and with it every job of this region: write it {how}"
    ]


@pytest.mark.parametrize(
    ("option", "letter", "reads"),
    [("-A=b", "A", "an account whose name starts with '='"),
     ("-q=normal", "q", "a QOS whose name starts with '='"),
     ("-i=/dev/null", "i", "a file whose name starts with '='"),
     ("-vi=/dev/null", "i", "a file whose name starts with '='")],
)  # fmt: skip
def test_a_short_option_whose_value_slurm_misreads_after_an_equals_sign_is_refused(
    tmp_path: Path, option: str, letter: str, reads: str
) -> None:
    """sbatch 22.05 takes these, ``=`` and all, and the job means something else (local
    cluster, ``scontrol show job``): ``-A=b`` is charged to the user's default account,
    ``-q=normal`` has no QOS (``QOS=``), ``-i=/dev/null`` reads ``<cwd>/=/dev/null``."""
    [problem] = _problems(tmp_path, f'sbatch_options = ["{option}"]\n')
    value = option[option.index("=") :]
    assert problem.startswith(
        f"8: regions.b.slurm.sbatch_options: {option!r} gives sbatch's -{letter} the value "
        f"{value!r}, '=' and all (a short option's value follows its letter), which Slurm "
        f"reads as {reads}"
    )
    assert problem.endswith(f": write it {option.replace('=', '')}")


def test_every_short_option_with_a_value_says_what_sbatch_does_with_an_equals_sign() -> None:
    """Each of sbatch's short letters that take a value in their word is in one of the two
    sets read from sbatch 22.05 (refused, misread: none reads ``-c=2`` as ``-c2``), and in
    one only."""
    sets = [EQUALS_REFUSED, frozenset(EQUALS_MISREAD)]
    assert frozenset().union(*sets) == VALUE_REQUIRED_SHORT | VALUE_OPTIONAL_SHORT
    assert sum(len(s) for s in sets) == len(VALUE_REQUIRED_SHORT | VALUE_OPTIONAL_SHORT)


@pytest.mark.parametrize(
    ("option", "letter"),
    [("-I", "I"), ("-u", "u"), ("-X", "X"), ("-vI", "I"), ("-sOu", "u"), ("-f/tmp/x", "f"),
     ("-0", "0"), ("-v-", "-"), ("-v=x", "="), ("-s%", "%"), ("-vé", "é")],
)  # fmt: skip
def test_a_short_letter_sbatch_does_not_have_is_refused(
    tmp_path: Path, option: str, letter: str
) -> None:
    """``"-I"`` (salloc's, not sbatch's) loaded, and sbatch 22.05 refuses every job given it
    ("invalid option -- 'I'"); so for each letter a-z, A-Z, 0-9 it does not have, any other
    character read as an option letter, and one after flags in the same word (``-vI``;
    ``-v=x``: "invalid option -- '='")."""
    assert _problems(tmp_path, f'sbatch_options = ["{option}"]\n') == [
        f"8: regions.b.slurm.sbatch_options: sbatch reads {letter!r} in {option!r} as a short "
        f"option, which it does not have (\"invalid option -- '{letter}'\"), and refuses every "
        "job of this region: leave it out"
    ]


def test_every_short_letter_sbatch_has_loads() -> None:
    """The letters read from sbatch 22.05 as its short options are all still taken (each
    alone, with a value where it requires one, and after a flag), and no other letter a-z,
    A-Z, 0-9 is (the test above refuses some; this one pins the known set)."""
    known = FLAGS_SHORT | VALUE_REQUIRED_SHORT | VALUE_OPTIONAL_SHORT
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    assert known == frozenset("abcdehikmnopqstvwxABCDFGHJLMNOQSVW")
    for letter in letters:
        value = "1" if letter in VALUE_REQUIRED_SHORT else ""
        why = refusal(f"-v{letter}{value}")
        has = why is None or "invalid option" not in why
        assert has == (letter in known), (letter, why)


@pytest.mark.parametrize(
    ("option", "spelled", "value", "where", "how"),
    [("-t60 ", "-t", "60 ", "trailing", "-t60"), ("-vc2 ", "-c", "2 ", "trailing", "-vc2"),
     ("-koff ", "-k", "off ", "trailing", "-koff"), ("--mem=4G ", "--mem", "4G ", "trailing",
     "--mem=4G"), ("--time=60  ", "--time", "60  ", "trailing", "--time=60"),
     ("--ntasks=1 ", "--ntasks", "1 ", "trailing", "--ntasks=1"), ("--time= 60", "--time",
     " 60", "leading", "--time=60"), ("--constraint= fast", "--constraint", " fast", "leading",
     "--constraint=fast"), ("--res=maint ", "--reservation", "maint ", "trailing",
     "--res=maint")],
)  # fmt: skip
def test_a_value_whose_space_sbatch_refuses_is_refused(
    tmp_path: Path, option: str, spelled: str, value: str, where: str, how: str
) -> None:
    """``"-t60 "`` and ``"--mem=4G "`` loaded, and sbatch 22.05 refuses the value with its
    space ("Invalid --time specification", "Invalid --mem specification"; ``--constraint=
    fast``: the controller's "Invalid feature specification"): every launch in the region
    failed."""
    assert _problems(tmp_path, f'sbatch_options = ["{option}"]\n') == [
        f"8: regions.b.slurm.sbatch_options: {option!r} gives sbatch's {spelled} the value "
        f"{value!r}, its {where} space and all, which sbatch refuses, and with it every job "
        f"of this region: write it {how}"
    ]


@pytest.mark.parametrize(
    ("option", "spelled", "where", "reads"),
    [("-Acarbond ", "-A", "trailing", "an account whose name has the space"),
     ("--account=b ", "--account", "trailing", "an account whose name has the space"),
     ("--account= b", "--account", "leading", "an account whose name has the space"),
     ("-qnormal ", "-q", "trailing", "a QOS whose name has the space"),
     ("-i/dev/null ", "-i", "trailing", "a file whose name has the space"),
     ("--input= /dev/null", "--input", "leading", "a file whose name has the space"),
     ("--wckey=w ", "--wckey", "trailing", "a wckey that has the space")],
)  # fmt: skip
def test_a_value_whose_space_slurm_misreads_is_refused(
    tmp_path: Path, option: str, spelled: str, where: str, reads: str
) -> None:
    """sbatch 22.05 takes these, space and all, and the job means something else (local
    cluster, ``scontrol show job`` against the value without the space): ``-Acarbond `` is
    charged to the user's default account (``Account=root``), ``-qnormal `` has ``QOS=``,
    ``-i/dev/null `` reads a file ``/dev/null `` that is not there."""
    [problem] = _problems(tmp_path, f'sbatch_options = ["{option}"]\n')
    value = option[len(spelled) + (1 if spelled.startswith("--") else 0) :]
    assert problem.startswith(
        f"8: regions.b.slurm.sbatch_options: {option!r} gives sbatch's {spelled} the value "
        f"{value!r}, its {where} space and all, which Slurm reads as {reads}"
    )
    assert problem.endswith(f": write it {spelled}{'=' if spelled[1] == '-' else ''}"
                            f"{value.strip()}")  # fmt: skip


def test_a_value_whose_space_sbatch_reads_the_same_is_kept(tmp_path: Path) -> None:
    """sbatch 22.05 reads these as it reads the value without the space (a number after
    ``=``: ``--mem= 4G``, ``--cpus-per-task= 2``; a node list: ``-xn2 ``; a keyword it
    parses: ``--open-mode=append ``, ``--profile=none ``; a time: ``--begin=now ``)."""
    options = ("--mem= 4G", "--cpus-per-task= 2", "-xn2 ", "--exclude= n2", "--open-mode=append ",
               "--profile=none ", "--nice= 10", "--signal= USR1@60", "--deadline=now+2hours ",
               "--cpu-freq=high ", "-c 2")  # fmt: skip
    config = tmp_path / "kept.toml"
    listed = ", ".join(f'"{o}"' for o in options)
    config.write_text(f'{_SLURM_REGION}partition = "gpu"\nsbatch_options = [{listed}]\n')
    [region] = load_settings(config).regions
    assert region.slurm is not None and region.slurm.sbatch_options == options


def test_every_option_with_a_value_says_what_sbatch_does_with_a_space_around_it() -> None:
    """Each long option that takes a value is in one of the three sets read from sbatch 22.05
    for a trailing space (refused, misread, read the same), and in one for a leading one;
    each short letter that takes a value in its word, for a trailing one; one set each."""
    long = VALUE_REQUIRED | VALUE_OPTIONAL
    short = VALUE_REQUIRED_SHORT | VALUE_OPTIONAL_SHORT
    for sets, every in (
        ((TRAILING_REFUSED, TRAILING_MISREAD, TRAILING_SAME), long),
        ((LEADING_REFUSED, LEADING_MISREAD, LEADING_SAME), long),
        ((TRAILING_REFUSED_SHORT, TRAILING_MISREAD_SHORT, TRAILING_SAME_SHORT), short),
    ):
        assert frozenset().union(*sets) == every
        assert sum(len(s) for s in sets) == len(every)
    assert frozenset(SPACE_MISREAD) == TRAILING_MISREAD | LEADING_MISREAD


@pytest.mark.parametrize(
    ("option", "written"),
    [("--reservation=A,", "--reservation=A"), ("--reservation=,A", "--reservation=A"),
     ("--res=A,,B", "--res=A,B")],
)  # fmt: skip
def test_a_reservation_list_with_an_empty_item_is_refused_at_its_line(
    tmp_path: Path, option: str, written: str
) -> None:
    """``--reservation=A,`` loaded and asked A alone (sbatch 22.05 keeps it as given,
    ``Reservation=rA,`` in ``scontrol show job``): a name left out of the list by mistake went
    unseen. An empty item of the list is now refused, naming file, line and field."""
    [problem] = _problems(tmp_path, f'sbatch_options = ["{option}"]\n')
    assert problem.startswith(f"8: regions.b.slurm.sbatch_options: {option!r} lists ")
    assert problem.endswith(f"write {written}, or name the reservation left out")


@pytest.mark.parametrize(
    ("option", "item", "written"),
    [("--reservation=A, B", "item 2 of 'A, B'", "--reservation=A,B"),
     ("--reservation=A ,B", "item 1 of 'A ,B'", "--reservation=A,B"),
     ("--res=A, ,B", "item 2 of 'A, ,B'", "--res=A,B")],
)  # fmt: skip
def test_a_reservation_list_with_a_space_around_an_item_is_refused_at_its_line(
    tmp_path: Path, option: str, item: str, written: str
) -> None:
    """``--reservation=A, B`` loaded, and the region's jobs were planned as asking a
    reservation named " B" (:func:`~daemon.executors.slurm.discovery.asked_reservations`
    splits on the comma alone), which no node is in. A space around an item is refused as an
    empty one is (a leading or trailing one of the whole value: sbatch refuses it)."""
    [problem] = _problems(tmp_path, f'sbatch_options = ["{option}"]\n')
    assert problem.startswith(f"8: regions.b.slurm.sbatch_options: {option!r} lists ")
    assert f"({item})" in problem
    assert problem.endswith(f"write {written}")


def test_a_reservation_list_without_an_empty_item_is_kept(tmp_path: Path) -> None:
    options = ("--reservation=A,B", "--res=A", "--reservation=")
    config = tmp_path / "kept.toml"
    listed = ", ".join(f'"{o}"' for o in options)
    config.write_text(f'{_SLURM_REGION}partition = "gpu"\nsbatch_options = [{listed}]\n')
    [region] = load_settings(config).regions
    assert region.slurm is not None and region.slurm.sbatch_options == options
