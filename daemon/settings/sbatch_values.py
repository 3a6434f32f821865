"""What sbatch 22.05 reads of a short option's value in its word, and of any option's value
with a space around it, where that is not what the entry seems to give: for
:mod:`daemon.settings.sbatch_options`, which refuses such an entry at its line. Each answer
was read from sbatch itself (:mod:`daemon.settings.sbatch_table` says how).

sbatch gets each ``sbatch_options`` entry as one argv word. A short option's value is the
rest of its word after its letter (getopt): ``-t 60`` gives ``-t`` " 60" (:func:`spaced`),
``-t=60`` "=60" (:func:`equals`), ``-t60 `` "60 "; a long one's is the rest after ``=``,
spaces and all: ``--mem=4G `` gives "4G " and ``--mem= 4G`` " 4G" (:func:`padded`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from daemon.settings.sbatch_table import (
    EQUALS_MISREAD,
    EQUALS_REFUSED,
    FLAGS_SHORT,
    LEADING_MISREAD,
    LEADING_REFUSED,
    LONG_OPTIONS,
    SPACE_MISREAD,
    SPACED_MISREAD,
    SPACED_REFUSED,
    TRAILING_MISREAD,
    TRAILING_MISREAD_SHORT,
    TRAILING_REFUSED,
    TRAILING_REFUSED_SHORT,
)

__all__ = ["equals", "letters", "long_name", "padded", "spaced", "verdict"]

# sbatch 22.05's short options that take no value: in one word (``-vH``) the letter after one
# of them is another option; after any other letter the rest of the word is that option's
# value (``-Jname-H`` is a job named ``name-H``; ``-koff`` is ``--no-kill=off``, as ``-k``'s
# value is optional and only ever in its own word; ``-kQ`` is "Invalid --no-kill
# specification", not --quiet). ``-I`` and ``-u`` are salloc's, not sbatch's ("invalid option")
_NO_VALUE = FLAGS_SHORT
_REFUSED = "which sbatch refuses, and with it every job of this region"


def verdict(
    key: str | None,
    refused: Collection[str],
    misread: Collection[str],
    said: Mapping[str, str],
) -> str | None:
    """What sbatch 22.05 does with an option (``key``: its long name or letter) written so:
    refuses it (in ``refused``: every job of the region with it), or takes it and Slurm reads
    it as ``said[key]`` (in ``misread``); None where it reads it as meant."""
    if key is None:
        return None
    if key in refused:
        return _REFUSED
    if key in misread:
        return f"which Slurm reads as {said[key]}"
    return None


def spaced(option: str, name: str) -> str | None:
    """Why ``option``, the short option word ``name`` and a space after it (``-t 60``), is
    refused: sbatch 22.05 reads one entry as one argv word, so a letter that takes a value
    there gets the rest of the word, space and all (" 60"), which sbatch refuses
    (:data:`SPACED_REFUSED`) or Slurm reads as other than the value without the space
    (:data:`SPACED_MISREAD`: ``-A carbond``, an account that starts with a space); after a
    flag (``-v x``) sbatch reads the space as an option letter it does not know. None where
    sbatch reads the value as without the space (``-c 2``), or the space is inside a value
    begun in the word (``-Jx y``)."""
    read = letters(name)
    if len(name) != 1 + len(read):
        return None
    last, value = read[-1], option[len(name) :]
    if last in _NO_VALUE:
        return (
            f"sbatch reads {option!r} as one word, in which the space after -{last} is an "
            "option it does not know (\"invalid option -- ' '\"), and refuses every job of "
            "this region: give each option its own entry, with its value in the same word"
        )
    if (what := verdict(last, SPACED_REFUSED, SPACED_MISREAD, SPACED_MISREAD)) is None:
        return None
    return (
        f"{option!r} gives sbatch's -{last} the value {value!r}, its space and all (sbatch "
        f"reads one entry as one word), {what}: write it {name}{value.lstrip()}"
    )


def equals(option: str, name: str) -> str | None:
    """Why ``option``, the short option word ``name`` and ``=`` after it (``-t=60``), is
    refused: a short option's value follows its letter, so sbatch 22.05 gives the letter the
    rest of the word, ``=`` and all ("=60"), which it refuses (:data:`EQUALS_REFUSED`) or
    Slurm reads as other than the value without it (:data:`EQUALS_MISREAD`: ``-A=b``, an
    account named "=b"). None where the ``=`` is inside a value begun in the word
    (``-Jx=y``) or follows a flag (``-v=x``: an option letter sbatch does not have)."""
    read = letters(name)
    last, value = read[-1], option[len(name) :]
    if len(name) != 1 + len(read) or last in _NO_VALUE:
        return None
    if (what := verdict(last, EQUALS_REFUSED, EQUALS_MISREAD, EQUALS_MISREAD)) is None:
        return None
    return (
        f"{option!r} gives sbatch's -{last} the value {value!r}, '=' and all (a short "
        f"option's value follows its letter), {what}: write it {name}{value[1:]}"
    )


def padded(option: str, name: str) -> str | None:
    """Why ``option`` (its word up to ``=`` or a space: ``name``) is refused as giving an
    option a value with a space sbatch keeps: a long one's after ``=`` (``--time= 60``,
    ``--mem=4G ``), a short one's after the value in its word (``-t60 ``; one before it is
    :func:`spaced`'s), which sbatch refuses (:data:`TRAILING_REFUSED`,
    :data:`LEADING_REFUSED`, :data:`TRAILING_REFUSED_SHORT`) or Slurm reads with the space
    (:data:`SPACE_MISREAD`: ``--account=b ``, an account no association has). None where
    sbatch reads the value as without it (``--mem= 4G``, ``--exclude=n2 ``), or the option is
    none sbatch 22.05 has (sbatch says so)."""
    ends: tuple[tuple[str, frozenset[str], frozenset[str], str], ...]
    if name.startswith("--"):
        long, value = long_name(name[2:]), option[len(name) + 1 :]
        spelled, how = f"--{long}", f"{name}={value.strip() or '<value>'}"
        ends = (("leading", LEADING_REFUSED, LEADING_MISREAD, value[:1]),
                ("trailing", TRAILING_REFUSED, TRAILING_MISREAD, value[-1:]))  # fmt: skip
    else:
        last = letters(name)[-1]
        long, value = TRAILING_MISREAD_SHORT.get(last, last), option[len(letters(name)) + 1 :]
        word = option[: len(option) - len(value)]  # the option's letters: "-vt" of "-vt60 "
        spelled, how = f"-{last}", f"{word}{value.strip() or '<value>'}"
        misread = frozenset(TRAILING_MISREAD_SHORT.values())
        ends = (("trailing", TRAILING_REFUSED_SHORT, misread, value[-1:]),)
    for where, refused, misread, end in ends:
        if not end.isspace() or long is None:
            continue
        if (what := verdict(long, refused, misread, SPACE_MISREAD)) is None:
            continue
        return (
            f"{option!r} gives sbatch's {spelled} the value {value!r}, its {where} space and "
            f"all, {what}: write it {how}"
        )
    return None


def long_name(given: str) -> str | None:
    """The long option sbatch reads ``--<given>`` as: the one so named, else the one it
    abbreviates; None where it is none of sbatch's, or ambiguous."""
    found = [given] if given in LONG_OPTIONS else [o for o in LONG_OPTIONS if o.startswith(given)]
    return found[0] if len(found) == 1 else None


def letters(name: str) -> str:
    """The short options sbatch reads in ``name`` (``-vJx``: ``vJ``): each letter up to and
    with the first that takes a value (the rest of the word is that value)."""
    letters = ""
    for letter in name[1:]:
        letters += letter
        if letter not in _NO_VALUE:
            break
    return letters
