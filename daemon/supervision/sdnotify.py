"""systemd's notify protocol without extra dependencies (``sd_notify(3)``).

A :class:`Notifier` sends ``READY=1``, ``STOPPING=1``, ``WATCHDOG=1`` and ``STATUS=...``
datagrams to ``$NOTIFY_SOCKET`` (a filesystem path, or an abstract socket written ``@name``).
Without ``$NOTIFY_SOCKET`` (not under systemd, ``Type=simple``, a test) every call is a no-op.

The watchdog interval comes from ``$WATCHDOG_USEC`` (set by ``WatchdogSec=``, only for our pid
when ``$WATCHDOG_PID`` is set); :meth:`Notifier.watchdog_interval_s` returns half of it, the
period at which the service loop should ping.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping

import structlog

__all__ = ["Notifier"]

log = structlog.get_logger(__name__)

# The longest a notification waits for room in systemd's socket queue (it holds a few
# datagrams: a reader that stops reading filled it, and every later send then blocked
# forever, the watchdog thread with the loop's lock held, so SIGTERM could not stop the loop).
SEND_TIMEOUT_S = 1.0


class Notifier:
    """Sends state changes to systemd. Open with :meth:`open` (or as a context manager).

    Args:
        environ: where to read ``NOTIFY_SOCKET``/``WATCHDOG_USEC``/``WATCHDOG_PID``
            (default ``os.environ``; tests pass their own).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = _watchdog_usec(env)
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        """Whether a notify socket is configured."""
        return self._address is not None

    def watchdog_interval_s(self) -> float | None:
        """Seconds between watchdog pings (half of ``WATCHDOG_USEC``), None if not asked."""
        return None if self._watchdog_usec is None else self._watchdog_usec / 2_000_000

    def open(self) -> None:
        """Create the datagram socket (idempotent; nothing when not under systemd)."""
        if self._address is not None and self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.settimeout(SEND_TIMEOUT_S)

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def notify(self, **fields: str | int) -> bool:
        """Send one datagram ``KEY=value`` per line (keys upper-cased); True when sent.

        A failure to send is logged, never raised: the daemon must not stop because systemd
        went away. A socket whose queue stays full fails the send after ``SEND_TIMEOUT_S``.
        """
        if self._address is None:
            return False
        self.open()
        assert self._sock is not None
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            log.warning("sd_notify_failed", error=str(exc), fields=sorted(fields))
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """``READY=1`` (plus ``STATUS=``): start-up is complete."""
        return self.notify(ready=1, **({"status": status} if status else {}))

    def stopping(self, status: str = "") -> bool:
        """``STOPPING=1``: a graceful stop has begun."""
        return self.notify(stopping=1, **({"status": status} if status else {}))

    def reloading(self) -> bool:
        """``RELOADING=1``: a configuration reload has begun (follow with :meth:`ready`)."""
        return self.notify(reloading=1)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the main loop is alive."""
        return self.notify(watchdog=1)

    def status(self, text: str) -> bool:
        """``STATUS=text``: one line shown by ``systemctl status``."""
        return self.notify(status=text.replace("\n", " "))


def _address(raw: str) -> str | bytes | None:
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()  # abstract namespace
    if raw.startswith("/"):
        return raw
    return None  # vsock and other forms are not supported; behave as if absent


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    with contextlib.suppress(ValueError):
        pid = env.get("WATCHDOG_PID")
        if pid and int(pid) != os.getpid():
            return None
        usec = int(env.get("WATCHDOG_USEC", ""))
        return usec if usec > 0 else None
    return None
