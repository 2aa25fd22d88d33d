"""structlog setup: JSON lines (journald keeps them) or a console renderer on a terminal."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def setup_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog for the process: ISO UTC timestamps, level, bound context, JSON or console."""
    if level not in LEVELS:
        msg = f"log level {level!r} is not one of {sorted(LEVELS)}"
        raise ValueError(msg)
    console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> Any:
    """A bound logger with ``context`` (e.g. backend, stream)."""
    return structlog.get_logger("s2gestured").bind(**context)


class RateLimiter:
    """Allows one event per key per ``interval_s`` (monotonic time) and counts the ones it suppressed."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: dict[Any, float] = {}
        self._suppressed: dict[Any, int] = {}

    def allow(self, key: Any, now: float | None = None) -> tuple[bool, int]:
        """(whether to log now, how many were suppressed since the last allowed one)."""
        now = time.monotonic() if now is None else now
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False, 0
        self._last[key] = now
        return True, self._suppressed.pop(key, 0)

    def forget(self, prefix: Any) -> None:
        """Drop the keys whose first element is ``prefix`` (an evicted stream)."""
        for key in [k for k in self._last if isinstance(k, tuple) and k[0] == prefix]:
            self._last.pop(key, None)
            self._suppressed.pop(key, None)
