"""Which ``sbatch_options`` of a ``[regions.slurm]`` table carbond refuses, and why; and
what one gives an sbatch option (:func:`given`: the Slurm executor reads a reservation so).

carbond's own ``sbatch`` options come first and a region's ``sbatch_options`` after them
(``daemon.executors.slurm.commands.sbatch_argv``), so sbatch takes the region's where both
give one: such an option would replace what carbond sets (its job name, start, output files,
partition, node...) or change what carbond relies on from sbatch (an answer that is the job's
id, a job that starts when released). It is refused when the config is read, in each spelling
sbatch reads: long (``--begin=now``, ``--begin now``), an abbreviation sbatch takes
(``--beg``), short (``-bnow``, ``-b now``) or after short flags that take no value
(``-vHb``). What sbatch 22.05 takes was read from its own answers (``sbatch --p``: "ambiguous;
possibilities: '--parsable' '--partition' ..."); no sbatch option that carbond lets through is
the abbreviation of one it refuses. An option that requires a value given none (``--mem``,
``-t``: :mod:`daemon.settings.sbatch_table`) is refused too: sbatch would take the next word
of its command line as that value; and one given an empty value (``--mem=``) where sbatch
refuses it or Slurm reads it as something other than none (``--input=``); and a short one
split from its value by a space (``-t 60``: sbatch gives ``-t`` " 60") where sbatch refuses
that value or Slurm reads it as other than the value without the space (``-A carbond``); and
a short one given its value after ``=`` (``-t=60``: sbatch gives ``-t`` "=60"), which sbatch
refuses or Slurm misreads for every letter that takes a value (``-A=b``: an account "=b").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from daemon.settings.sbatch_table import (
    EMPTY_MISREAD,
    EMPTY_REFUSED,
    FLAGS_SHORT,
    VALUE_OPTIONAL_SHORT,
    VALUE_REQUIRED,
    VALUE_REQUIRED_SHORT,
)
from daemon.settings.sbatch_values import equals, letters, long_name, padded, spaced, verdict

__all__ = ["given", "refusal"]

# sbatch 22.05's short options that take no value (:func:`letters` reads a word by them)
_NO_VALUE = FLAGS_SHORT
# every short option sbatch 22.05 has: any other character read as one ("-I", the "=" of
# "-v=x") is "invalid option -- 'I'" (:func:`_unknown`)
_SHORT = FLAGS_SHORT | VALUE_REQUIRED_SHORT | VALUE_OPTIONAL_SHORT
# a control character: an argv word cannot hold NUL (the launch would raise), and no option
# of sbatch's takes a newline, tab or escape
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# sbatch's options that set a job's GPUs: carbond's own --gres=<gres>:N is the job's request
_GPU_OPTIONS = ("--gpus", "--gpus-per-node", "--gpus-per-socket", "--gpus-per-task", "--gres")
# the shortest abbreviation sbatch 22.05 takes of each long option :func:`given` is asked
# about (``sbatch --re``: "ambiguous; possibilities: '--reboot' '--requeue' '--reservation'")
_SHORTEST = {"reservation": "res"}


@dataclass(frozen=True, slots=True)
class _Refused:
    """An sbatch option carbond refuses: its long name, short letter (empty: none), why, and
    whether carbond sets it itself (else carbond's jobs cannot be submitted with it)."""

    long: str
    short: str
    why: str
    sets: bool = True


_REFUSED = (
    _Refused("parsable", "", "its answer is read as the job's Slurm id"),
    _Refused("job-name", "J", "carbond-<job id>, by which a restarted carbond finds the job"),
    _Refused("begin", "b", "the job's planned start, moved by each new plan"),
    _Refused("output", "o", "the job's .out in carbond's log dir, read back for why it exited"),
    _Refused("error", "e", "the job's .err in carbond's log dir, read back for why it exited"),
    _Refused("partition", "p", "from partition in this table"),
    _Refused("clusters", "M", "from cluster in this table"),
    _Refused("cluster", "", "from cluster in this table"),
    _Refused("nodes", "N", "one node: a job's planned GPUs are on one node"),
    _Refused("nodelist", "w", "the node of the job's planned GPUs"),
    _Refused("nodefile", "F", "the node of the job's planned GPUs, as --nodelist"),
    _Refused("chdir", "D", "the job's own working directory"),
    _Refused("export", "", "ALL: the environment carbond builds for the job"),
    _Refused("comment", "", "the job's name, shown in squeue"),
    _Refused("hold", "H", "a held job does not start when carbond releases it", sets=False),
    _Refused("wait", "W", "sbatch would not answer until the job ended", sets=False),
    _Refused("quiet", "Q", "sbatch would not print the job's id", sets=False),
    _Refused("test-only", "", "sbatch would submit no job", sets=False),
    _Refused("help", "h", "sbatch would submit no job", sets=False),
    _Refused("usage", "", "sbatch would submit no job", sets=False),
    _Refused("version", "V", "sbatch would submit no job", sets=False),
    _Refused("wrap", "", "the job is carbond's batch script, on sbatch's input", sets=False),
    _Refused("uid", "", "sbatch runs as the job's owner, whose job it is", sets=False),
    _Refused("gid", "", "sbatch runs as the job's owner, whose job it is", sets=False),
    _Refused(
        "dependency",
        "d",
        "a released job would wait for it, pending, and be taken back and planned again",
        sets=False,
    ),
)
# carbond sets these only where the table sets them (account, qos): refused only then
_FROM_TABLE = (_Refused("account", "A", "from account in this table"),
               _Refused("qos", "q", "from qos in this table"))  # fmt: skip


def refusal(option: str, *, account: bool = False, qos: bool = False) -> str | None:
    """Why ``option`` (one of a region's ``sbatch_options``) is refused, or None when sbatch
    may have it. ``account``, ``qos``: whether the table sets them (then ``--account``,
    ``--qos`` would replace them)."""
    if option == "--":
        return (
            "'--' ends sbatch's options: the options after it would be read as the batch "
            "script and its arguments: leave it out"
        )
    name = _name(option)
    if not option.startswith("-") or name in ("-", "--") or _CONTROL.search(option):
        return (
            "each sbatch option must be one whole option, with no control character, got "
            f"{option!r}"
        )
    if _sets_gpus(name, option):
        return (
            f"{option!r} sets the job's GPUs, which carbond asks itself (--gres from its "
            "plan, updated in place when a plan moves the job; Slurm refuses the job, or that "
            "update, with both): leave it out"
        )
    if _makes_array(name):
        return (
            f"{option!r} would make carbond's job a job array: carbond submits one Slurm job "
            "per request and follows it by its id or name, which array tasks are not found "
            "by: leave it out"
        )
    refused = _carbonds(option, name, account=account, qos=qos)
    return refused if refused is not None else _miswritten(option, name) or _gap(option, name)


def given(option: str, long: str) -> str | None:
    """The value ``option`` (one of a region's ``sbatch_options``, as the config took it)
    gives sbatch's ``--<long>`` (one of :data:`_SHORTEST`), or None where it gives none:
    spelled whole or as an abbreviation sbatch takes (``--res=maint`` gives ``maint``;
    ``--re`` is ambiguous), its value after ``=`` (or a space, as :func:`refusal` reads it).
    ``--reservation=`` gives the empty value, which sbatch 22.05 takes and Slurm reads as no
    reservation (``sbatch --test-only --reservation=`` plans the job outside any, where
    ``--reservation=nosuch`` is "Requested reservation is invalid")."""
    name = _name(option)
    if not (name.startswith(f"--{_SHORTEST[long]}") and f"--{long}".startswith(name)):
        return None
    return option[len(name) + 1 :]


def _gap(option: str, name: str) -> str | None:
    """Why ``option``, a ``--reservation=A,B`` list, is refused: an item of it is empty
    (``A,``, ``,A``, ``A,,B``), or has a space before or after it (``A, B``, ``A ,B``).
    sbatch 22.05 takes an empty item as given (``Reservation=A,`` in ``scontrol show job``)
    and the job asks the named ones alone, so a name left out by mistake went unseen; the list
    is split on its commas alone (as
    :func:`~daemon.executors.slurm.discovery.asked_reservations` reads it), so ``A, B``
    names " B", no reservation's name. None for a list without such an item, and for
    ``--reservation=`` (no reservation)."""
    value = given(option, "reservation")
    if not value:
        return None
    items = value.split(",")
    whole = ",".join(item.strip() for item in items if item.strip())
    if "" in items:
        return (
            f"{option!r} lists an empty reservation (item {items.index('') + 1} of "
            f"{value!r}), which sbatch takes as given (the job asks the named ones alone): "
            f"write {name}={whole}, or name the reservation left out"
        )
    spaced = [i for i, item in enumerate(items, 1) if item != item.strip()]
    if not spaced:
        return None
    return (
        f"{option!r} lists a reservation with a space around its name (item {spaced[0]} of "
        f"{value!r}): the list is split at its commas alone, so it names "
        f"{items[spaced[0] - 1]!r}, space and all: write {name}={whole}"
    )


def _miswritten(option: str, name: str) -> str | None:
    """Why ``option`` (its word up to ``=`` or a space: ``name``) does not give sbatch what
    it reads as: a long option split from its value by a space (sbatch reads the whole word
    as an option it does not know), a short one so split or given its value after ``=``, or
    any given a value with a space sbatch keeps (:mod:`daemon.settings.sbatch_values`), one
    that requires a value given none (:func:`_bare`), or an empty one (:func:`_empty`); or
    a short option sbatch does not have (:func:`_unknown`)."""
    unknown = _unknown(option)
    if unknown is not None:
        return unknown
    if option[len(name) :][:1].isspace():
        if not name.startswith("--"):
            return spaced(option, name) or padded(option, name)
        value = option[len(name) :].strip()
        return (
            f"sbatch reads {option!r} as one word, an option it does not know, and refuses "
            f"every job of this region: write it {name}={value}"
        )
    if not name.startswith("--") and option[len(name) :][:1] == "=":
        return equals(option, name)
    if option == f"{name}=":
        return _empty(option, name)
    return _bare(option) if option == name else padded(option, name)


def _unknown(option: str) -> str | None:
    """Why ``option`` is refused as giving a short option sbatch 22.05 does not have (any
    character but :data:`_SHORT`'s read as an option letter: ``-I``, ``-vI``, the ``=`` of
    ``-v=x``), which it refuses ("invalid option -- 'I'"), and with it every job; None for a
    long option, or a space after flags (:func:`~daemon.settings.sbatch_values.spaced` says why)."""
    letter = letters(option)[-1:] if not option.startswith("--") else ""
    if not letter or letter in _SHORT or letter.isspace():
        return None
    return (
        f"sbatch reads {letter!r} in {option!r} as a short option, which it does not have "
        f"(\"invalid option -- '{letter}'\"), and refuses every job of this region: leave it out"
    )


def _empty(option: str, name: str) -> str | None:
    """Why ``option``, the long option word ``name`` with an empty value (``--mem=``), is
    refused: sbatch 22.05 refuses the empty value (:data:`EMPTY_REFUSED`: every job of the
    region would be), or takes it and Slurm reads it as something other than none
    (:data:`EMPTY_MISREAD`); None where it asks for none (``--reservation=``) or the option's
    value is optional (``--exclusive=`` is ``--exclusive``)."""
    long = long_name(name[2:]) if name.startswith("--") else None
    if (what := verdict(long, EMPTY_REFUSED, EMPTY_MISREAD, EMPTY_MISREAD)) is None:
        return None
    return (
        f"{option!r} gives sbatch's --{long} an empty value, {what}: give it a value, or "
        "leave it out"
    )


def _bare(option: str) -> str | None:
    """Why ``option`` (a whole argv word, with no ``=`` or space) is refused as an option
    that requires a value given without one (``--mem``; ``--wck``, an abbreviation sbatch
    takes, of ``--wckey``; ``-t``; ``-vt``), or None. sbatch would take the next
    word of its command line as the value: the next option (``--mem --reservation=x`` is
    no reservation) or, for the last one, none, and every job of the region refused."""
    if option.startswith("--"):
        long = long_name(option[2:])
        if long not in VALUE_REQUIRED:
            return None
        how, spelled = f"--{long}=<value>", f"sbatch's --{long}"
    else:
        read = letters(option)
        last = read[-1]
        if len(option) != 1 + len(read) or last not in VALUE_REQUIRED_SHORT:
            return None
        how, spelled = f"{option}<value>", f"sbatch's -{last}"
    return (
        f"{option!r} gives {spelled} without the value it requires: sbatch would take the "
        "next word of its command line as it (the next option, or none, and every job of "
        f"this region refused): write it {how}"
    )


def _name(option: str) -> str:
    """The option word of ``option``: up to its ``=`` or a space (``--begin`` of
    ``--begin=now``), the one place an sbatch option is split from its value."""
    return re.split(r"[=\s]", option, maxsplit=1)[0]


def _carbonds(option: str, name: str, *, account: bool, qos: bool) -> str | None:
    """Why ``option`` (its word up to ``=`` or a space: ``name``) is refused as one of
    :data:`_REFUSED` (or of :data:`_FROM_TABLE` where the table sets it), or None."""
    refused = _REFUSED + tuple(r for r, on in zip(_FROM_TABLE, (account, qos), strict=True) if on)
    found = _refused_in(name, refused)
    if not found:
        return None
    if len(found) > 1:  # an abbreviation of more than one: sbatch refuses it as ambiguous
        return (
            f"{option!r} abbreviates more than one sbatch option ("
            f"{', '.join(_spelled(r) for r in found)}), and carbond refuses "
            f"{_spelled(found[0])}: leave it out"
        )
    [one] = found
    what = "which carbond sets itself" if one.sets else "which carbond's jobs cannot take"
    verb = "abbreviates" if name.startswith("--") and name != f"--{one.long}" else "gives"
    return f"{option!r} {verb} sbatch's {_spelled(one)}, {what} ({one.why}): leave it out"


def _refused_in(name: str, refused: tuple[_Refused, ...]) -> list[_Refused]:
    """The refused options ``name`` (an option word up to its ``=`` or space) gives: a long
    name or a prefix of one (sbatch takes any unambiguous prefix), or the first short letter
    sbatch reads in it (:func:`~daemon.settings.sbatch_values.letters`) that is refused."""
    if name.startswith("--"):
        given = name[2:]
        if not given:
            return []
        exact = [r for r in refused if r.long == given]
        return exact or [r for r in refused if r.long.startswith(given)]
    by_letter = {r.short: r for r in refused if r.short}
    return [by_letter[letter] for letter in letters(name) if letter in by_letter][:1]


def _spelled(refused: _Refused) -> str:
    return f"--{refused.long} (-{refused.short})" if refused.short else f"--{refused.long}"


def _sets_gpus(name: str, option: str) -> bool:
    """Whether ``option`` (its word up to ``=`` or a space: ``name``) asks GPUs: one of
    :data:`_GPU_OPTIONS`, or a ``--gpus-per-`` abbreviation of one (sbatch takes any
    unambiguous prefix), a ``--tres-per-task`` that names ``gres/gpu``, or ``-G`` (``-G2``;
    after flags that take no value, ``-vG2``)."""
    if name.startswith("--tres-p") and "--tres-per-task".startswith(name):  # sbatch after 22.05
        return "gres/gpu" in option
    if name.startswith("--"):
        return name in _GPU_OPTIONS or (
            name.startswith("--gpus-per-") and any(o.startswith(name) for o in _GPU_OPTIONS)
        )
    return "G" in letters(name)


def _makes_array(name: str) -> bool:
    """Whether the option word ``name`` is ``--array`` (or a prefix of it sbatch takes:
    ``--ar``) or ``-a`` (``-a0-3``; after flags that take no value, ``-va0-3``)."""
    if name.startswith("--"):
        return len(name) > len("--a") and "--array".startswith(name)
    return "a" in letters(name)
