"""Look for secrets left behind on disk and in the metadata DB (issue 7, point 5).

Plain byte search, nothing clever: a secret is found when its exact bytes occur in a file (read in
chunks that overlap by the secret's length, so one split across two chunks is still found). Used
by ``tests/e2e/test_e2e_scheduler.py``, which also plants the secrets in files of its own to prove the
scan would see a leak.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 4 * 1024 * 1024
#: files bigger than this are not read (counted in ``skipped``); nothing of ours comes close
MAX_BYTES = 512 * 1024 * 1024


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """``{path: (mtime_ns, size)}`` of every regular file under ``root`` (no symlinks followed)."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, _dirs, files in os.walk(root, onerror=lambda e: None):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out[path] = (st.st_mtime_ns, st.st_size)
    return out


def new_or_changed(before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]]) -> list[Path]:
    """Files of ``after`` that did not exist in ``before`` or changed since."""
    return sorted(Path(p) for p, sig in after.items() if before.get(p) != sig)


def file_contains(path: Path, needles: Mapping[str, bytes]) -> set[str]:
    """The names of the ``needles`` whose bytes occur in the file (empty set when unreadable)."""
    found: set[str] = set()
    overlap = max(len(n) for n in needles.values()) - 1
    tail = b""
    try:
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(CHUNK)
                if not chunk:
                    break
                data = tail + chunk
                found.update(name for name, needle in needles.items() if needle in data)
                tail = data[-overlap:] if overlap > 0 else b""
    except OSError:
        pass
    return found


@dataclass
class ScanResult:
    """What a scan read and what it found: ``hits`` maps a place (file or DB row) to secret names."""

    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    hits: dict[str, set[str]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def add(self, other: ScanResult) -> None:
        self.files += other.files
        self.bytes += other.bytes
        self.skipped += other.skipped
        self.hits.update(other.hits)
        for table, n in other.rows.items():
            self.rows[table] = self.rows.get(table, 0) + n


def scan_files(paths: Iterable[Path], secrets: Mapping[str, str]) -> ScanResult:
    """Search each regular file of ``paths`` for every secret."""
    needles = {name: value.encode() for name, value in secrets.items()}
    result = ScanResult()
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            continue  # gone since it was listed
        if not stat.S_ISREG(st.st_mode):
            continue
        if st.st_size > MAX_BYTES:
            result.skipped.append(f"{path} ({st.st_size} bytes)")
            continue
        result.files += 1
        result.bytes += st.st_size
        found = file_contains(path, needles)
        if found:
            result.hits[str(path)] = found
    return result


def scan_tree(root: Path, secrets: Mapping[str, str]) -> ScanResult:
    return scan_files((Path(p) for p in snapshot(root)), secrets)


def scan_text(place: str, text: str, secrets: Mapping[str, str]) -> set[str]:
    return {name for name, value in secrets.items() if value in text}


def files_named(paths: Iterable[Path], name: str) -> list[Path]:
    return sorted(p for p in paths if p.name == name)
