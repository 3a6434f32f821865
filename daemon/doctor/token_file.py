"""``carbond doctor``'s ``config`` line on the Electricity Maps token: a config file every user
can read must not hold it, since every user, and every user's job (the daemon starts jobs as
their submitters), could read it there. Its place is ``/etc/carbond/electricitymaps.token``
(0600), which the unit hands to the daemon with ``LoadCredential=``. Never shows the token.
``carbond run`` logs the same problem at start and on each reload (``config_token_readable``)."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

__all__ = ["describe_exposed_token", "exposed_token_mode", "token_file_problem"]


def exposed_token_mode(path: Path | None) -> int | None:
    """The permission bits of config file ``path`` when it exposes the token (it sets a
    non-blank ``electricitymaps.token`` and others may read it), or None (no file, not
    readable by others, no token, or not TOML: the settings loader reports that)."""
    if path is None:
        return None
    try:
        mode = os.stat(path).st_mode
        if not mode & stat.S_IROTH:
            return None
        section = tomllib.loads(path.read_text(encoding="utf-8")).get("electricitymaps")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    token = section.get("token") if isinstance(section, dict) else None
    if not isinstance(token, str) or not token.strip():
        return None
    return stat.S_IMODE(mode)


def token_file_problem(path: Path | None) -> str | None:
    """Why config file ``path`` exposes the token (:func:`exposed_token_mode`), or None."""
    mode = exposed_token_mode(path)
    if path is None or mode is None:
        return None
    return describe_exposed_token(path, mode)


def describe_exposed_token(path: Path, mode: int) -> str:
    """The problem of config file ``path``, with permission bits ``mode``, exposing the token,
    and its fix, in one line naming the file and mode, never the token."""
    return (
        f"{path}: electricitymaps.token is set in a file every user can read (mode "
        f"{mode:04o}), and so can every user's job: put the token in "
        "/etc/carbond/electricitymaps.token (0600, the unit's LoadCredential=) and remove it "
        f"here, or `chmod 600 {path}` (docs/operations.md, step 6)"
    )
