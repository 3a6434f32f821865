"""Whether a file's POSIX ACL (``setfacl``) makes its mode bits the wrong answer to "can other
users use it?". The mode's ``o`` bits are the ACL's ``other::`` entry, right for a user the
ACL does not name; but a named ``user:NAME:`` or ``group:NAME:`` entry (limited by ``mask::``)
decides for its users instead, and may grant what ``other::`` denies or deny what it grants.

Read from the ``system.posix_acl_access`` extended attribute (what ``getfacl`` reads): a
version word, then 8-byte entries ``(tag u16, perm u16, id u32)``, little-endian. No ACL, a
file system without them, or an attribute that cannot be read or parsed: the mode decides.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Final

__all__ = ["acl_overrides_others"]

_XATTR: Final = "system.posix_acl_access"
_VERSION: Final = 2
_HEADER: Final = struct.Struct("<I")
_ENTRY: Final = struct.Struct("<HHI")
_USER: Final = 0x02  # user:NAME:
_GROUP: Final = 0x08  # group:NAME:
_MASK: Final = 0x10  # mask::
_OTHER: Final = 0x20  # other::


def acl_overrides_others(path: Path, perm: int) -> bool:
    """Whether ``path`` (followed if a link) has an ACL naming a user or group whose effective
    ``perm`` (``os.X_OK``, ``os.R_OK``...) differs from its ``other::`` entry's: then some
    users other than the owner are granted what the mode denies others, or denied what it
    grants them, and the mode alone cannot say whether "other users" can."""
    entries = _entries(path)
    if not entries:
        return False
    mask = next((p for tag, p in entries if tag == _MASK), 0o7)
    others = next((p for tag, p in entries if tag == _OTHER), 0) & perm
    named = [p & mask & perm for tag, p in entries if tag in (_USER, _GROUP)]
    return any(p != others for p in named)


def _entries(path: Path) -> list[tuple[int, int]]:
    """``(tag, perm)`` of each entry of ``path``'s access ACL; none when it has none or it
    cannot be read as one."""
    try:
        raw = os.getxattr(path, _XATTR)
    except OSError:  # no ACL (ENODATA), none on this file system (ENOTSUP), unreadable
        return []
    body = raw[_HEADER.size :]
    if len(raw) < _HEADER.size or _HEADER.unpack_from(raw)[0] != _VERSION:
        return []
    if len(body) % _ENTRY.size:
        return []
    return [(tag, perm) for tag, perm, _ in _ENTRY.iter_unpack(body)]
