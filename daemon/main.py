"""``s2gestured`` entry point (the service is wired in s2gesture.daemon.service)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the daemon."""
    print("s2gestured: the service is not wired yet", file=sys.stderr)
    return 1
