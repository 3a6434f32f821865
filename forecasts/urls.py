"""URLs as they may be shown, and which ones may carry a token in clear text."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

__all__ = ["is_loopback", "without_userinfo"]

# ``scheme://user:password@`` anywhere in a text: the user info, up to the netloc's last ``@``
# (a password may hold one) before the path.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")


def without_userinfo(text: str) -> str:
    """``text`` with the user info of every URL in it (``user:password@``) shown as ``***@``:
    a URL is logged and shown (errors, ``carbond doctor``), its password never is."""
    return _USERINFO.sub(r"\1***@", text)


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine: ``localhost`` or a loopback address
    (``127.0.0.0/8``, ``::1``), where a request never crosses a network."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
