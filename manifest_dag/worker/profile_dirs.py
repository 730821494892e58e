"""The private folders that hold a task's ``profiles.yml``, and sweeping up after killed tasks.

A profile may hold a warehouse password, so each task writes it into its own folder, created
0700 under the temp dir and named after the task's pid; the task removes it when it ends. A
SIGKILLed task cannot, so whoever comes next removes the folders of processes that are gone.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

#: the private dir holding a task's profiles.yml: ``<tmp>/<prefix><pid of the task>-<random>``
PROFILE_DIR_PREFIX = "manifest-dag-profile-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_orphaned_profile_dirs(root: Path | None = None) -> list[Path]:
    """Remove the private profile dirs of task processes that are gone.

    A task removes its own dir when it ends, but a SIGKILLed task (a worker killed mid-task, an
    OOM kill) cannot: its profiles.yml, with the warehouse password in it, would stay on disk.
    Every task entering a workspace removes such dirs of dead processes first, so the retry (or
    the next task on that machine) cleans up. Only dirs of this user whose named pid no longer
    exists are touched.
    """
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(base.glob(f"{PROFILE_DIR_PREFIX}*"))
    except OSError:
        return removed
    for path in entries:
        pid_text = path.name[len(PROFILE_DIR_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or _pid_alive(int(pid_text)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def make_profile_dir() -> Path:
    """A new private (0700) folder for this task's profile, after sweeping up dead tasks' folders."""
    sweep_orphaned_profile_dirs()
    return Path(tempfile.mkdtemp(prefix=f"{PROFILE_DIR_PREFIX}{os.getpid()}-"))  # mkdtemp: 0700
