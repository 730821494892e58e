"""Where a ``partial_parse.msgpack`` says its root project lives, and the same file for another folder.

dbt records absolute paths in the msgpack and re-parses when the project's folder differs, so a
copy made in one folder is rewritten for another. Both sides use this module: manifest-dag when
it places a msgpack in a task's workspace (``worker/partial_parse.py``), and a warm dbt process
started ahead of its task (``warm_up.py``), which must decode exactly the bytes the task's
workspace will hold. One function, so the two agree byte for byte.

Runs in manifest-dag's Python and in a worker venv's (stdlib + msgpack, which dbt depends on).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def project_root(data: Mapping[str, Any], project_name: str | None) -> str | None:
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


def relocate(raw: bytes, new_root: str, project_name: str | None) -> tuple[bytes, str] | None:
    """``raw`` with the root project's folder rewritten to ``new_root``, and the old folder.

    Every string equal to the old folder, or below it, is rewritten; nothing else changes; the
    bytes are returned as they are when the folder is already ``new_root``. None when the folder
    cannot be found. Raises what msgpack raises on a corrupt file (ValueError, TypeError,
    RecursionError, ``msgpack.UnpackException``).
    """
    import msgpack  # here, not at the top: the warm server imports this module whatever its venv holds

    data = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    if not isinstance(data, dict):
        raise TypeError(f"the top level is a {type(data).__name__}, not a map")
    old = project_root(data, project_name)
    if old is None:
        return None
    if old == new_root:
        return raw, old
    below = old.rstrip("/") + "/"

    def walk(obj: Any) -> Any:
        if isinstance(obj, str):
            if obj == old:
                return new_root
            if obj.startswith(below):
                return new_root + "/" + obj[len(below) :]
            return obj
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return msgpack.packb(walk(data), use_bin_type=True), old
