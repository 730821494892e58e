"""A dbt docs site from the task's target folder to where the docs plugin reads it.

``dbt docs generate`` writes into the slot's ``target/``, which the next task on the slot clears,
so the files are first kept (``keep_site``, called as dbt finishes) and published only once the
task knows dbt succeeded (``publish_site``). The destination is a local folder (``pathlib.Path``)
or anything path-like that opens files for writing, such as Airflow's ``ObjectStoragePath``: the
worker side names no storage of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from manifest_dag.core.docs_site import META, PAGE, SITE_FILES
from manifest_dag.core.errors import DbtRunError
from manifest_dag.core.secrets import Masker

_CHUNK = 1 << 20


def keep_site(target: Path, into: Path, *, static: bool, mask: Masker | None = None) -> list[str]:
    """Copy the site's files from dbt's ``target`` into ``into``, secrets masked; return the names.

    ``docs generate`` compiles every node, so a model that reads a secret var (or a profile's
    secret through ``env_var``) has it in its compiled SQL inside manifest.json and the pages: the
    call's ``Masker`` replaces each value, as written and as JSON escapes it, with ``***``.

    Raises DbtRunError naming what is missing: a docs task whose dbt wrote no catalog has not
    done what it was for, whatever dbt's exit code said.
    """
    wanted = [name for name in SITE_FILES if static or name != PAGE]
    missing = [name for name in wanted if not (target / name).is_file()]
    if missing:
        raise DbtRunError(
            f"`dbt docs generate` wrote no {', '.join(missing)} in {target}: the docs site is incomplete"
            + ("; is this dbt older than 1.7 (no --static)? set static=False" if missing == [PAGE] else ""),
            command="docs generate",
            exit_code=0,
        )
    into.mkdir(parents=True, exist_ok=True)
    escaped = Masker([json.dumps(s)[1:-1] for s in mask.secrets]) if mask is not None and mask.secrets else None
    for name in wanted:
        if escaped is None:
            shutil.copyfile(target / name, into / name)
            continue
        assert mask is not None
        text = (target / name).read_text(encoding="utf-8", errors="surrogateescape")
        (into / name).write_text(escaped(mask(text)), encoding="utf-8", errors="surrogateescape")
    return wanted


def publish_site(kept: Path, names: list[str], destination: Any, meta: Mapping[str, Any]) -> list[str]:
    """Write the kept files, then META, under ``destination``; return what was written.

    A local folder gets each file through a temporary file and ``os.replace``, so the plugin
    never serves half a file; object storage writes each object whole. Data files go first and
    the pages after them (``SITE_FILES``' order).
    """
    written: list[str] = []
    meta_bytes = json.dumps(dict(meta), indent=2, sort_keys=True, default=str).encode()
    if isinstance(destination, Path):
        destination.mkdir(parents=True, exist_ok=True)
        for name in names:
            _replace_local(destination / name, lambda out, n=name: _copy(kept / n, out))
            written.append(name)
        _replace_local(destination / META, lambda out: out.write(meta_bytes))
    else:
        destination.mkdir(parents=True, exist_ok=True)
        for name in names:
            with (kept / name).open("rb") as src, (destination / name).open("wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            written.append(name)
        with (destination / META).open("wb") as out:
            out.write(meta_bytes)
    return [*written, META]


def _copy(src: Path, out: Any) -> None:
    with src.open("rb") as fh:
        shutil.copyfileobj(fh, out, _CHUNK)


def _replace_local(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.chmod(tmp, 0o644)  # the api-server (another user, often) reads the site; it holds no secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
