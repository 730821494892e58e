"""What identifies a venv: its interpreter and its key.

Two tasks get the same venv exactly when they ask for the same thing, whatever their spelling:
the key is a short hash of the interpreter (implementation, version, machine, never its path),
the normalised requirements, the install options (index credentials masked) and the *content*
of the constraints file. Probing an interpreter other than our own costs a subprocess, so its
answer is cached per file identity: the fast path of ``VenvCache.ensure`` starts none.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from manifest_dag.core.errors import ConfigError
from manifest_dag.core.requirements import normalise_requirements
from manifest_dag.core.secrets import mask_url_credentials
from manifest_dag.core.specs import VenvSpec

#: Bump when the cache layout or marker format changes: old venvs then get new keys and are pruned.
FORMAT = 1
KEY_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Interpreter:
    """A Python a venv is built from, as the key sees it."""

    executable: str
    implementation: str
    version: str  # major.minor.micro
    machine: str


@lru_cache(maxsize=64)
def _probe_interpreter(executable: str, _mtime_ns: int, _size: int) -> Interpreter:
    # Cached per file identity: the fast path must not start a subprocess for every task.
    code = "import sys, platform; print(sys.implementation.name, '%d.%d.%d' % sys.version_info[:3], platform.machine())"
    try:
        out = subprocess.run(  # noqa: S603 - an argv list: the configured interpreter
            [executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"VenvSpec.python {executable!r} could not be run to read its version: {exc}") from None
    if len(out) != 3:
        raise ConfigError(f"VenvSpec.python {executable!r} is not a usable Python interpreter (said {out!r})")
    return Interpreter(executable, out[0], out[1], out[2])


def resolve_interpreter(python: str | None) -> Interpreter:
    """``VenvSpec.python`` (None: the interpreter running us) as the key sees it."""
    if python is None:
        # The venv is based on the interpreter running us; if that is itself a venv, on its base
        # (a venv of a venv would break as soon as the worker's venv is rebuilt).
        exe = getattr(sys, "_base_executable", None) or sys.executable
        if not os.path.exists(exe):
            exe = sys.executable
        version = ".".join(map(str, sys.version_info[:3]))
        return Interpreter(exe, sys.implementation.name, version, platform.machine())
    found = python if os.sep in python else shutil.which(python)
    if not found or not os.path.isfile(found):
        raise ConfigError(f"VenvSpec.python {python!r} was not found (give a path or a name on PATH)")
    found = os.path.abspath(found)
    st = os.stat(found)
    return _probe_interpreter(found, st.st_mtime_ns, st.st_size)


def constraints_digest(constraints: str | None) -> str | None:
    """SHA-256 of the constraints file's content (editing the file must rebuild), or None."""
    if constraints is None:
        return None
    try:
        return hashlib.sha256(Path(constraints).read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"VenvSpec.constraints file {constraints!r} cannot be read: {exc.strerror}") from None


def masked_install_options(spec: VenvSpec) -> dict[str, Any]:
    """The spec's index, find-links and pip options with URL credentials hidden (key and marker)."""
    return {
        "index_url": mask_url_credentials(spec.index_url) if spec.index_url else None,
        "extra_index_urls": [mask_url_credentials(u) for u in spec.extra_index_urls],
        "find_links": [mask_url_credentials(u) for u in spec.find_links],
        "pip_args": [mask_url_credentials(a) for a in spec.pip_args],
    }


def key_for(spec: VenvSpec, interp: Interpreter, reqs: tuple[str, ...]) -> str:
    """The key of ``spec`` once its interpreter is resolved and its requirements normalised."""
    payload = {
        "format": FORMAT,
        "python": [interp.implementation, interp.version, interp.machine],
        "requirements": list(reqs),
        # Masked on purpose: rotating an index password must not rebuild every venv, and a short
        # hash of a password is not something to publish in directory names.
        **masked_install_options(spec),
        "constraints_sha256": constraints_digest(spec.constraints),
        "system_site_packages": spec.system_site_packages,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:KEY_LENGTH]


def venv_key(spec: VenvSpec) -> str:
    """The cache key of ``spec``: 16 hex chars of a SHA-256 over everything that changes the venv.

    That is the interpreter (implementation, major.minor.micro, machine), the normalised
    requirements, the index/find-links/pip options and the *content* of the constraints file
    (editing the file must rebuild). ``verify_command`` is not part of it: it checks a venv, it does
    not shape it.
    """
    return key_for(spec, resolve_interpreter(spec.python), normalise_requirements(spec.requirements))
