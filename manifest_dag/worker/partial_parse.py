"""``partial_parse.msgpack``: what dbt checks before reusing it, and moving it to another folder.

Without the file every task re-parses the whole project (seconds for a small project, minutes for
a large one). dbt reuses it only when it was written by the same dbt version with the same vars,
profile, target and connection (``ParseState`` keys the kept copies by exactly that). The
project's absolute path is baked into it too, and dbt does *not* notice a move: it silently keeps
the old paths, so a copy made for one folder is rewritten for another (``relocate_msgpack``).
Reading its version needs only the file's header (``msgpack_dbt_version``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import orjson

from manifest_dag.core.errors import WorkspaceError
from manifest_dag.core.files import create_private

PARTIAL_PARSE = "partial_parse.msgpack"

#: what decoding a corrupt msgpack can raise: a bad format (ValueError and msgpack's own errors), a
#: map or array used as a map key (TypeError: unhashable), nesting deeper than Python recurses
_UNREADABLE = (ValueError, TypeError, RecursionError, msgpack.UnpackException)


class UnreadableMsgpack(ValueError):
    """A ``partial_parse.msgpack`` that cannot be decoded; callers skip it, dbt re-parses."""


def msgpack_dbt_version(path: Path) -> str | None:
    """The dbt version that wrote a ``partial_parse.msgpack``, reading only its header.

    The file is a map whose ``metadata`` entry holds ``dbt_version``; the other entries (the bulk
    of the file) are skipped without being decoded.
    """
    try:
        with path.open("rb") as fh:
            unpacker = msgpack.Unpacker(fh, raw=False, strict_map_key=False)
            for _ in range(unpacker.read_map_header()):
                key = unpacker.unpack()
                if key == "metadata":
                    meta = unpacker.unpack()
                    version = meta.get("dbt_version") if isinstance(meta, dict) else None
                    return version if isinstance(version, str) else None
                unpacker.skip()
    except (OSError, *_UNREADABLE):
        return None
    return None


@dataclass(frozen=True, slots=True)
class ParseState:
    """What dbt checks before it reuses a msgpack, besides the files themselves."""

    dbt_version: str | None
    profile_name: str | None
    target_name: str | None
    vars_json: str
    #: a digest of the target's non-secret connection fields (``target.connection_fingerprint``)
    connection: str = ""

    def key(self, project: Path) -> str:
        parts = [str(project), self.dbt_version, self.profile_name, self.target_name, self.vars_json]
        if self.connection:
            parts.append(self.connection)
        return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:20]


def canonical_vars(dbt_vars: Mapping[str, Any] | str | None) -> str | None:
    """``--vars`` as canonical JSON: same values give the same text, so partial parse survives."""
    if dbt_vars is None or dbt_vars == {} or dbt_vars == "":
        return None
    if isinstance(dbt_vars, str):
        return dbt_vars
    try:
        return orjson.dumps(dict(dbt_vars), option=orjson.OPT_SORT_KEYS).decode()
    except TypeError as exc:
        raise WorkspaceError(f"dbt_vars must be JSON-serialisable: {exc}") from None


def msgpack_project_root(data: Mapping[str, Any], project_name: str | None) -> str | None:
    """The root project's folder recorded in a decoded msgpack (from its files' paths)."""
    files = data.get("files")
    if not isinstance(files, dict):
        return None
    prefix = f"{project_name}://" if project_name else None
    for file_id, entry in files.items():
        if prefix and not str(file_id).startswith(prefix):
            continue
        path = entry.get("path") if isinstance(entry, dict) else None
        root = (path.get("project_root") or path.get("root_path")) if isinstance(path, dict) else None
        if isinstance(root, str):
            return root
    return None


def relocate_msgpack(source: Path, dest: Path, new_root: Path, project_name: str | None) -> str | None:
    """Copy a msgpack to ``dest`` with the root project's folder rewritten to ``new_root``.

    Every string equal to the old folder, or below it, is rewritten; nothing else changes. Returns
    the old folder (None when it could not be found: then the file is not placed at all, since a
    msgpack with stale paths is worse than none). A file that cannot be decoded raises
    :class:`UnreadableMsgpack` (a ValueError), whatever the corruption.
    """
    raw = source.read_bytes()
    try:
        data = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        if not isinstance(data, dict):
            raise TypeError(f"the top level is a {type(data).__name__}, not a map")
        old = msgpack_project_root(data, project_name)
    except _UNREADABLE as exc:
        raise UnreadableMsgpack(f"{source} is not a readable partial_parse.msgpack ({exc})") from None
    if old is None:
        return None
    new = str(new_root)
    if old == new:
        with create_private(dest) as out:  # it holds the values of env vars: 0600
            out.write(raw)
        return old
    below = old.rstrip("/") + "/"

    def walk(obj: Any) -> Any:
        if isinstance(obj, str):
            if obj == old:
                return new
            if obj.startswith(below):
                return new + "/" + obj[len(below) :]
            return obj
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    try:
        moved = msgpack.packb(walk(data), use_bin_type=True)
    except _UNREADABLE as exc:  # nesting deeper than walk can recurse
        raise UnreadableMsgpack(f"{source} is not a readable partial_parse.msgpack ({exc})") from None
    with create_private(dest) as out:
        out.write(moved)
    return old
