"""Signals as a file descriptor: the poll loop reads them like any other input (nobodd's pattern)."""

from __future__ import annotations

import signal
import socket
from typing import Any

#: the signals the daemon handles: stop (TERM, INT) and reload (HUP)
HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class SignalPipe:
    """A socketpair that ``signal.set_wakeup_fd`` writes each signal number to; restores everything on close."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        # Handlers do nothing: set_wakeup_fd writes the signal number to the socketpair, and the poll loop
        # reads it. Python handlers are still needed so the default action is not taken.
        self._old: dict[int, Any] = {signum: signal.signal(signum, lambda *_: None) for signum in HANDLED}
        signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)

    def fileno(self) -> int:
        """The descriptor to poll."""
        return self._r.fileno()

    def read(self) -> list[int]:
        """The signal numbers that arrived since the last read."""
        try:
            return list(self._r.recv(64))
        except BlockingIOError:
            return []

    def close(self) -> None:
        """Stop routing signals here and restore the previous handlers."""
        signal.set_wakeup_fd(-1)
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._r.close()
        self._w.close()
