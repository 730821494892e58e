"""Numbered slots that parallel tasks on one worker take without ever waiting.

A project's workspace copies and a venv's warm dbt processes are both pools of numbered slots:
slot ``i`` is held by the file lock ``<dir>/<i>.lock`` for as long as one task uses it. A task
tries slot 0, 1, ... with a non-blocking ``filelock`` and takes the first free one, so tasks
running at once never share a slot, and a slot's number (and so its path) repeats from task to
task. The lock dies with its process, so a killed task frees its slot.
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout

from manifest_dag.core.files import PRIVATE_FILE, make_private_dir


def take_free_slot(
    directory: Path, count: int, *, within: Path | None = None, prefer: int | None = None
) -> tuple[int, FileLock] | None:
    """The first free slot of ``count`` under ``directory`` and its held lock, or None if all are busy.

    ``prefer`` is tried first when it is one of the ``count`` slots (a warm process that holds
    the task's project parsed).

    ``directory`` (and every dir from ``within`` down to it) is private to this user, and so are
    the lock files: a slot's dir holds a task's files (see ``core.files.make_private_dir``).
    """
    make_private_dir(directory, within=within)
    order = list(range(count))
    if prefer is not None and 0 <= prefer < count:
        order.remove(prefer)
        order.insert(0, prefer)
    for i in order:
        lock = FileLock(str(directory / f"{i}.lock"), mode=PRIVATE_FILE)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        return i, lock
    return None
