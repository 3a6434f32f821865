"""Per-job caps in the jobs' cgroups (``[executors.local] memory_max_bytes``,
``memory_high_bytes``, ``memory_swap_max_bytes``, ``pids_max``): each written to a job's own
cgroup (``memory.max``, ``memory.high``, ``memory.swap.max``, ``pids.max``) when it is made,
before the job's wrapper joins it, so that a runaway job (a leak, a fork bomb) is stopped at
its own cgroup, not at the unit's, which every other job shares.

A cgroup has those files only where its parent enables the ``memory`` or ``pids`` controller
for its children (the parent's ``cgroup.subtree_control``), which it can only if the cgroup
above it hands it down (the parent's ``cgroup.controllers``: systemd's ``Delegate=yes`` does;
a hybrid hierarchy keeps both on cgroup v1). The daemon enables them in its subtree at start
(:func:`enable`); :func:`unavailable` says, for doctor too, which cap cannot be applied and
why; :func:`out_of_memory` and :func:`forks_refused`, what the OOM killer and ``pids.max``
did in a job's cgroup, for its end's reason. With swap on, ``memory.max`` bounds a job's
RAM only: :meth:`JobCaps.of_settings` gives ``memory.swap.max`` 0 where ``memory_max_bytes``
is set and ``memory_swap_max_bytes`` is not, so that the cap bounds RAM and swap together.
The jobs' cgroups themselves: :mod:`daemon.executors.local_cgroup_jobs`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = [
    "SETTING_OF",
    "SWAP",
    "JobCaps",
    "enable",
    "forks_refused",
    "out_of_memory",
    "unavailable",
]

# Each cap's control file: its controller and the setting that gives it.
_CONTROLLER_OF = {
    "memory.max": "memory",
    "memory.high": "memory",
    "memory.swap.max": "memory",
    "pids.max": "pids",
}
SETTING_OF = {
    "memory.max": "executors.local.memory_max_bytes",
    "memory.high": "executors.local.memory_high_bytes",
    "memory.swap.max": "executors.local.memory_swap_max_bytes",
    "pids.max": "executors.local.pids_max",
}
# The key of :func:`unavailable`'s problem with ``memory.swap.max`` alone: the memory
# controller is there, but the kernel does not account swap to cgroups (``swapaccount=0``).
SWAP = "swap"


@dataclass(frozen=True, slots=True)
class JobCaps:
    """The caps of each job's cgroup; None: no cap (the kernel's ``max``).

    ``swap_from_memory_max``: ``memory_swap_max_bytes`` is :meth:`of_settings`' default, not
    set: it is named as ``memory_max_bytes``'s, which brought it."""

    memory_max_bytes: int | None = None
    memory_high_bytes: int | None = None
    pids_max: int | None = None
    memory_swap_max_bytes: int | None = None
    swap_from_memory_max: bool = False

    @classmethod
    def of_settings(
        cls,
        *,
        memory_max_bytes: int | None,
        memory_high_bytes: int | None,
        memory_swap_max_bytes: int | None,
        pids_max: int | None,
    ) -> JobCaps:
        """The caps ``[executors.local]`` sets: ``memory_swap_max_bytes`` left out where
        ``memory_max_bytes`` is set is 0, so that ``memory.max`` bounds the job's RAM and
        swap together (with swap on, ``memory.max`` alone bounds its RAM: a leak goes on
        into swap, slowing every job on the node, and meets the OOM killer only once swap is
        full too)."""
        default = memory_swap_max_bytes is None and memory_max_bytes is not None
        return cls(
            memory_max_bytes=memory_max_bytes,
            memory_high_bytes=memory_high_bytes,
            pids_max=pids_max,
            memory_swap_max_bytes=0 if default else memory_swap_max_bytes,
            swap_from_memory_max=default,
        )

    def files(self) -> dict[str, int]:
        """The control file of each cap set, with its value, in the order to write them."""
        values = {
            "memory.max": self.memory_max_bytes,
            "memory.high": self.memory_high_bytes,
            "memory.swap.max": self.memory_swap_max_bytes,
            "pids.max": self.pids_max,
        }
        return {name: value for name, value in values.items() if value is not None}

    def controllers(self) -> list[str]:
        """The controllers the caps set need, sorted."""
        return sorted({_CONTROLLER_OF[name] for name in self.files()})

    def without(self, controllers: Collection[str]) -> JobCaps:
        """These caps less those of ``controllers`` (:data:`SWAP`: ``memory.swap.max``)."""
        gone = set(controllers)
        no_swap = bool(gone & {"memory", SWAP})
        return replace(
            self,
            memory_max_bytes=None if "memory" in gone else self.memory_max_bytes,
            memory_high_bytes=None if "memory" in gone else self.memory_high_bytes,
            memory_swap_max_bytes=None if no_swap else self.memory_swap_max_bytes,
            swap_from_memory_max=self.swap_from_memory_max and not no_swap,
            pids_max=None if "pids" in gone else self.pids_max,
        )

    def describe(self) -> str:
        """``memory.max 1073741824, pids.max 4096``; ``none`` when no cap is set."""
        return ", ".join(f"{name} {value}" for name, value in self.files().items()) or "none"

    def settings_of(self, controller: str) -> str:
        """The settings of the caps set that need ``controller`` (:data:`SWAP`: that of
        ``memory.swap.max``), joined by ``and``."""
        names: list[str] = []
        for name in self.files():
            if controller == SWAP and name != "memory.swap.max":
                continue
            if controller != SWAP and _CONTROLLER_OF[name] != controller:
                continue
            by = "memory.max" if name == "memory.swap.max" and self.swap_from_memory_max else name
            if SETTING_OF[by] not in names:  # by memory.max: the default memory_max_bytes brings
                names.append(SETTING_OF[by])
        return " and ".join(names)


def _listed(path: Path) -> set[str]:
    """The controllers a ``cgroup.controllers`` or ``cgroup.subtree_control`` file lists.

    Raises:
        OSError: it cannot be read.
    """
    return set(path.read_text(encoding="ascii").split())


def unavailable(subtree: Path, caps: JobCaps, *, enabled: bool) -> dict[str, str]:
    """Controller by controller, why the caps that need it cannot be applied to the jobs'
    cgroups under ``subtree``: it is not in the subtree's ``cgroup.controllers`` (the cgroup
    above does not hand it down), or, with ``enabled``, not in its ``cgroup.subtree_control``
    (not enabled for the jobs' cgroups: the daemon does that at start). Under :data:`SWAP`,
    why ``memory_swap_max_bytes`` cannot be (the subtree has the memory controller but no
    ``memory.swap.max``: the kernel does not account swap to cgroups, ``swapaccount=0``),
    its default (:meth:`JobCaps.of_settings`) too: ``memory.max`` then bounds RAM only.
    Empty: every cap applies. Never raises."""
    problems: dict[str, str] = {}
    for controller in caps.controllers():
        which = caps.settings_of(controller)
        try:
            if controller not in _listed(subtree / "cgroup.controllers"):
                problems[controller] = (
                    f"{which}: the {controller} controller is not available in {subtree} (its "
                    "cgroup.controllers lacks it: the cgroup above does not hand it down; "
                    "systemd's Delegate=yes does, a hybrid hierarchy keeps it on cgroup v1)"
                )
            elif enabled and controller not in _listed(subtree / "cgroup.subtree_control"):
                problems[controller] = (
                    f"{which}: the {controller} controller is not enabled for the jobs' "
                    f"cgroups ({subtree}/cgroup.subtree_control lacks it; the daemon enables "
                    "it at start: restart it)"
                )
        except OSError as exc:
            problems[controller] = f"{which}: cannot read {exc.filename}: {exc.strerror}"
    swap_asked = caps.memory_swap_max_bytes is not None and "memory" not in problems
    if swap_asked and not (subtree / "memory.swap.max").exists():
        problems[SWAP] = (
            f"{caps.settings_of(SWAP)}: {subtree} has no memory.swap.max: the kernel "
            "does not account swap to cgroups (booted with swapaccount=0): a job's "
            "memory.max bounds its RAM only"
        )
    return problems


def enable(subtree: Path, caps: JobCaps) -> dict[str, str]:
    """Enable in ``subtree``'s ``cgroup.subtree_control`` each controller ``caps`` need and
    it has not enabled yet (the subtree holds no process: the daemon is in its leaf); the
    problems of those that cannot be, as :func:`unavailable`'s. Never raises."""
    problems = unavailable(subtree, caps, enabled=False)
    control = subtree / "cgroup.subtree_control"
    for controller in caps.controllers():
        if controller in problems:
            continue
        try:
            if controller not in _listed(control):
                control.write_text(f"+{controller}", encoding="ascii")
        except OSError as exc:
            problems[controller] = (
                f"{caps.settings_of(controller)}: cannot enable the {controller} controller "
                f"in {control}: {exc.strerror or exc}"
            )
    return problems


def out_of_memory(cgroup: Path) -> str:
    """In words, how the OOM killer ended processes in ``cgroup`` and the cgroups under it
    (its ``memory.events``: ``oom_kill``, processes killed; ``oom``, times its own
    ``memory.max`` was reached with nothing left to reclaim), for the job's end; "" when it
    did not, or the cgroup has no ``memory`` controller (nothing counted). Never raises."""
    try:
        events = _counts((cgroup / "memory.events").read_text(encoding="ascii"))
    except OSError:  # no memory controller for it, or removed
        return ""
    kills = events.get("oom_kill", 0)
    if kills <= 0:
        return ""
    who = "1 of its processes" if kills == 1 else f"{kills} of its processes"
    if events.get("oom", 0) <= 0:
        return (f"out of memory: the OOM killer killed {who}, the node or the carbond unit "
                "being out of memory (not its own memory.max)")  # fmt: skip
    try:
        cap = (cgroup / "memory.max").read_text(encoding="ascii").strip()
    except OSError:
        cap = "unknown"
    return (f"out of memory: the OOM killer killed {who} at its cgroup's memory.max ({cap} "
            "bytes, executors.local.memory_max_bytes)")  # fmt: skip


def forks_refused(cgroup: Path) -> str:
    """In words, how many forks (and new threads) ``cgroup``'s ``pids.max`` refused (its
    ``pids.events``: ``max``; a fork bomb's), for the job's end; "" when none was, or the
    cgroup has no ``pids`` controller. Never raises."""
    try:
        refused = _counts((cgroup / "pids.events").read_text(encoding="ascii")).get("max", 0)
    except OSError:  # no pids controller for it, or removed
        return ""
    if refused <= 0:
        return ""
    try:
        cap = (cgroup / "pids.max").read_text(encoding="ascii").strip()
    except OSError:
        cap = "unknown"
    forks = "1 fork" if refused == 1 else f"{refused} forks"
    return (f"out of tasks: its cgroup's pids.max ({cap}, executors.local.pids_max) refused "
            f"{forks}")  # fmt: skip


def _counts(text: str) -> dict[str, int]:
    """A flat-keyed cgroup file (``oom 1`` a line) as counts; a line not so is skipped."""
    counts = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            counts[key] = int(value)
    return counts
