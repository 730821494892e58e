"""Files that readers may never see half-written, and files only their owner may read.

Both sides keep files that other processes read while they are being replaced: the scheduler's
plan cache entries, the worker's venv marker (the commit point of a build) and its kept
``partial_parse.msgpack`` copies. Each was written "temp file, then ``os.replace``" by hand, with
or without ``fsync``, leaving its temp file behind or not. Here is the one way, and the one way to
create a file (a profile, a pickle) that only its owner may read. Stdlib only; no library does
this better today (``atomicwrites`` is archived).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

#: owner-only modes: profiles hold passwords, cache entries are pickles
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
_SHARED_FILE = 0o666  # the umask narrows it, as for any file ``open`` creates
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (best effort: not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def replaced_atomically(path: Path, *, private: bool = False, durable: bool = True) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces ``path`` in one step when the block ends.

    The content goes to a temp file beside ``path`` (same filesystem, so ``os.replace`` is atomic)
    and is renamed over it only if the block succeeds; otherwise the temp file is removed and
    ``path`` keeps its old content. ``private`` creates it 0600; ``durable`` fsyncs the file and
    its folder first (a commit point must survive a power cut; a cache entry need not).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, _CREATE, PRIVATE_FILE if private else _SHARED_FILE)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def create_private(path: Path) -> BinaryIO:
    """``path`` opened for writing, created 0600 from the start (an existing file is replaced).

    Never loosened-then-tightened, so no other user can open it in between; a symlink at ``path``
    is refused rather than followed.
    """
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return os.fdopen(os.open(path, _CREATE, PRIVATE_FILE), "wb")


def make_private_dir(path: Path) -> Path:
    """``path`` (and missing parents) created 0700 when new; returns ``path``."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    return path
