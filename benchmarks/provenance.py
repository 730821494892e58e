"""What a report says was measured: the manifest-dag commit, the machine and the versions.

Rows measured at different times are merged into one report, so each row keeps the commit it
measured, and the report's head names the machine and the tools' versions.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from benchmarks.cosmos_venv import COSMOS_PY
from benchmarks.runtime import PY, REPO


def code_version() -> str:
    """The manifest-dag commit measured (``+`` when manifest_dag/ has uncommitted changes)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "manifest_dag"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "?"
    return head + ("+" if dirty else "")


def package_version(python: Path | str, name: str) -> str:
    """``name``'s installed version as ``python`` sees it (``-`` when it has none)."""
    try:
        out = subprocess.run(
            [str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout.strip() or "-"
    except OSError:
        return "-"


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), {mem} RAM"


def versions() -> dict:
    """The machine, and the versions of Python and of the tools on both sides (cosmos's venv: ``-``
    when it is not installed)."""
    return {
        "machine": machine(),
        "python": platform.python_version(),
        "airflow": package_version(PY, "apache-airflow"),
        "manifest-dag": package_version(PY, "manifest-dag"),
        "orjson": package_version(PY, "orjson"),
        "cosmos": package_version(COSMOS_PY, "astronomer-cosmos") if COSMOS_PY.exists() else "-",
        "cosmos airflow": package_version(COSMOS_PY, "apache-airflow") if COSMOS_PY.exists() else "-",
    }
