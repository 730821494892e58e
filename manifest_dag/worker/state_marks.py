"""Which dbt project a folder of the worker's ``.state`` belongs to, and when it was last used.

A workspace slot, a ``dbt deps`` copy and a kept ``partial_parse.msgpack`` are named by digests,
so ``manifest-dag venv prune`` cannot tell from a name whose they are. Each such folder holds a
small mark file with the resolved path of the source project; the worker touches it on every use,
so its mtime says when the folder last served a task. Prune removes folders whose project is gone
or whose mark is older than the age it is given.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from manifest_dag.core.files import create_private

MARK = ".manifest-dag-source"


def mark_source(folder: Path, project: Path) -> None:
    """Record (or refresh the use time of) ``project`` as the owner of ``folder``; never fails."""
    mark = folder / MARK
    text = os.fsencode(project.resolve())
    with contextlib.suppress(OSError):
        try:
            if mark.read_bytes() == text:
                os.utime(mark)
                return
        except FileNotFoundError:
            pass
        with create_private(mark) as fh:
            fh.write(text)


def read_source(folder: Path) -> Path | None:
    """The project recorded for ``folder``, or None when it has no (readable) mark."""
    try:
        return Path(os.fsdecode((folder / MARK).read_bytes()))
    except OSError:
        return None


def last_used(folder: Path) -> float | None:
    """When ``folder`` last served a task (its mark's mtime), or None without a mark."""
    try:
        return (folder / MARK).stat().st_mtime
    except OSError:
        return None
