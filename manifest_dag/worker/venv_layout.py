"""What a built venv holds on disk, and whether a venv directory can be trusted.

A venv directory is trusted only when its marker ``.manifest-dag.json`` names its key and format
(the marker is written last and atomically: the commit point of a build) and the files dbt needs
are still there: ``bin/python`` and the interpreter it links to, ``pyvenv.cfg``'s ``home``, the
verify command's executable. Only stats and small reads, so the fast path of every task can
afford the check.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from manifest_dag.core.files import replaced_atomically
from manifest_dag.worker.venv_key import FORMAT

#: The commit point of a build: present and valid only once the venv is complete and verified.
MARKER_NAME = ".manifest-dag.json"
BIN = "Scripts" if os.name == "nt" else "bin"


def read_marker(path: Path) -> dict[str, Any] | None:
    """The marker of the venv at ``path``, or None when missing or unreadable (half-built)."""
    try:
        data = json.loads((path / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(path: Path, data: dict[str, Any]) -> None:
    """Write the marker of the venv at ``path``: the commit point, atomic and durable."""
    with replaced_atomically(path / MARKER_NAME) as fh:
        fh.write(json.dumps(data, indent=2).encode("utf-8"))


def _read_pyvenv_cfg(path: Path) -> dict[str, str] | None:
    try:
        text = (path / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return None
    cfg: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            cfg[name.strip().lower()] = value.strip()
    return cfg


def venv_problem(path: Path, key: str, verify_command: Sequence[str]) -> str | None:
    """Why the venv at ``path`` cannot be used as is, or None when healthy.

    The marker is read *last*: if a rebuild replaces the directory while we look, a missing
    marker in the new one is what we see, never a false "healthy".
    """
    if not path.is_dir():
        return "not built yet"
    problem: str | None = None
    python = path / BIN / "python"
    if not os.path.exists(python):  # follows the symlink to the base interpreter
        problem = (
            f"{BIN}/python points at a missing interpreter ({os.readlink(python)})"
            if python.is_symlink()
            else f"{BIN}/python is missing"
        )
    if problem is None:
        cfg = _read_pyvenv_cfg(path)
        if cfg is None:
            problem = "pyvenv.cfg is missing"
        elif not cfg.get("home") or not os.path.isdir(cfg["home"]):
            problem = f"pyvenv.cfg home {cfg.get('home')!r} no longer exists"
        else:
            base = cfg.get("base-executable") or cfg.get("executable")
            if base and not os.path.exists(base):
                problem = f"base interpreter {base} from pyvenv.cfg no longer exists"
    if problem is None and verify_command:
        exe = verify_command[0]
        target = Path(exe) if os.path.isabs(exe) else path / BIN / exe
        if not (target.is_file() and os.access(target, os.X_OK)):
            problem = f"{target if os.path.isabs(exe) else BIN + '/' + exe} is missing"
    marker = read_marker(path)
    if marker is None:
        return f"no marker {MARKER_NAME} (half-built or interrupted build)"
    if marker.get("key") != key or marker.get("format") != FORMAT:
        return f"marker {MARKER_NAME} belongs to another key or format"
    return problem
