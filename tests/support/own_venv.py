"""A dbt venv built the way a team builds one into its image: outside manifest-dag.

Plain ``python -m venv`` and ``uv pip install`` (no ``--compile-bytecode``: a venv without
``.pyc`` files, the case where Python would write into it if we let it), cached per worktree
beside the e2e venv cache and reused by later sessions. Built under a lock, committed by a marker
file written last, like any cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

from tests.conftest import REPO
from tests.support.airflow_run import VENV_REQUIREMENTS

OWN_VENVS = REPO / ".cache" / "e2e-own-venvs"


def own_dbt_venv(requirements: list[str] | None = None) -> Path:
    """The path of a plain venv holding ``requirements`` (dbt-core and dbt-duckdb 1.11 by default)."""
    reqs = list(requirements or VENV_REQUIREMENTS)
    key = hashlib.sha256("\0".join([sys.version, *reqs]).encode()).hexdigest()[:12]
    venv = OWN_VENVS / key
    done = venv / ".built-by-tests"
    if done.is_file():
        return venv
    OWN_VENVS.mkdir(parents=True, exist_ok=True)
    with FileLock(str(OWN_VENVS / f"{key}.lock")):
        if done.is_file():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        base = getattr(sys, "_base_executable", None) or sys.executable
        uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
        subprocess.run([base, "-m", "venv", *(["--without-pip"] if uv else []), str(venv)], check=True)
        cmd = [uv, "pip", "install"] if uv else [str(venv / "bin" / "python"), "-m", "pip", "install"]
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        subprocess.run([*cmd, "--python", str(venv / "bin" / "python"), *reqs], check=True, env=env, timeout=1200)
        done.write_text("\n".join(reqs))
    return venv


def tree_listing(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` with its mode, size and mtime: what "nothing changed" compares."""
    listing: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            listing[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    st = os.lstat(root)
    listing["."] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return listing


if __name__ == "__main__":
    print(own_dbt_venv())


def chmod_tree(root: Path, writable: bool) -> None:
    """Every file and folder under ``root`` writable again, or read-only (``chmod -R a-w``), as a
    prepared image is baked; symlinks are left alone (their mode is not theirs)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, "."]:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            mode = os.lstat(path).st_mode
            os.chmod(path, (mode | 0o200) if writable else (mode & ~0o222))


def shared_inodes(root: Path) -> list[Path]:
    """Files under ``root`` that share their inode with a file elsewhere (uv's default hardlinks
    into its cache): a chmod of one reaches the others."""
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and p.stat().st_nlink > 1]
