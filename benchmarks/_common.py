"""What every benchmark script shares: writing its BENCHMARKS.md section."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, lines: list[str], *, echo: bool = True) -> None:
    """Write a result section (``benchmarks/results/<part>.md``, ending in one newline) and print it."""
    text = "\n".join(lines).rstrip("\n") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text if echo else f"wrote {path}")
