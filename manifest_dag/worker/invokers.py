"""How a dbt command line reaches dbt: a fresh process, or a warm one with a cold fallback.

dbt is reached only through an ``Invoker`` (argv, cwd, env, line callback → exit code), so
``run_dbt`` does not care which: ``SubprocessInvoker`` starts ``<venv>/bin/dbt`` per call;
``warm.FallbackInvoker`` sends the call to a long-lived dbt process of the venv's pool and runs
it cold whenever the warm path itself fails. ``default_invoker`` picks between them.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from manifest_dag.core.files import make_private_dir
from manifest_dag.worker import Log
from manifest_dag.worker.processes import ChildProcess
from manifest_dag.worker.state_marks import mark_source
from manifest_dag.worker.venv import STATE_DIR, Venv, VenvCache

#: what a warm dbt server inherits from the venv's environment (the rest comes per request)
_SERVER_ENV = (
    "PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "USER", "VIRTUAL_ENV",
    "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX",  # a venv brought along is never written to
)  # fmt: skip


class Invoker(Protocol):
    """Runs one dbt command line; streams its output lines; returns the exit code."""

    def invoke(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], on_line: Log) -> int: ...

    def kill(self) -> None: ...


class SubprocessInvoker:
    """A fresh ``<venv>/bin/dbt`` process per invocation, in its own session.

    dbt gets SIGINT (its Ctrl-C: cancel the open queries, exit) if the task process dies, see
    ``processes``.
    """

    def __init__(self) -> None:
        self._child: ChildProcess | None = None

    def invoke(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], on_line: Log) -> int:
        self._child = ChildProcess(argv, cwd=cwd, env=env, death_signal=signal.SIGINT)
        try:
            return self._child.stream(on_line)
        finally:
            self._child = None

    def kill(self) -> None:
        """Stop dbt and its children (Airflow's on_kill: timeout, mark-failed)."""
        child = self._child
        if child is not None:
            child.stop()


def warm_pool_dir(
    cache_root: Path, venv_key: str, project_dir: Path, scope: str | None = None, *, state_dir: Path | None = None
) -> Path:
    """The warm pool of one trust boundary: a venv, a project folder, and the author's ``warm_scope``.

    dbt runs user Python (Python models, macros' modules, adapter plugins) inside a warm process,
    and that code can patch dbt for every later invocation in the process and read each one's
    environment, secrets included. So one project's tasks never reach another project's process.
    """
    boundary = hashlib.sha256(f"{project_dir.resolve()}\0{scope or ''}".encode()).hexdigest()[:12]
    return (state_dir or cache_root / STATE_DIR) / "warm" / f"{venv_key}-{boundary}"


def default_invoker(
    venv: Venv,
    cache: VenvCache,
    warm_processes: int | None,
    log: Log,
    *,
    project_dir: Path,
    warm_scope: str | None = None,
) -> Invoker:
    """Warm processes with a cold fallback, unless turned off (then a fresh process per call)."""
    from manifest_dag.worker.warm import FallbackInvoker, WarmInvoker, WarmSettings

    settings = WarmSettings.from_env(warm_processes)
    cold = SubprocessInvoker()
    if settings.processes <= 0:
        return cold
    if venv.python is None:
        _say_once(
            cache.state_dir,
            venv.key,
            log,
            f"warm dbt: off for {venv.dbt}: {venv.no_python or 'no Python imports it'}; the warm processes "
            "run dbt inside its own Python, so every task runs this dbt as a fresh process (said once per worker)",
        )
        return cold
    server_env = {k: v for k, v in venv.environ().items() if k in _SERVER_ENV}
    server_env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    pool = warm_pool_dir(cache.root, venv.key, project_dir, warm_scope, state_dir=cache.state_dir)
    with contextlib.suppress(OSError):  # the pool's own start reports a state tree it cannot use
        make_private_dir(pool, within=cache.state_dir)
        mark_source(pool, project_dir)  # whose pool this is, and when it last served (venv prune)
    warm = WarmInvoker(venv.python, server_env, pool, settings, log)
    return FallbackInvoker(warm, cold, log)


def _say_once(state_dir: Path, key: str, log: Log, message: str) -> None:
    """Log ``message`` the first time on this worker (a note file in the state tree), then quietly.

    Each Airflow task is a new process, so "once" needs a mark on disk; where none can be made
    (a read-only state tree), the message is logged every time rather than never.
    """
    note = state_dir / "notes" / f"{key}.said"
    if note.exists():
        return
    log(message)
    with contextlib.suppress(OSError):
        make_private_dir(note.parent, within=state_dir)
        note.touch()
