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
import stat
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


def _private_dir(path: Path) -> None:
    """One directory: created 0700, or tightened to 0700 when it exists and this user owns it."""
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        pass
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"{path} is not a directory: private state cannot be kept there")
    if st.st_uid != os.getuid():
        raise PermissionError(
            f"{path} is owned by uid {st.st_uid}, not by this user (uid {os.getuid()}): "
            "refusing to keep private state there; remove it or point the setting elsewhere"
        )
    if stat.S_IMODE(st.st_mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)  # an old or hand-made dir with wider modes (the umask may narrow too)


def make_private_dir(path: Path, *, within: Path | None = None) -> Path:
    """``path`` made a directory only this user may enter: 0700, and owned by this user.

    Missing parents are created 0700 too. An existing directory this user owns is tightened to
    0700 whatever its modes (left by an earlier version, or made by hand); one owned by another
    user is refused (``PermissionError`` naming it), since its owner could read what goes there.
    ``within`` (an ancestor of ``path``, e.g. the worker's state root) makes every directory from
    ``within`` down to ``path`` private, existing or not; above it nothing is touched. Returns ``path``.
    """
    path = Path(path)
    if within is not None:
        within = Path(within)
        try:
            rel = path.relative_to(within)
        except ValueError:
            raise ValueError(f"{path} is not inside {within}") from None
        chain = [within]
        for part in rel.parts:
            chain.append(chain[-1] / part)
    else:
        chain = [path]
    parent = chain[0].parent
    while parent != parent.parent and not parent.exists():  # missing ancestors: created 0700 too
        chain.insert(0, parent)
        parent = parent.parent
    for directory in chain:
        _private_dir(directory)
    return path


def read_only_dir(path: Path) -> bool:
    """Whether ``path`` (an existing folder) is one we must not write to: this user may not, or
    its modes give nobody write access (``chmod -R a-w`` on a cache baked into an image: root
    could still write there, and must not)."""
    try:
        st = os.stat(path)
    except OSError:
        return True
    return not (st.st_mode & 0o222) or not os.access(path, os.W_OK | os.X_OK)
