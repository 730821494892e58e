"""The worker's cache of per-requirements virtualenvs, where dbt runs.

dbt never runs in the Airflow worker's own environment: every task names the Python requirements it
needs (``dbt-core~=1.11.0``, an adapter, ...) and gets a virtualenv built once per worker for exactly
that set. Building takes seconds to minutes, so the result is cached under a *key* (a short hash of the
interpreter version, the normalised requirements and every install option) and reused by every later
task that asks for the same thing.

Why the venv is built *in place* and never renamed
---------------------------------------------------
The textbook recipe "build in a temp dir, then ``os.rename`` into place" does not work for
virtualenvs: the installer writes the absolute venv path into every console script
(``bin/dbt`` starts with ``#!/<venv>/bin/python``) and into ``bin/activate``. A renamed venv keeps
pointing at the temp dir, which no longer exists, so ``bin/dbt`` fails with "bad interpreter".
Rewriting shebangs after the move is possible but brittle (scripts, ``.pth`` files, ``RECORD``,
``direct_url.json`` and whatever a package generates all carry the path).

So each venv is built directly at its final path ``root/<key>/`` while holding the per-key
``filelock`` ``root/<key>.lock``, and the commit point is the marker file
``root/<key>/.manifest-dag.json``, written last and atomically (temp file + ``os.replace``).
A directory without a valid marker is, by definition, half-built: nobody trusts it, and the next
builder (who holds the lock, so nobody else is writing there) moves it aside and deletes it before
rebuilding. A build that dies at any point, even by SIGKILL, therefore leaves nothing a later
``ensure`` would use. Installer subprocesses are started with ``PR_SET_PDEATHSIG`` on Linux, so a
killed builder does not leave an orphaned installer still writing into the directory that the next
builder is about to recreate.

The fast path (a healthy venv already there) takes no lock and starts no subprocess: it checks a
few files (``bin/python`` and the interpreter it links to, ``pyvenv.cfg``'s ``home``, the verify
command's executable, then the marker, *last*, so a venv being rebuilt concurrently is never
mistaken for a finished one) and touches a last-used stamp that :meth:`VenvCache.prune` reads.
The lock is only ever held while building, never while dbt runs.

This module imports neither Airflow nor dbt (the scheduler side may import it, and its tests run
alone); ``virtualenv`` is imported only when a venv is actually built. POSIX workers only.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import logging
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock, Timeout
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from manifest_dag.core.errors import ConfigError, VenvError
from manifest_dag.core.requirements import mask_secrets, normalise_requirements
from manifest_dag.core.specs import VenvSpec

__all__ = [
    "MARKER_NAME",
    "Venv",
    "VenvCache",
    "VenvInfo",
    "VenvSpec",
    "default_cache_dir",
    "mask_secrets",
    "normalise_requirements",
    "venv_environ",
    "venv_key",
]

logger = logging.getLogger("manifest_dag.worker.venv")

#: The commit point of a build: present and valid only once the venv is complete and verified.
MARKER_NAME = ".manifest-dag.json"
#: Touched on every ``ensure``; its mtime is the "last used" time that pruning reads.
LAST_USED_NAME = ".last-used"
#: Bump when the cache layout or marker format changes: old venvs then get new keys and are pruned.
_FORMAT = 1
_KEY_LENGTH = 16
_BIN = "Scripts" if os.name == "nt" else "bin"
_TAIL_LINES = 40
_VERIFY_TIMEOUT = 300.0
_EXPERIMENTAL_PARSER_HINT = (
    "dbt-core 1.12+ depends on dbt-core-experimental-parser, which downloads a binary from GitHub "
    "while it is built and fails without that access; pin `dbt-core~=1.11.0` in the venv requirements."
)

# ---------------------------------------------------------------------------------------------
# secrets




# ---------------------------------------------------------------------------------------------
# spec and key


@dataclass(frozen=True, slots=True)
class _Interpreter:
    executable: str
    implementation: str
    version: str  # major.minor.micro
    machine: str


@lru_cache(maxsize=64)
def _probe_interpreter(executable: str, _mtime_ns: int, _size: int) -> _Interpreter:
    # Cached per file identity: the fast path must not start a subprocess for every task.
    code = "import sys, platform; print(sys.implementation.name, '%d.%d.%d' % sys.version_info[:3], platform.machine())"
    try:
        out = subprocess.run(
            [executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"VenvSpec.python {executable!r} could not be run to read its version: {exc}") from None
    if len(out) != 3:
        raise ConfigError(f"VenvSpec.python {executable!r} is not a usable Python interpreter (said {out!r})")
    return _Interpreter(executable, out[0], out[1], out[2])


def _resolve_interpreter(python: str | None) -> _Interpreter:
    if python is None:
        # The venv is based on the interpreter running us; if that is itself a venv, on its base
        # (a venv of a venv would break as soon as the worker's venv is rebuilt).
        exe = getattr(sys, "_base_executable", None) or sys.executable
        if not os.path.exists(exe):
            exe = sys.executable
        version = "%d.%d.%d" % sys.version_info[:3]
        return _Interpreter(exe, sys.implementation.name, version, platform.machine())
    found = python if os.sep in python else shutil.which(python)
    if not found or not os.path.isfile(found):
        raise ConfigError(f"VenvSpec.python {python!r} was not found (give a path or a name on PATH)")
    found = os.path.abspath(found)
    st = os.stat(found)
    return _probe_interpreter(found, st.st_mtime_ns, st.st_size)


def _constraints_digest(constraints: str | None) -> str | None:
    if constraints is None:
        return None
    try:
        return hashlib.sha256(Path(constraints).read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"VenvSpec.constraints file {constraints!r} cannot be read: {exc.strerror}") from None


def _key_for(spec: VenvSpec, interp: _Interpreter, reqs: tuple[str, ...]) -> str:
    payload = {
        "format": _FORMAT,
        "python": [interp.implementation, interp.version, interp.machine],
        "requirements": list(reqs),
        # Masked on purpose: rotating an index password must not rebuild every venv, and a short
        # hash of a password is not something to publish in directory names.
        "index_url": mask_secrets(spec.index_url) if spec.index_url else None,
        "extra_index_urls": [mask_secrets(u) for u in spec.extra_index_urls],
        "find_links": [mask_secrets(u) for u in spec.find_links],
        "constraints_sha256": _constraints_digest(spec.constraints),
        "system_site_packages": spec.system_site_packages,
        "pip_args": [mask_secrets(a) for a in spec.pip_args],
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:_KEY_LENGTH]


def venv_key(spec: VenvSpec) -> str:
    """The cache key of ``spec``: 16 hex chars of a SHA-256 over everything that changes the venv.

    That is the interpreter (implementation, major.minor.micro, machine), the normalised
    requirements, the index/find-links/pip options and the *content* of the constraints file
    (editing the file must rebuild). ``verify_command`` is not part of it: it checks a venv, it does
    not shape it.
    """
    return _key_for(spec, _resolve_interpreter(spec.python), normalise_requirements(spec.requirements))


def default_cache_dir() -> Path:
    """Where venvs live when no root is given.

    ``MANIFEST_DAG_VENV_CACHE`` wins (explicit, per process), then Airflow's config-as-env
    ``AIRFLOW__MANIFEST_DAG__VENV_CACHE_DIR`` (set once for all workers), then the XDG cache dir.
    """
    for name in ("MANIFEST_DAG_VENV_CACHE", "AIRFLOW__MANIFEST_DAG__VENV_CACHE_DIR"):
        value = os.environ.get(name, "").strip()
        if value:
            return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "manifest-dag" / "venvs"


# ---------------------------------------------------------------------------------------------
# results


def venv_environ(venv_path: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to run a venv's programs in: venv first on PATH, no inherited PYTHONPATH.

    The worker's own PYTHONPATH/PYTHONHOME would leak the worker's packages into the venv (pip
    would even consider them installed), so they are dropped.
    """
    env = dict(os.environ if base is None else base)
    for name in ("PYTHONPATH", "PYTHONHOME", "__PYVENV_LAUNCHER__"):
        env.pop(name, None)
    env["VIRTUAL_ENV"] = str(venv_path)
    env["PATH"] = os.pathsep.join(p for p in (str(venv_path / _BIN), env.get("PATH", "")) if p)
    return env


@dataclass(frozen=True, slots=True)
class Venv:
    """A ready venv. ``built`` is True only for the call that built it (for logs and tests)."""

    key: str
    path: Path
    python: Path
    bin_dir: Path
    built: bool

    def executable(self, name: str) -> Path:
        """``bin_dir / name``, checked, so a missing ``dbt`` fails here with a message, not later."""
        path = self.bin_dir / name
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise VenvError(
                f"venv {self.key} at {self.path} has no executable {name!r} in {self.bin_dir}; "
                "add the package that provides it to the venv requirements"
            )
        return path

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for subprocesses run from this venv (see :func:`venv_environ`)."""
        return venv_environ(self.path, base)


@dataclass(frozen=True, slots=True)
class VenvInfo:
    """One cache entry as :meth:`VenvCache.list` sees it; ``problem`` says why it is unhealthy."""

    key: str
    path: Path
    requirements: tuple[str, ...]
    size_bytes: int
    created: datetime | None
    last_used: datetime | None
    healthy: bool
    problem: str | None = None


# ---------------------------------------------------------------------------------------------
# helpers


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_pyvenv_cfg(path: Path) -> dict[str, str] | None:
    try:
        text = (path / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return None
    cfg: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            cfg[name.strip().lower()] = value.strip()
    return cfg


def _dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _from_timestamp(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _summary_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if re.search(r"\d+\.\d+", line):
            return line
    return lines[0] if lines else "(no output)"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_prctl: Any = None


def _child_setup_factory() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child die with us (Linux ``PR_SET_PDEATHSIG``).

    Without it a SIGKILLed builder leaves its installer running, still writing into a directory
    that the next builder deletes and recreates. libc is resolved here, before ``fork``, so the
    function the child runs does nothing but two syscalls.
    """
    global _prctl
    if not sys.platform.startswith("linux"):
        return None
    if _prctl is None:
        try:
            import ctypes

            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            _prctl = False
    if not _prctl:
        return None
    prctl = _prctl
    parent = os.getpid()

    def setup() -> None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def _find_uv() -> str | None:
    # A worker started as /path/venv/bin/airflow often lacks that bin dir on PATH, yet has uv there.
    found = shutil.which("uv")
    if found:
        return found
    sibling = Path(sys.executable).parent / "uv"
    return str(sibling) if sibling.is_file() and os.access(sibling, os.X_OK) else None


def _name_in(name: str, text: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", text) is not None


def _failing_requirements(reqs: Sequence[str], output: str) -> list[str]:
    flat = re.sub(r"[-_.]+", "-", output.lower())
    return [r for r in reqs if _name_in(canonicalize_name(Requirement(r).name), flat)]


def _default_log(line: str) -> None:
    logger.info("%s", line)


# ---------------------------------------------------------------------------------------------
# the cache


class VenvCache:
    """One directory of venvs, one per key, shared by every process on the worker.

    ``lock_timeout`` bounds how long ``ensure`` waits for another process's build of the same key;
    ``install_timeout`` kills an installer that hangs (it would hold the lock forever);
    ``installer`` forces ``"uv"`` or ``"pip"`` instead of "uv if found, else the venv's pip".
    """

    def __init__(
        self,
        root: Path | str | None = None,
        log: Callable[[str], None] | None = None,
        *,
        lock_timeout: float = 3600.0,
        install_timeout: float | None = 3600.0,
        installer: Literal["auto", "uv", "pip"] = "auto",
    ) -> None:
        if installer not in ("auto", "uv", "pip"):
            raise ConfigError(f"VenvCache installer must be 'auto', 'uv' or 'pip', got {installer!r}")
        # Absolute, because the path is baked into every script of every venv built under it.
        self.root = Path(os.path.abspath(Path(root).expanduser() if root is not None else default_cache_dir()))
        self._log = log or _default_log
        self._lock_timeout = lock_timeout
        self._install_timeout = install_timeout
        self._installer = installer

    def __repr__(self) -> str:
        return f"VenvCache(root={str(self.root)!r})"

    # -- public ---------------------------------------------------------------------------------

    def ensure(self, spec: VenvSpec) -> Venv:
        """Return a healthy venv for ``spec``, building it first if needed (once per key, worker-wide)."""
        if not isinstance(spec, VenvSpec):
            raise ConfigError(f"VenvCache.ensure needs a VenvSpec, got {type(spec).__name__}")
        interp = _resolve_interpreter(spec.python)
        reqs = normalise_requirements(spec.requirements)
        key = _key_for(spec, interp, reqs)
        path = self.root / key
        if self._problem(path, key, spec.verify_command) is None:
            self._touch(path)
            return self._venv(key, path, built=False)
        return self._ensure_locked(spec, interp, reqs, key, path)

    def list(self) -> builtins.list[VenvInfo]:
        """Every venv dir under the root, healthy or not, for ``manifest-dag venvs list``."""
        infos: builtins.list[VenvInfo] = []
        for entry in self._key_dirs():
            marker = _read_marker(entry) or {}
            spec = marker.get("spec") if isinstance(marker.get("spec"), dict) else {}
            verify = tuple(spec.get("verify_command") or ()) if isinstance(spec, dict) else ()
            problem = self._problem(entry, entry.name, verify)
            created = _parse_iso(marker.get("created"))
            last_used = _from_timestamp(self._last_used(entry)) or created
            infos.append(
                VenvInfo(
                    key=entry.name,
                    path=entry,
                    requirements=tuple(marker.get("requirements") or ()),
                    size_bytes=_dir_size(entry),
                    created=created,
                    last_used=last_used,
                    healthy=problem is None,
                    problem=problem,
                )
            )
        return infos

    def prune(self, older_than_days: float, dry_run: bool = False) -> builtins.list[Path]:
        """Remove venvs unused for ``older_than_days`` days, half-built dirs and leftovers.

        A venv whose build lock is held (being built right now) is skipped: its lock is tried with
        timeout 0 and, if taken, held while the venv is deleted, so no build races the deletion.
        Returns what was removed (or, with ``dry_run``, what would be). The last-used stamp is read
        under that lock, but the fast path takes no lock: a task that picks a venv in the very
        instant prune deletes it fails, so keep ``older_than_days`` far above any task's run time.
        """
        if not isinstance(older_than_days, (int, float)) or not math.isfinite(older_than_days) or older_than_days < 0:
            raise ConfigError(f"prune older_than_days must be a number >= 0, got {older_than_days!r}")
        if not self.root.is_dir():
            return []
        cutoff = time.time() - older_than_days * 86400.0
        removed: builtins.list[Path] = []
        for entry in sorted(self.root.iterdir()):
            name = entry.name
            if name.startswith(".trash-") and entry.is_dir():
                # Already moved aside by a build or prune that died while deleting it.
                if not dry_run:
                    shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
                continue
            if name.startswith(".build-") and entry.is_dir():
                key = name[len(".build-") :].rsplit("-", 1)[0]
                why = "stale build dir"
            elif not name.startswith(".") and entry.is_dir() and not entry.is_symlink():
                key = name
                why = ""
            else:
                continue
            lock = FileLock(str(self.root / f"{key}.lock"))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                self._emit(f"prune: skipping {entry} (its build lock is held: being built now)")
                continue
            try:
                if not why:
                    marker = _read_marker(entry)
                    if marker is None or marker.get("key") != key:
                        why = "half-built (no valid marker)"
                    else:
                        last_used = self._last_used(entry)
                        created = _parse_iso(marker.get("created"))
                        if last_used is None and created is not None:
                            last_used = created.timestamp()
                        if last_used is None or last_used < cutoff:
                            age = (time.time() - last_used) / 86400.0 if last_used else float("inf")
                            why = f"last used {age:.1f} days ago"
                if not why:
                    continue
                self._emit(f"prune: {'would remove' if dry_run else 'removing'} {entry} ({why})")
                if not dry_run:
                    self._remove(entry, key)
                removed.append(entry)
            finally:
                lock.release()
        return removed

    # -- health ---------------------------------------------------------------------------------

    def _problem(self, path: Path, key: str, verify_command: Sequence[str]) -> str | None:
        """Why ``path`` cannot be used as is, or None when healthy. Only stats and small reads.

        The marker is read *last*: if a rebuild replaces the directory while we look, a missing
        marker in the new one is what we see, never a false "healthy".
        """
        if not path.is_dir():
            return "not built yet"
        problem: str | None = None
        python = path / _BIN / "python"
        if not os.path.exists(python):  # follows the symlink to the base interpreter
            problem = (
                f"{_BIN}/python points at a missing interpreter ({os.readlink(python)})"
                if python.is_symlink()
                else f"{_BIN}/python is missing"
            )
        if problem is None:
            cfg = _read_pyvenv_cfg(path)
            if cfg is None:
                problem = "pyvenv.cfg is missing"
            elif not cfg.get("home") or not os.path.isdir(cfg["home"]):
                problem = f"pyvenv.cfg home {cfg.get('home')!r} no longer exists"
            else:
                base = cfg.get("base-executable") or cfg.get("executable")
                if base and not os.path.exists(base):
                    problem = f"base interpreter {base} from pyvenv.cfg no longer exists"
        if problem is None and verify_command:
            exe = verify_command[0]
            target = Path(exe) if os.path.isabs(exe) else path / _BIN / exe
            if not (target.is_file() and os.access(target, os.X_OK)):
                problem = f"{target if os.path.isabs(exe) else _BIN + '/' + exe} is missing"
        marker = _read_marker(path)
        if marker is None:
            return f"no marker {MARKER_NAME} (half-built or interrupted build)"
        if marker.get("key") != key or marker.get("format") != _FORMAT:
            return f"marker {MARKER_NAME} belongs to another key or format"
        return problem

    # -- build ----------------------------------------------------------------------------------

    def _ensure_locked(
        self, spec: VenvSpec, interp: _Interpreter, reqs: tuple[str, ...], key: str, path: Path
    ) -> Venv:
        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = self.root / f"{key}.lock"
        lock = FileLock(str(lock_path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            self._emit(f"venv {key}: another process is building it; waiting for {lock_path}")
            try:
                lock.acquire(timeout=self._lock_timeout)
            except Timeout:
                raise VenvError(
                    f"timed out after {self._lock_timeout:.0f} s waiting for {lock_path}: another process "
                    f"is still building venv {key}. Check for a stuck build on this worker."
                ) from None
        try:
            # Re-check: whoever held the lock may just have finished this very venv.
            problem = self._problem(path, key, spec.verify_command)
            if problem is None:
                self._emit(f"venv {key}: built by another process meanwhile; using {path}")
                self._touch(path)
                return self._venv(key, path, built=False)
            self._clear_trash(key)
            if path.exists() or path.is_symlink():
                self._emit(f"venv {key} at {path} is broken ({problem}); deleting and rebuilding it")
                self._remove(path, key)
            self._build(spec, interp, reqs, key, path)
            self._touch(path)
            return self._venv(key, path, built=True)
        finally:
            lock.release()

    def _build(self, spec: VenvSpec, interp: _Interpreter, reqs: tuple[str, ...], key: str, path: Path) -> None:
        started = time.monotonic()
        try:
            uv = self._pick_uv() if reqs else None
            self._create(spec, interp, key, path, seed_pip=uv is None)
            installer = self._install(spec, reqs, key, path, uv)
            verify_output = self._verify(spec, key, path)
            self._write_marker(spec, interp, reqs, key, path, installer, verify_output, started)
        except BaseException:
            # No marker was written, so nothing here would be trusted; delete it now anyway so a
            # failed build does not leave gigabytes behind until the next prune.
            with contextlib.suppress(Exception):
                self._remove(path, key)
            raise
        self._emit(f"venv {key} ready in {time.monotonic() - started:.1f} s")

    def _create(self, spec: VenvSpec, interp: _Interpreter, key: str, path: Path, *, seed_pip: bool) -> None:
        self._emit(
            f"creating venv {key} at {path} with {interp.implementation} {interp.version} ({interp.executable})"
            + (" with system site-packages" if spec.system_site_packages else "")
        )
        import virtualenv  # heavy; only needed when building

        args = [str(path), "--python", interp.executable, "--no-periodic-update"]
        if spec.system_site_packages:
            args.append("--system-site-packages")
        if not seed_pip:
            # uv installs from outside the venv: seeding pip would cost ~0.5 s and 12 MB per venv.
            args.append("--no-seed")
        try:
            # setup_logging=False: virtualenv must not reconfigure the worker's root logger.
            virtualenv.cli_run(args, setup_logging=False)
        except SystemExit as exc:  # virtualenv's argparse exits on bad arguments
            raise VenvError(f"virtualenv could not create {path} (exit {exc.code}) with {interp.executable}") from None
        except Exception as exc:
            raise VenvError(f"virtualenv could not create {path} with {interp.executable}: {exc}") from exc

    def _pick_uv(self) -> str | None:
        """The uv executable when it is to be used (much faster than pip), else None for the venv's pip."""
        uv = _find_uv() if self._installer in ("auto", "uv") else None
        if self._installer == "uv" and uv is None:
            raise VenvError("installer='uv' was asked for but no uv executable is on PATH or next to Python")
        return uv

    def _install_argv(
        self, spec: VenvSpec, reqs: tuple[str, ...], path: Path, uv: str | None
    ) -> tuple[str, builtins.list[str]]:
        """(installer name, argv) installing ``reqs`` with every install option of ``spec``."""
        python = str(path / _BIN / "python")
        if uv:
            name, argv = "uv", [uv, "pip", "install", "--python", python]
        else:
            name = "pip"
            argv = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
        if spec.index_url:
            argv += ["--index-url", spec.index_url]
        for url in spec.extra_index_urls:
            argv += ["--extra-index-url", url]
        for link in spec.find_links:
            argv += ["--find-links", link]
        if spec.constraints:
            argv += ["--constraint", os.path.abspath(spec.constraints)]
        argv += list(spec.pip_args)
        argv += list(reqs)
        return name, argv

    def _install(self, spec: VenvSpec, reqs: tuple[str, ...], key: str, path: Path, uv: str | None) -> str:
        if not reqs:
            self._emit("no requirements to install")
            return "none"
        name, argv = self._install_argv(spec, reqs, path, uv)
        self._emit(f"installing {len(reqs)} requirement{'s' if len(reqs) != 1 else ''} with {name}: {', '.join(reqs)}")
        self._emit(f"  $ {shlex.join(argv)}")  # masked by _emit, like every line
        env = venv_environ(path)
        env.setdefault("UV_NO_PROGRESS", "1")
        env.setdefault("PYTHONUNBUFFERED", "1")
        rc, tail, timed_out = self._run(argv, env=env, timeout=self._install_timeout)
        if rc != 0:
            raise VenvError(self._install_error(name, reqs, rc, tail, timed_out))
        return name

    def _install_error(self, installer: str, reqs: tuple[str, ...], rc: int, tail: Sequence[str], timed_out: bool) -> str:
        output = "\n".join(tail)
        failing = _failing_requirements(reqs, output)
        what = "timed out" if timed_out else f"failed (exit code {rc})"
        lines = [
            f"installing the venv requirements with {installer} {what}.",
            (f"Failing requirement(s): {', '.join(failing)}" if failing else f"Requirements: {', '.join(reqs)}"),
        ]
        if "dbt-core-experimental-parser" in output:
            lines.append("Hint: " + _EXPERIMENTAL_PARSER_HINT)
        elif not failing:
            lines.append("Hint: check the requirement names/versions and the index_url/find_links settings.")
        lines.append("Installer output (last lines):")
        lines += [f"    {line}" for line in tail[-25:]]
        return mask_secrets("\n".join(lines))

    def _verify(self, spec: VenvSpec, key: str, path: Path) -> str:
        if not spec.verify_command:
            return ""
        exe, *rest = spec.verify_command
        argv = [exe if os.path.isabs(exe) else str(path / _BIN / exe), *rest]
        shown = shlex.join(spec.verify_command)
        self._emit(f"verifying: {shown}")
        rc, tail, timed_out = self._run(argv, env=venv_environ(path), timeout=_VERIFY_TIMEOUT, cwd=str(path))
        output = "\n".join(tail)
        if rc != 0:
            raise VenvError(
                mask_secrets(
                    f"venv {key} was installed but its check `{shown}` "
                    f"{'timed out' if timed_out else f'failed (exit code {rc})'}; do the requirements provide "
                    f"`{exe}`?\n" + "\n".join(f"    {line}" for line in tail)
                )
            )
        self._emit(f"verifying: {shown} → {_summary_line(output)}")
        return output

    def _write_marker(
        self,
        spec: VenvSpec,
        interp: _Interpreter,
        reqs: tuple[str, ...],
        key: str,
        path: Path,
        installer: str,
        verify_output: str,
        started: float,
    ) -> None:
        data = {
            "format": _FORMAT,
            "key": key,
            "created": datetime.now(timezone.utc).isoformat(),
            "build_seconds": round(time.monotonic() - started, 3),
            "python": {
                "implementation": interp.implementation,
                "version": interp.version,
                "machine": interp.machine,
                "base_executable": interp.executable,
            },
            "requirements": list(reqs),
            "installer": installer,
            "spec": {
                "requirements": list(spec.requirements),
                "python": spec.python,
                "index_url": mask_secrets(spec.index_url) if spec.index_url else None,
                "extra_index_urls": [mask_secrets(u) for u in spec.extra_index_urls],
                "find_links": [mask_secrets(u) for u in spec.find_links],
                "constraints": spec.constraints,
                "constraints_sha256": _constraints_digest(spec.constraints),
                "system_site_packages": spec.system_site_packages,
                "pip_args": [mask_secrets(a) for a in spec.pip_args],
                "verify_command": list(spec.verify_command),
            },
            "verify": {"command": list(spec.verify_command), "output": mask_secrets(verify_output)[-4000:]},
        }
        tmp = path / f"{MARKER_NAME}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path / MARKER_NAME)  # the commit point
        _fsync_dir(path)

    # -- plumbing -------------------------------------------------------------------------------

    def _run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        timeout: float | None,
        cwd: str | None = None,
    ) -> tuple[int, builtins.list[str], bool]:
        """Run ``argv``, streaming each output line to the log; (exit code, last lines, timed out)."""
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                preexec_fn=_child_setup_factory(),  # noqa: PLW1509 - see _child_setup_factory
            )
        except OSError as exc:
            raise VenvError(f"could not start {mask_secrets(argv[0])}: {exc}") from None
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(OSError):
                proc.kill()

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                for part in raw.rstrip("\r\n").split("\r"):
                    line = mask_secrets(part.rstrip())
                    if line:
                        tail.append(line)
                        self._emit(f"  {line}")
            rc = proc.wait()
        except BaseException:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return rc, builtins.list(tail), timed_out.is_set()

    def _emit(self, line: str) -> None:
        self._log(mask_secrets(line))

    def _venv(self, key: str, path: Path, *, built: bool) -> Venv:
        return Venv(key=key, path=path, python=path / _BIN / "python", bin_dir=path / _BIN, built=built)

    def _touch(self, path: Path) -> None:
        with contextlib.suppress(OSError):  # a read-only cache is still usable
            (path / LAST_USED_NAME).touch()

    def _last_used(self, path: Path) -> float | None:
        try:
            return (path / LAST_USED_NAME).stat().st_mtime
        except OSError:
            return None

    def _key_dirs(self) -> builtins.list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(
            p for p in self.root.iterdir() if not p.name.startswith(".") and p.is_dir() and not p.is_symlink()
        )

    def _remove(self, path: Path, key: str) -> None:
        """Move ``path`` aside (atomic: it stops being "the venv" at once), then delete it."""
        aside = self.root / f".trash-{key}-{secrets.token_hex(4)}"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        shutil.rmtree(aside, ignore_errors=True)

    def _clear_trash(self, key: str) -> None:
        for leftover in self.root.glob(f".trash-{key}-*"):
            shutil.rmtree(leftover, ignore_errors=True)
