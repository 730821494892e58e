"""What the commands print: plain-text tables, human sizes, and one line-ending rule.

Shared by ``inspect`` and ``venv list`` so every table the CLI prints is laid out the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], indent: str = "  ") -> str:
    """Left-aligned columns two spaces apart, the header underlined with dashes."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, r in enumerate(cells):
        lines.append(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
        if n == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def size(n: int) -> str:
    """A byte count as ``512 B``, ``1.5 KB`` ... ``3.2 GB``."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def out(text: str) -> None:
    """``text`` on standard output, ending in exactly the newline it may already have."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
