"""A dbt that manifest-dag did not build: a team's own venv or ``dbt`` executable, used read-only.

Teams that bake dbt into their worker image name it (``VenvConfig.existing_venv`` or
``dbt_executable_path``) instead of letting each worker build a venv. Such a dbt is checked when a
task starts (its path exists, holds what dbt needs), with errors naming the path and the setting,
and is never written to: nothing is installed, no marker or last-used stamp is left in it, and
Python's bytecode cache goes elsewhere (see ``bytecode_env``).

Whether the warm path can serve it depends on its Python: the warm server
(``in_venv/dbt_server.py``) runs with the Python that imports this dbt. A venv's ``bin/python``
(or the interpreter a ``dbt`` script's ``#!`` line names) can; a ``dbt`` that is no Python script
(dbt Fusion's binary, a shell wrapper) cannot, and its tasks run dbt as a fresh process.

The key (which names the warm pool and kept state) is ``ext`` and a hash of the resolved path and
the identity of the dbt executable and of dbt-core's install record, so a venv upgraded in place
gets new warm processes instead of ones that imported the old dbt.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from manifest_dag.core.errors import VenvError
from manifest_dag.core.specs import VenvSpec
from manifest_dag.worker.venv_layout import BIN

#: keys of external dbts start with this (never a hex digit: built venvs' keys are hex)
KEY_PREFIX = "ext"


@dataclass(frozen=True, slots=True)
class ExternalDbt:
    """What a task needs to know of a dbt it did not build."""

    key: str
    #: the venv folder (``existing_venv``, or the venv a ``dbt_executable_path`` sits in), else
    #: the folder holding the executable
    path: Path
    dbt: Path
    #: the Python that imports this dbt (the warm server's), or None (not a Python program)
    python: Path | None
    #: True when ``path`` is a virtualenv (``pyvenv.cfg``): its ``bin`` goes first on PATH
    is_venv: bool
    #: why there is no ``python``, for the one log line that says the warm path is off
    no_python: str | None = None


def _setting(spec: VenvSpec) -> str:
    return "VenvConfig.existing_venv" if spec.existing_venv else "VenvConfig.dbt_executable_path"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _shebang_python(dbt: Path) -> tuple[Path | None, str | None]:
    """The interpreter a ``dbt`` script's ``#!`` line names when it is a Python, else why not."""
    try:
        with dbt.open("rb") as fh:
            head = fh.read(256)
    except OSError as exc:
        return None, f"it cannot be read ({exc.strerror or exc})"
    if not head.startswith(b"#!"):
        return None, "it is not a Python script (a compiled program such as dbt Fusion's)"
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if not words:
        return None, "its #! line names no interpreter"
    if Path(words[0]).name == "env" and len(words) > 1:
        found = shutil.which(words[-1])
        interp = Path(found) if found else None
    else:
        interp = Path(words[0])
    if interp is None or not Path(interp.name).name.startswith("python"):
        return None, f"it is a {words[-1] if words else 'non-Python'} script, not a Python one"
    if not _executable(interp):
        return None, f"the Python its #! line names ({interp}) is missing"
    return interp, None


def _venv_root(dbt: Path) -> Path | None:
    """The virtualenv ``dbt`` sits in (``<venv>/bin/dbt`` with ``<venv>/pyvenv.cfg``), or None."""
    folder = dbt.parent
    if folder.name == BIN and (folder.parent / "pyvenv.cfg").is_file():
        return folder.parent
    return None


def _identity(path: Path) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def external_dbt(spec: VenvSpec) -> ExternalDbt:
    """The dbt ``spec`` brings along, checked; ``VenvError`` naming the path when it is unusable."""
    setting = _setting(spec)
    if spec.existing_venv:
        venv = Path(spec.existing_venv)
        if not venv.is_dir():
            raise VenvError(
                f"{setting} {venv} is not a folder on this worker ({os.uname().nodename}): build the venv there, or fix the path"
            )
        if not (venv / "pyvenv.cfg").is_file():
            raise VenvError(
                f"{setting} {venv} is not a virtualenv (it has no pyvenv.cfg); give the folder `python -m venv` "
                "made, or name its dbt with dbt_executable_path"
            )
        python = venv / BIN / "python"
        if not os.path.exists(python):
            raise VenvError(f"{setting} {venv} has no working {BIN}/python (its base interpreter may be gone)")
        dbt = venv / BIN / "dbt"
        if not _executable(dbt):
            raise VenvError(
                f"{setting} {venv} has no dbt ({dbt} is missing or not executable): install dbt-core and an adapter "
                "into it when you build the image"
            )
        root, is_venv, no_python = venv, True, None
    else:
        assert spec.dbt_executable is not None
        dbt = Path(spec.dbt_executable)
        if not dbt.exists():
            raise VenvError(f"{setting} {dbt} does not exist on this worker ({os.uname().nodename})")
        if not _executable(dbt):
            raise VenvError(f"{setting} {dbt} is not an executable file")
        venv_root = _venv_root(dbt)
        if venv_root is not None and os.path.exists(venv_root / BIN / "python"):
            root, is_venv, python, no_python = venv_root, True, venv_root / BIN / "python", None
        else:
            found, no_python = _shebang_python(dbt)
            root, is_venv, python = dbt.parent, False, found  # type: ignore[assignment]
    digest = hashlib.sha256()
    for part in (str(root.resolve()), str(dbt.resolve()), _identity(dbt)):
        digest.update(part.encode() + b"\0")
    for record in sorted(root.glob("lib/python*/site-packages/dbt_core-*.dist-info")) if is_venv else ():
        digest.update(f"{record.name}:{_identity(record / 'RECORD')}".encode() + b"\0")
    key = KEY_PREFIX + digest.hexdigest()[: 16 - len(KEY_PREFIX)]
    return ExternalDbt(key=key, path=root, dbt=dbt, python=python, is_venv=is_venv, no_python=no_python)


def has_bytecode(ext: ExternalDbt) -> bool:
    """Whether dbt's own package in this venv was compiled to bytecode when it was installed
    (pip does it; ``uv pip install`` only with ``--compile-bytecode``)."""
    if not ext.is_venv:
        return True  # not a venv: we cannot tell where its packages are; never write there
    return any(any(p.iterdir()) for p in ext.path.glob("lib/python*/site-packages/dbt/__pycache__"))


def bytecode_env(ext: ExternalDbt, pycache: Path) -> dict[str, str]:
    """What keeps Python from writing into a venv we do not own.

    A venv compiled at install time: ``PYTHONDONTWRITEBYTECODE`` (its ``.pyc`` files are read as
    they are, nothing is added). One without bytecode: ``PYTHONPYCACHEPREFIX`` to ``pycache``, a
    folder of the worker's state, so the compiled modules are kept there (Python reads them from
    there too), not beside the venv's sources.
    """
    if ext.python is None:
        return {}
    if has_bytecode(ext):
        return {"PYTHONDONTWRITEBYTECODE": "1"}
    return {"PYTHONPYCACHEPREFIX": str(pycache)}
