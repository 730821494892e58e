"""One dbt invocation on a worker: venv, workspace, profile, dbt, results.

No Airflow import: ``run_operator`` (the one Airflow-facing function) imports lazily, so the rest
is testable alone and the CLI can run dbt the same way. dbt is reached only through an
``Invoker``: today a fresh subprocess per call; a warm, long-lived dbt process can slot in beside
it with the same contract (argv, cwd, env, line callback → exit code).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from manifest_dag.core.config import ProfileConfig
from manifest_dag.core.dbt import build_dbt_argv
from manifest_dag.core.errors import DbtRunError, WorkspaceError
from manifest_dag.core.specs import DbtInvocation, VenvSpec
from manifest_dag.worker.venv import Venv, VenvCache
from manifest_dag.worker.workspace import ParseState, Workspace, canonical_vars

Log = Callable[[str], None]

#: dbt's words when it cannot reuse partial_parse.msgpack, and what we tell the user about it.
_REPARSE_MARKERS = ("Unable to do partial parsing",)
STATE_DIR = ".state"  # under the venv cache root: kept msgpacks and dbt deps


class Invoker(Protocol):
    """Runs one dbt command line; streams its output lines; returns the exit code."""

    def invoke(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], on_line: Log) -> int: ...

    def kill(self) -> None: ...


def _with_parent_death_signal(argv: Sequence[str]) -> list[str]:
    """``argv`` run so that it gets SIGINT when the task process dies (Linux ``setpriv``).

    dbt runs in its own session so that Airflow's signals reach only the task; a task process
    killed with SIGKILL (a lost worker, an OOM kill) would leave it running, its warehouse query
    too, while the retry runs the same model. SIGINT is dbt's Ctrl-C: it cancels its open
    queries and exits. Without ``setpriv`` (not Linux), dbt runs as before.
    """
    setpriv = _setpriv()
    return [setpriv, "--pdeathsig", "INT", "--", *argv] if setpriv else list(argv)


@functools.lru_cache(maxsize=1)
def _setpriv() -> str | None:
    path = shutil.which("setpriv")
    if path is None or sys.platform != "linux":
        return None
    try:  # util-linux older than 2.33 has no --pdeathsig
        probe = subprocess.run([path, "--pdeathsig", "INT", "--", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return path if probe.returncode == 0 else None


class SubprocessInvoker:
    """A fresh ``<venv>/bin/dbt`` process per invocation, in its own process group."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None

    def invoke(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], on_line: Log) -> int:
        proc = subprocess.Popen(  # noqa: S603 - an argv list, never a shell string
            _with_parent_death_signal(argv),
            cwd=str(cwd),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        self._proc = proc
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                on_line(line.rstrip("\n"))
            return proc.wait()
        finally:
            self._proc = None

    def kill(self) -> None:
        """Stop dbt and its children (Airflow's on_kill: timeout, mark-failed)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class InvocationOutcome:
    """What happened, for the caller's logs, XCom and tests."""

    exit_code: int
    summary: Any  # results.RunSummary | None
    duration: float
    reparsed: str | None  # dbt's reason when it could not reuse partial parsing
    venv: Venv
    lines: list[str] = field(default_factory=list, repr=False)


def default_invoker(venv: Venv, cache: VenvCache, warm_processes: int | None, log: Log) -> Invoker:
    """Warm processes with a cold fallback, unless turned off (then a fresh process per call)."""
    from manifest_dag.worker.warm import FallbackInvoker, WarmInvoker, WarmSettings

    settings = WarmSettings.from_env(warm_processes)
    cold = SubprocessInvoker()
    if settings.processes <= 0:
        return cold
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "USER", "VIRTUAL_ENV")
    server_env = {k: v for k, v in venv.environ().items() if k in keep}
    server_env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    warm = WarmInvoker(venv.python, server_env, cache.root / STATE_DIR / "warm" / venv.key, settings, log)
    return FallbackInvoker(warm, cold, log)


def venv_dbt_version(venv: Venv) -> str | None:
    """dbt-core's version in a venv, from its dist-info folder name (no subprocess)."""
    for info in venv.path.glob("lib/python*/site-packages/dbt_core-*.dist-info"):
        return info.name[len("dbt_core-") : -len(".dist-info")]
    return None


class _Masker:
    def __init__(self, secrets: frozenset[str] | set[str]) -> None:
        self.secrets = sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


def run_dbt(
    inv: DbtInvocation,
    *,
    log: Log,
    invoker: Invoker | None = None,
    artifacts_callback: Callable[[Path], None] | None = None,
    venv_cache: VenvCache | None = None,
    on_invoker: Callable[[Invoker], None] | None = None,
) -> InvocationOutcome:
    """Run one dbt command as ``inv`` says; raise ``DbtRunError`` when dbt fails.

    ``on_invoker`` receives the invoker before dbt starts (the operator keeps it for on_kill).
    """
    from manifest_dag.worker.profiles import RenderedProfile, resolve_profile, write_profile
    from manifest_dag.worker.results import read_run_results

    cache = venv_cache or VenvCache(inv.cache_dir, log)
    venv = cache.ensure(inv.venv_spec)
    invoker = invoker or default_invoker(venv, cache, inv.warm_processes, log)
    if on_invoker is not None:
        on_invoker(invoker)
    dbt = venv.executable("dbt")
    dbt_version = venv_dbt_version(venv)
    profile = resolve_profile(inv.profile_config, inv.project_dir) if inv.profile_config else None
    secrets = set(profile.secrets) if isinstance(profile, RenderedProfile) else set()
    mask = _Masker(secrets)
    vars_json = canonical_vars(inv.dbt_vars)
    pc = inv.profile_config
    env = venv.environ()
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    env.update(inv.env)
    if isinstance(profile, RenderedProfile):
        env.update(profile.env)
    target = target_output(inv, profile)  # read once: the parse-state key and the DuckDB lock
    state = ParseState(
        dbt_version=dbt_version,
        profile_name=pc.profile_name if pc else None,
        target_name=pc.target_name if pc else None,
        vars_json=vars_json or "",
        connection=connection_fingerprint(target, env),
    )

    with Workspace(
        inv.project_dir,
        cache_root=cache.root / STATE_DIR,
        state=state,
        manifest_path=inv.manifest_path,
        partial_parse_path=inv.partial_parse_path,
        log=log,
    ) as ws:
        profile_args: list[str] = []
        if isinstance(profile, RenderedProfile):
            write_profile(profile, ws.profiles_dir)
            profile_args = ["--profiles-dir", str(ws.profiles_dir)]
        elif isinstance(profile, Path):
            _copy_private(profile, ws.profiles_dir / "profiles.yml")
            profile_args = ["--profiles-dir", str(ws.profiles_dir)]
        profile_args += profile_flags(pc, inv.project_dir, profile)

        def dbt_argv(args: Sequence[str], project: Path, target: Path, logs: Path) -> list[str]:
            return build_dbt_argv(dbt, args, project, profile_args, target, logs, vars_json)

        if ws.needs_deps():
            if not inv.install_deps:
                log(
                    f"warning: {inv.project_dir} declares dbt packages but has no dbt_packages/; "
                    "set ProjectConfig(install_deps=True) to run `dbt deps` once per worker"
                )
            else:

                def run_deps(project: Path) -> None:
                    argv = dbt_argv(["deps"], project, project / "target", project / "logs")
                    out: list[str] = []

                    def on_deps_line(raw: str) -> None:
                        out.append(mask(raw))
                        log(out[-1])

                    code = invoker.invoke(argv, cwd=project, env=env, on_line=on_deps_line)
                    if code != 0:
                        tail = "\n".join(out[-15:])
                        raise DbtRunError(
                            f"`dbt deps` failed with exit code {code} in {project}:\n{tail}", command="deps", exit_code=code
                        )

                ws.install_deps(run_deps)

        argv = dbt_argv(list(inv.command_args), ws.project, ws.target, ws.logs)
        shown = " ".join(inv.command_args)
        log(f"running: dbt {shown}  (dbt {dbt_version}, venv {venv.key})")
        reparsed: list[str] = []
        lines: list[str] = []

        def on_line(raw: str) -> None:
            line = mask(raw)
            lines.append(line)
            if any(m in line for m in _REPARSE_MARKERS):
                reparsed.append(line.split("  ", 1)[-1].strip())
            log(line)

        run_env = env
        if artifacts_callback is not None and "DBT_WRITE_JSON" not in env:
            # a warm dbt process skips manifest.json unless asked (see _worker/dbt_server.py);
            # whoever reads the target folder gets every artifact dbt writes (dbt's own default)
            run_env = {**env, "DBT_WRITE_JSON": "true"}
        started = time.monotonic()
        with _writer_lock(cache.root / STATE_DIR, inv, target, env, log):
            code = invoker.invoke(argv, cwd=inv.project_dir, env=run_env, on_line=on_line)
        duration = time.monotonic() - started
        for note in _parse_notes(ws.logs / "dbt.log"):
            log(f"dbt parse: {note}")
        if reparsed:
            log(
                "partial parse was not reused: "
                + reparsed[0]
                + " — keep dbt version, vars, profile and target the same as when the msgpack was "
                "written (this worker keeps a fresh copy after each successful run)"
            )
        results_path = ws.target / "run_results.json"
        summary = read_run_results(results_path) if results_path.is_file() else None
        if summary is not None:
            for line in summary.log_lines():
                log(line)
        if artifacts_callback is not None:
            artifacts_callback(ws.target)
        outcome = InvocationOutcome(code, summary, duration, reparsed[0] if reparsed else None, venv, lines)
        ok = code == 0 and (summary is None or summary.success)
        if ok:
            ws.keep_partial_parse()
            return outcome
        raise _failure(shown, code, summary, lines, ws)


_PARSE_NOTES = ("Partial parsing enabled", "skipping parsing", "Unable to do partial parsing", "Starting full parse")


def _parse_notes(dbt_log: Path) -> list[str]:
    """What dbt's debug log says about parsing (the console shows it only at debug level)."""
    try:
        with dbt_log.open(errors="replace") as fh:
            notes = [line.strip() for line in fh if any(n in line for n in _PARSE_NOTES)]
    except OSError:
        return []
    return [n.split("]: ", 1)[-1] if "]: " in n else n for n in notes][:5]


def _failure(shown: str, code: int, summary: Any, lines: list[str], ws: Workspace) -> DbtRunError:
    if summary is not None and not summary.success:
        detail = summary.failure_message()
    else:
        tail = "\n".join(lines[-15:])
        detail = f"dbt wrote no run results; its last lines:\n{tail}"
    failed = tuple(r.unique_id for r in summary.failing) if summary is not None else ()
    return DbtRunError(f"`dbt {shown}` failed (exit code {code}).\n{detail}", command=shown, exit_code=code, failed_nodes=failed)


_ENV_VAR = re.compile(r"""\{\{\s*env_var\(\s*['"]([^'"]+)['"]\s*(?:,\s*['"]([^'"]*)['"]\s*)?\)\s*\}\}""")


def _fill_env_vars(text: str, env: Mapping[str, str]) -> str:
    """``{{ env_var('X', 'default') }}`` replaced as dbt would, from ``env`` then the worker's own."""
    return _ENV_VAR.sub(lambda m: env.get(m.group(1), os.environ.get(m.group(1), m.group(2) or "")), text)


def _duckdb_file(raw: Any, env: Mapping[str, str], cwd: Path) -> str:
    """The DuckDB file a target's ``path`` names, with ``{{ env_var(...) }}`` filled in."""
    text = _fill_env_vars(str(raw or ""), env)
    if text and text != ":memory:" and "{{" not in text and not text.startswith(("md:", "motherduck:")):
        return str((cwd / text).resolve())
    return text


def target_output(inv: DbtInvocation, profile: Any) -> tuple[Any, Any, dict[str, Any]] | None:
    """(profile name, target name, the target's fields) as dbt will pick them, or None."""
    import yaml

    from manifest_dag.worker.profiles import RenderedProfile

    pc = inv.profile_config
    try:
        if isinstance(profile, RenderedProfile):
            text = profile.profiles_yml
        else:
            text = (Path(profile) if profile is not None else inv.project_dir / "profiles.yml").read_text()
        profiles = yaml.safe_load(text) or {}
        name = pc.profile_name if pc else (yaml.safe_load((inv.project_dir / "dbt_project.yml").read_text()) or {}).get("profile")
        entry = profiles.get(name) or {}
        target = pc.target_name if pc else entry.get("target")
        output = (entry.get("outputs") or {}).get(target) or {}
        return (name, target, output) if isinstance(output, dict) else None
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        return None


def _target_type(
    inv: DbtInvocation, found: tuple[Any, Any, dict[str, Any]] | None, env: Mapping[str, str]
) -> tuple[str | None, str]:
    """The adapter type of the target dbt will use (``target_output``), and a key naming it."""
    if found is None:
        return None, ""
    name, target, output = found
    kind = output.get("type")
    if kind == "duckdb":  # the database file is what allows one writer
        return kind, _duckdb_file(output.get("path"), env, inv.project_dir)
    return (kind if isinstance(kind, str) else None), f"{inv.project_dir.resolve()}|{name}|{target}"


#: target fields never put into a key, even hashed
_SECRET_FIELD = re.compile(r"pass|secret|token|private|credential|keyfile_json", re.IGNORECASE)


def connection_fingerprint(found: tuple[Any, Any, dict[str, Any]] | None, env: Mapping[str, str]) -> str:
    """A digest of the target's non-secret fields (``env_var()`` filled in).

    dbt refuses a partial_parse.msgpack written for another connection ("profile has changed":
    it hashes the adapter's connection info), so the worker keeps one msgpack per connection.
    Profile and target *names* alone are not enough: two DAGs of one project may use the same
    names for a DuckDB and a Postgres target, or two logins, and would replace each other's
    msgpack on every task. Secret fields stay out of the digest.
    """
    if found is None:
        return ""
    fields = []
    for key, value in sorted(found[2].items(), key=lambda kv: str(kv[0])):
        if _SECRET_FIELD.search(str(key)):
            continue
        if isinstance(value, str):
            value = _fill_env_vars(value, env)
        fields.append((str(key), repr(value)))
    return hashlib.sha256(repr(fields).encode()).hexdigest()[:16]


@contextmanager
def _writer_lock(
    state: Path, inv: DbtInvocation, found: tuple[Any, Any, dict[str, Any]] | None, env: Mapping[str, str], log: Log
) -> Iterator[None]:
    """DuckDB allows one writer per database file: tasks on one DuckDB target take turns.

    Only the dbt call is inside the lock (never the venv build or the copy), and only for
    DuckDB targets; other warehouses run tasks in parallel. ``MANIFEST_DAG_DUCKDB_LOCK=off``
    turns it off (for example with a read-only target).
    """
    kind, key = _target_type(inv, found, env)
    if kind != "duckdb" or os.environ.get("MANIFEST_DAG_DUCKDB_LOCK", "").lower() in ("0", "off", "false", "no"):
        yield
        return
    from filelock import FileLock, Timeout

    locks = state / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    lock = FileLock(str(locks / f"duckdb-{digest}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log("waiting for another task's dbt run on the same DuckDB target (DuckDB allows one writer)")
        waited = time.monotonic()
        lock.acquire()
        log(f"DuckDB target free after {time.monotonic() - waited:.2f} s of waiting")
    try:
        yield
    finally:
        lock.release()


def profile_flags(pc: ProfileConfig | None, project_dir: Path, profile: Any) -> list[str]:
    """``--profile``/``--target`` only where they differ from what dbt would pick anyway.

    dbt hashes the *flags* into its partial-parse check, so a ``dbt parse`` run without them (the
    usual way a manifest is made) is only reused by invocations without them too.
    """
    if pc is None:
        return []
    import yaml

    from manifest_dag.worker.profiles import RenderedProfile

    flags: list[str] = []
    try:
        project = yaml.safe_load((project_dir / "dbt_project.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        project = {}
    if project.get("profile") != pc.profile_name:
        flags += ["--profile", pc.profile_name]
    try:
        text = profile.profiles_yml if isinstance(profile, RenderedProfile) else Path(profile).read_text()
        default_target = (yaml.safe_load(text) or {}).get(pc.profile_name, {}).get("target")
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        default_target = None
    if default_target != pc.target_name:
        flags += ["--target", pc.target_name]
    return flags


def _copy_private(source: Path, dest: Path) -> None:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as src:
        shutil.copyfileobj(src, out)


def invocation_for(op: Any) -> DbtInvocation:
    """Deprecated shim for the dry run while it moves to ``op.invocation()``."""
    return op.invocation()
