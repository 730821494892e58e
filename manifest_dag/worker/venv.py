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
``ensure`` would use. Installer subprocesses get a death signal (``processes``), so a killed
builder does not leave an orphaned installer still writing into the directory that the next
builder is about to recreate.

The fast path (a healthy venv already there) takes no lock and starts no subprocess: it checks a
few files (``bin/python`` and the interpreter it links to, ``pyvenv.cfg``'s ``home``, the verify
command's executable, then the marker, *last*, so a venv being rebuilt concurrently is never
mistaken for a finished one) and touches a last-used stamp that :meth:`VenvCache.prune` reads.
The lock is only ever held while building, never while dbt runs.

Beside it, one job each: ``venv_key`` (the interpreter and the key), ``venv_layout`` (the marker
and the health check), ``venv_install`` (the installer's argv and error messages). None imports
Airflow or dbt (the CLI imports them, and their tests run alone); ``virtualenv`` is imported only
when a venv is actually built. POSIX workers only.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import math
import os
import secrets
import shlex
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock, Timeout

from manifest_dag.core import settings
from manifest_dag.core.errors import ConfigError, VenvError
from manifest_dag.core.files import make_private_dir, read_only_dir
from manifest_dag.core.requirements import normalise_requirements
from manifest_dag.core.secrets import mask_url_credentials as mask_secrets
from manifest_dag.core.specs import VenvSpec
from manifest_dag.worker import venv_install
from manifest_dag.worker.processes import ChildProcess
from manifest_dag.worker.venv_key import (
    FORMAT,
    Interpreter,
    constraints_digest,
    key_for,
    masked_install_options,
    resolve_interpreter,
    venv_key,
)
from manifest_dag.worker.venv_layout import BIN, MARKER_NAME, read_marker, venv_problem, write_marker

__all__ = [
    "MARKER_NAME",
    "PREPARED_DIR",
    "STATE_DIR",
    "Venv",
    "VenvCache",
    "VenvInfo",
    "VenvSpec",
    "default_cache_dir",
    "mask_secrets",
    "normalise_requirements",
    "venv_dbt_version",
    "venv_environ",
    "venv_key",
]

logger = logging.getLogger("manifest_dag.worker.venv")

#: Touched on every ``ensure``; its mtime is the "last used" time that pruning reads.
LAST_USED_NAME = ".last-used"
#: Under the cache root, beside the venvs: kept msgpacks, dbt deps, warm pools, locks.
STATE_DIR = ".state"
#: Under the cache root: what ``manifest-dag prepare`` baked in (a state tree tasks only read).
PREPARED_DIR = ".prepared"
_TAIL_LINES = 40
_VERIFY_TIMEOUT = 300.0


def default_cache_dir() -> Path:
    """Where venvs live when no root is given (``core.settings.venv_cache_dir``, no Airflow import).

    ``MANIFEST_DAG_VENV_CACHE`` wins (explicit, per process), then Airflow's config-as-env
    ``AIRFLOW__MANIFEST_DAG__VENV_CACHE_DIR`` (set once for all workers), then the XDG cache dir.
    """
    return settings.venv_cache_dir()


def venv_environ(venv_path: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment to run a venv's programs in: venv first on PATH, no inherited PYTHONPATH.

    The worker's own PYTHONPATH/PYTHONHOME would leak the worker's packages into the venv (pip
    would even consider them installed), so they are dropped.
    """
    env = dict(os.environ if base is None else base)
    for name in ("PYTHONPATH", "PYTHONHOME", "__PYVENV_LAUNCHER__"):
        env.pop(name, None)
    env["VIRTUAL_ENV"] = str(venv_path)
    env["PATH"] = os.pathsep.join(p for p in (str(venv_path / BIN), env.get("PATH", "")) if p)
    return env


@dataclass(frozen=True, slots=True)
class Venv:
    """A ready venv. ``built`` is True only for the call that built it (for logs and tests).

    ``external`` for a dbt manifest-dag did not build (``worker.venv_external``): ``dbt`` is its
    executable, ``python`` the Python that imports it (None: not a Python program, no warm
    processes), ``env`` what keeps Python from writing into it.
    """

    key: str
    path: Path
    python: Path | None
    bin_dir: Path
    built: bool
    dbt: Path | None = None
    external: bool = False
    is_venv: bool = True
    env: tuple[tuple[str, str], ...] = ()
    #: why a dbt brought along has no Python to run warm processes with (for the log)
    no_python: str | None = None

    def executable(self, name: str) -> Path:
        """``bin_dir / name``, checked, so a missing ``dbt`` fails here with a message, not later."""
        if name == "dbt" and self.dbt is not None:
            return self.dbt
        path = self.bin_dir / name
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise VenvError(
                f"venv {self.key} at {self.path} has no executable {name!r} in {self.bin_dir}; "
                "add the package that provides it to the venv requirements"
            )
        return path

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for subprocesses run from this venv (see :func:`venv_environ`)."""
        env = venv_environ(self.path, base)
        if not self.is_venv:  # a dbt outside any venv: its own folder first on PATH, no VIRTUAL_ENV
            env.pop("VIRTUAL_ENV", None)
            env["PATH"] = os.pathsep.join(p for p in (str(self.bin_dir), (base or os.environ).get("PATH", "")) if p)
        env.update(self.env)
        return env


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


def venv_dbt_version(venv: Venv) -> str | None:
    """dbt-core's version in a venv, from its dist-info folder name (no subprocess)."""
    for info in venv.path.glob("lib/python*/site-packages/dbt_core-*.dist-info"):
        return info.name[len("dbt_core-") : -len(".dist-info")]
    return None


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


def _writable_dir(path: Path) -> bool:
    """Whether ``path`` is (or can be made) a folder we may write to (``core.files.read_only_dir``)."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and not read_only_dir(probe)


def _default_log(line: str) -> None:
    logger.info("%s", line)


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
        state_dir: Path | str | None = None,
    ) -> None:
        if installer not in ("auto", "uv", "pip"):
            raise ConfigError(f"VenvCache installer must be 'auto', 'uv' or 'pip', got {installer!r}")
        # Absolute, because the path is baked into every script of every venv built under it.
        self.root = Path(os.path.abspath(Path(root).expanduser() if root is not None else default_cache_dir()))
        self._log = log or _default_log
        self._lock_timeout = lock_timeout
        self._install_timeout = install_timeout
        self._installer = installer
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._state_note: str | None = None

    @property
    def state_dir(self) -> Path:
        """The worker's writable state: workspaces, kept msgpacks, deps, warm pools, locks.

        ``MANIFEST_DAG_STATE_DIR`` when set, else ``<root>/.state``; when that cannot be written
        (a cache baked read-only into an image, see ``manifest-dag prepare``), a private folder
        under the temp dir, said once in ``state_note``. Decided on first use.
        """
        if self._state_dir is None:
            configured = settings.text(settings.STATE_DIR)
            if configured:
                self._state_dir = Path(os.path.abspath(Path(configured).expanduser()))
            else:
                own = self.root / STATE_DIR
                if _writable_dir(own):
                    self._state_dir = own
                else:
                    self._state_dir = Path(tempfile.gettempdir()) / f"manifest-dag-{os.getuid()}" / "state"
                    self._state_note = (
                        f"venv cache {self.root} is read-only here: this task keeps its state under "
                        f"{self._state_dir} (set {settings.STATE_DIR} to choose)"
                    )
        return self._state_dir

    @property
    def state_note(self) -> str | None:
        """Why the state is not beside the venvs (a read-only cache), for the task log; else None."""
        self.state_dir  # noqa: B018 - decides it
        return self._state_note

    @property
    def prepared_dir(self) -> Path | None:
        """The state ``manifest-dag prepare`` baked in beside the venvs (read only, never
        written by a task): partial-parse msgpacks and ``dbt deps`` output; None when absent."""
        prepared = self.root / PREPARED_DIR
        return prepared if prepared.is_dir() else None

    def __repr__(self) -> str:
        return f"VenvCache(root={str(self.root)!r})"

    # -- public ---------------------------------------------------------------------------------

    def ensure(self, spec: VenvSpec) -> Venv:
        """Return a healthy venv for ``spec``, building it first if needed (once per key, worker-wide)."""
        if not isinstance(spec, VenvSpec):
            raise ConfigError(f"VenvCache.ensure needs a VenvSpec, got {type(spec).__name__}")
        if spec.external:
            return self._external(spec)
        interp = resolve_interpreter(spec.python)
        reqs = normalise_requirements(spec.requirements)
        key = key_for(spec, interp, reqs)
        path = self.root / key
        if self._problem(path, key, spec.verify_command) is None:
            if read_only_dir(path):  # baked read-only into an image: Python must not write there either
                return self._venv(key, path, built=False, env=(("PYTHONDONTWRITEBYTECODE", "1"),))
            self._touch(path)
            return self._venv(key, path, built=False)
        return self._ensure_locked(spec, interp, reqs, key, path)

    def prepared_venv(self, key: str) -> Venv | None:
        """The venv of ``key`` as ``ensure`` returns it, never building one; None when it is
        missing or unhealthy (``manifest-dag prestart`` in a pod: it must not build or write)."""
        path = self.root / key
        if self._problem(path, key, VenvSpec(requirements=()).verify_command) is not None:
            return None
        env = (("PYTHONDONTWRITEBYTECODE", "1"),) if read_only_dir(path) else ()
        return self._venv(key, path, built=False, env=env)

    def list(self) -> builtins.list[VenvInfo]:
        """Every venv dir under the root, healthy or not, for ``manifest-dag venvs list``."""
        infos: builtins.list[VenvInfo] = []
        for entry in self._key_dirs():
            marker = read_marker(entry) or {}
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
                    marker = read_marker(entry)
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

    def _external(self, spec: VenvSpec) -> Venv:
        """A dbt brought along: checked, never built or written to (``worker.venv_external``)."""
        from manifest_dag.worker.venv_external import bytecode_env, external_dbt

        ext = external_dbt(spec)
        pycache = self.state_dir / "pycache" / ext.key
        env = bytecode_env(ext, pycache)
        if "PYTHONPYCACHEPREFIX" in env:
            try:
                make_private_dir(pycache, within=self.state_dir)
            except OSError:
                env = {"PYTHONDONTWRITEBYTECODE": "1"}  # no room for a cache: compile in memory
        return Venv(
            key=ext.key,
            path=ext.path,
            python=ext.python,
            bin_dir=ext.dbt.parent,
            built=False,
            dbt=ext.dbt,
            external=True,
            is_venv=ext.is_venv,
            env=tuple(sorted(env.items())),
            no_python=ext.no_python,
        )

    # -- health ---------------------------------------------------------------------------------

    def _problem(self, path: Path, key: str, verify_command: Sequence[str]) -> str | None:
        """Why ``path`` cannot be used as is, or None when healthy (``venv_layout.venv_problem``)."""
        return venv_problem(path, key, verify_command)

    # -- build ----------------------------------------------------------------------------------

    def _ensure_locked(self, spec: VenvSpec, interp: Interpreter, reqs: tuple[str, ...], key: str, path: Path) -> Venv:
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

    def _build(self, spec: VenvSpec, interp: Interpreter, reqs: tuple[str, ...], key: str, path: Path) -> None:
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

    def _create(self, spec: VenvSpec, interp: Interpreter, key: str, path: Path, *, seed_pip: bool) -> None:
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
        uv = venv_install.find_uv() if self._installer in ("auto", "uv") else None
        if self._installer == "uv" and uv is None:
            raise VenvError("installer='uv' was asked for but no uv executable is on PATH or next to Python")
        return uv

    def _install_argv(
        self, spec: VenvSpec, reqs: tuple[str, ...], path: Path, uv: str | None
    ) -> tuple[str, builtins.list[str]]:
        """(installer name, argv) installing ``reqs`` with every install option of ``spec``."""
        return venv_install.install_argv(spec, reqs, path, uv)

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

    def _install_error(
        self, installer: str, reqs: tuple[str, ...], rc: int, tail: Sequence[str], timed_out: bool
    ) -> str:
        return venv_install.install_error(installer, reqs, rc, tail, timed_out)

    def _verify(self, spec: VenvSpec, key: str, path: Path) -> str:
        if not spec.verify_command:
            return ""
        exe, *rest = spec.verify_command
        argv = [exe if os.path.isabs(exe) else str(path / BIN / exe), *rest]
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
        self._emit(f"verifying: {shown} → {venv_install.summary_line(output)}")
        return output

    def _write_marker(
        self,
        spec: VenvSpec,
        interp: Interpreter,
        reqs: tuple[str, ...],
        key: str,
        path: Path,
        installer: str,
        verify_output: str,
        started: float,
    ) -> None:
        data = {
            "format": FORMAT,
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
                **masked_install_options(spec),
                "constraints": spec.constraints,
                "constraints_sha256": constraints_digest(spec.constraints),
                "system_site_packages": spec.system_site_packages,
                "verify_command": list(spec.verify_command),
            },
            "verify": {"command": list(spec.verify_command), "output": mask_secrets(verify_output)[-4000:]},
        }
        write_marker(path, data)  # the commit point

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

        def on_line(raw: str) -> None:
            for part in raw.rstrip("\r").split("\r"):
                line = mask_secrets(part.rstrip())
                if line:
                    tail.append(line)
                    self._emit(f"  {line}")

        try:
            child = ChildProcess(argv, env=env, cwd=cwd, death_signal=signal.SIGKILL)
        except OSError as exc:
            raise VenvError(f"could not start {mask_secrets(argv[0])}: {exc}") from None
        rc = child.stream(on_line, timeout=timeout)
        return rc, builtins.list(tail), child.timed_out

    def _emit(self, line: str) -> None:
        self._log(mask_secrets(line))

    def _venv(self, key: str, path: Path, *, built: bool, env: tuple[tuple[str, str], ...] = ()) -> Venv:
        return Venv(key=key, path=path, python=path / BIN / "python", bin_dir=path / BIN, built=built, env=env)

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
