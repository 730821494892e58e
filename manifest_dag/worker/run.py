"""One dbt invocation on a worker: venv, workspace, profile, dbt, results.

``run_dbt`` is what ``DbtVenvOperator.execute`` calls (and the CLI, benchmarks, e2e tests): it
takes a ``DbtInvocation`` and nothing from Airflow, so it is testable alone. The pieces it joins
live beside it, one job each: the venv (``venv``), the project copy and its partial-parse file
(``workspace``, ``partial_parse``), the profile (``profiles``), the target (``target``), DuckDB's
one-writer lock (``duckdb_lock``), how dbt is started (``invokers``) and its results
(``results``). What is here: the order of those steps, the log lines a person reads, and the
error raised when dbt fails.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from manifest_dag.core import object_store
from manifest_dag.core.dbt import build_dbt_argv
from manifest_dag.core.errors import DbtRunError
from manifest_dag.core.files import create_private
from manifest_dag.core.secrets import Masker
from manifest_dag.core.specs import DbtInvocation
from manifest_dag.worker import Log
from manifest_dag.worker.duckdb_lock import duckdb_writer_lock
from manifest_dag.worker.invokers import Invoker, default_invoker
from manifest_dag.worker.partial_parse import ParseState, canonical_vars, explain_reparse
from manifest_dag.worker.secret_vars import resolve_secret_vars
from manifest_dag.worker.target import connection_fingerprint, profile_flags, target_output
from manifest_dag.worker.venv import Venv, VenvCache, venv_dbt_version
from manifest_dag.worker.workspace import Workspace

#: dbt's words when it cannot reuse partial_parse.msgpack, and what we tell the user about it.
_REPARSE_MARKERS = ("Unable to do partial parsing",)
#: what dbt's debug log says about parsing (the console shows it only at debug level)
_PARSE_NOTES = ("Partial parsing enabled", "skipping parsing", "Unable to do partial parsing", "Starting full parse")
#: commands that run nodes and write run_results.json: a task of one of them must run one
NODE_COMMANDS = frozenset({"run", "seed", "snapshot", "build", "test"})
#: how many of dbt's last lines an error quotes when there are no run results to explain it
_TAIL = 15
#: what dbt keeps of the worker's environment with ``append_env=False`` (the rest is the task's
#: own ``env``, the profile's and secret vars' variables, and what manifest-dag sets): finding
#: programs (git for ``dbt deps``), the home folder, the user, locale and time zone, the temp
#: folder, and the TLS roots a proxy or private CA needs
MINIMAL_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
)  # fmt: skip


@dataclass
class InvocationOutcome:
    """What happened, for the caller's logs, XCom and tests."""

    exit_code: int
    summary: Any  # results.RunSummary | None
    duration: float
    reparsed: str | None  # dbt's reason when it could not reuse partial parsing
    venv: Venv
    lines: list[str] = field(default_factory=list, repr=False)
    #: the fields of the dbt target the run used that name its warehouse (type, host, port,
    #: account, path ...: ``core.openlineage.NAMESPACE_FIELDS``, never a secret): the operator's
    #: OpenLineage namespace when the DAG gives none
    target_fields: dict[str, Any] = field(default_factory=dict)


def run_dbt(
    inv: DbtInvocation,
    *,
    log: Log,
    invoker: Invoker | None = None,
    artifacts_callback: Callable[[Path], None] | None = None,
    venv_cache: VenvCache | None = None,
    on_invoker: Callable[[Invoker], None] | None = None,
    on_results: Callable[[Any], None] | None = None,
    on_mask: Callable[[Masker], None] | None = None,
) -> InvocationOutcome:
    """Run one dbt command as ``inv`` says; raise ``DbtRunError`` when dbt fails.

    ``on_invoker`` receives the invoker before dbt starts (the operator keeps it for on_kill);
    ``on_results`` the masked ``RunSummary`` once dbt wrote one, failed or not (the operator
    shows the compiled SQL in the task's rendered fields); ``on_mask`` the ``Masker`` of this
    call's secrets (the docs task masks the site's files with it before publishing them).
    """
    from manifest_dag.worker.profiles import RenderedProfile, resolve_profile, write_profile
    from manifest_dag.worker.results import FRESHNESS_RESULTS, read_freshness_results, read_run_results

    cache = venv_cache or VenvCache(inv.cache_dir, log)
    venv = cache.ensure(inv.venv_spec)
    if cache.state_note:
        log(cache.state_note)
    invoker = invoker or default_invoker(
        venv, cache, inv.warm_processes, log, project_dir=inv.project_dir, warm_scope=inv.warm_scope
    )
    if on_invoker is not None:
        on_invoker(invoker)
    dbt = venv.executable("dbt")
    dbt_version = venv_dbt_version(venv)
    profile = resolve_profile(inv.profile_config, inv.project_dir) if inv.profile_config else None
    # secret vars reach dbt in its environment only; --vars holds env_var() references to them
    secret_env = resolve_secret_vars(inv.secret_vars) if inv.secret_vars else {}
    mask = Masker([*(profile.secrets if isinstance(profile, RenderedProfile) else ()), *secret_env.values()])
    if on_mask is not None:
        on_mask(mask)
    vars_json = canonical_vars(inv.dbt_vars)
    pc = inv.profile_config
    # the worker's environment, or with append_env=False only what dbt needs of it
    env = venv.environ() if inv.append_env else venv.environ({k: v for k, v in os.environ.items() if k in MINIMAL_ENV})
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    env.update(inv.env)
    if isinstance(profile, RenderedProfile):
        env.update(profile.env)
    env.update(secret_env)
    target = target_output(inv, profile)  # read once: the parse-state key and the DuckDB lock
    state = ParseState(
        dbt_version=dbt_version,
        profile_name=pc.profile_name if pc else None,
        target_name=pc.target_name if pc else None,
        vars_json=vars_json or "",
        connection=connection_fingerprint(target, env),
    )

    partial_parse_path = inv.partial_parse_path
    if inv.partial_parse_url:
        from manifest_dag.worker.remote_msgpack import fetch_msgpack

        partial_parse_path = fetch_msgpack(inv.partial_parse_url, inv.object_conn_id, cache.state_dir, log)
    with Workspace(
        inv.project_dir,
        cache_root=cache.state_dir,
        state=state,
        manifest_path=inv.manifest_path,
        prepared_root=cache.prepared_dir,
        partial_parse_path=partial_parse_path,
        partial_parse_label=object_store.shown(inv.partial_parse_url) if inv.partial_parse_url else None,
        shared_state_url=inv.shared_state_url,
        shared_state_conn_id=inv.shared_state_conn_id,
        secret_values=[*(profile.secrets if isinstance(profile, RenderedProfile) else ()), *secret_env.values()],
        log=log,
    ) as ws:
        profile_args: list[str] = []
        if isinstance(profile, RenderedProfile):
            write_profile(profile, ws.profiles_dir)
            profile_args = ["--profiles-dir", str(ws.profiles_dir)]
        elif isinstance(profile, Path):
            with create_private(ws.profiles_dir / "profiles.yml") as out, profile.open("rb") as src:
                shutil.copyfileobj(src, out)
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
                    code = invoker.invoke(argv, cwd=project, env=env, on_line=_collect(out, mask, log))
                    if code != 0:
                        tail = "\n".join(out[-_TAIL:])
                        raise DbtRunError(
                            f"`dbt deps` failed with exit code {code} in {project}:\n{tail}",
                            command="deps",
                            exit_code=code,
                        )

                ws.install_deps(run_deps)

        prefer_slot = getattr(invoker, "prefer_slot", None)
        if prefer_slot is not None and ws.slot_number is not None:
            prefer_slot(ws.slot_number)  # the warm process that holds this slot's project parsed
        trust_sync = getattr(invoker, "trust_sync", None)
        if trust_sync is not None:
            trust_sync(ws.synced_files())  # the warm process checks the sync's record, not the files
        argv = dbt_argv(list(inv.command_args), ws.project, ws.target, ws.logs)
        shown = mask(" ".join(inv.command_args))
        where = f"dbt at {venv.dbt}" if venv.external else f"venv {venv.key}"
        log(f"running: dbt {shown}  (dbt {dbt_version or 'of unknown version'}, {where})")
        lines: list[str] = []
        run_env = env
        if artifacts_callback is not None and "DBT_WRITE_JSON" not in env:
            # a warm dbt process skips manifest.json unless asked (see in_venv/dbt_server.py);
            # whoever reads the target folder gets every artifact dbt writes (dbt's own default)
            run_env = {**env, "DBT_WRITE_JSON": "true"}
        started = time.monotonic()
        with duckdb_writer_lock(cache.state_dir, inv.project_dir, target, env, log):
            code = invoker.invoke(argv, cwd=inv.project_dir, env=run_env, on_line=_collect(lines, mask, log))
        duration = time.monotonic() - started
        for note in _parse_notes(ws.logs / "dbt.log"):
            log(f"dbt parse: {note}")
        reparsed = _reparse_reason(lines)
        if reparsed:
            why = explain_reparse(
                reparsed,
                state=state,
                placed=ws.placed,
                profile_args=profile_args,
                target_fields=target[2] if target else None,
            )
            log(mask(f"partial parse was not reused: {reparsed} — {why}"))
        freshness = tuple(inv.command_args[:2]) == ("source", "freshness")
        results_path = ws.target / (FRESHNESS_RESULTS if freshness else "run_results.json")
        read_results = read_freshness_results if freshness else read_run_results
        # dbt's messages quote SQL and connection errors: mask them like its console lines, for
        # the log, the error (it reaches failure callbacks) and the outcome alike
        summary = read_results(results_path).masked(mask) if results_path.is_file() else None
        if summary is not None:
            for line in summary.log_lines():
                log(line)
            if on_results is not None:
                on_results(summary)
        if artifacts_callback is not None:
            artifacts_callback(ws.target)
        outcome = InvocationOutcome(code, summary, duration, reparsed, venv, lines, _namespace_fields(target))
        if code == 0 and (summary is None or summary.success):
            nothing = _ran_nothing(inv, run_env, summary)
            if nothing:
                raise DbtRunError(mask(nothing), command=shown, exit_code=code)
            ws.keep_partial_parse()
            return outcome
        # sources.json leaves out a source whose query failed: its error is in dbt's lines only
        raise _failure(shown, code, summary, lines, mask, with_tail=freshness)


def _collect(lines: list[str], mask: Masker, log: Log) -> Log:
    """A line callback that masks each of dbt's lines, keeps it in ``lines`` and logs it."""

    def on_line(raw: str) -> None:
        lines.append(mask(raw))
        log(lines[-1])

    return on_line


def _reparse_reason(lines: list[str]) -> str | None:
    """dbt's reason for not reusing partial parsing, from its console lines, or None."""
    for line in lines:
        if any(m in line for m in _REPARSE_MARKERS):
            return line.split("  ", 1)[-1].strip()
    return None


def _parse_notes(dbt_log: Path) -> list[str]:
    """What dbt's debug log says about parsing (the console shows it only at debug level)."""
    try:
        with dbt_log.open(errors="replace") as fh:
            notes = [line.strip() for line in fh if any(n in line for n in _PARSE_NOTES)]
    except OSError:
        return []
    return [n.split("]: ", 1)[-1] if "]: " in n else n for n in notes][:5]


def _ran_nothing(inv: DbtInvocation, env: Mapping[str, str], summary: Any) -> str | None:
    """Why a successful exit is no success: a node command that ran no node, or None.

    dbt exits 0 when a selection matches nothing ("Nothing to do"), so a task planned for a node
    whose project on the worker lacks it (renamed, disabled, another manifest) would succeed
    having done nothing. The planner makes a task per node, and test tasks only where tests
    exist, so for these commands zero nodes is always a fault. ``source freshness`` and the
    other commands write no ``run_results.json`` and are not checked.
    """
    args = inv.command_args
    if not args or args[0] not in NODE_COMMANDS:
        return None
    if summary is not None:
        if summary.results:
            return None
        found = "its run_results.json lists no node"
    elif _json_off(args, env):
        return None  # the user turned dbt's artifacts off: there is nothing to tell from
    else:
        found = "it wrote no run_results.json"
    selection = " ".join(args[1:]) or "(no selection: the whole project)"
    return (
        f"`dbt {' '.join(args)}` exited 0 but ran no node ({found}): the selection {selection} matched "
        f"nothing in {inv.project_dir}. Is the project on this worker the one the manifest "
        f"{inv.manifest_path or '(not given)'} was compiled from (a renamed, disabled or deleted node)?"
    )


def _json_off(args: Sequence[str], env: Mapping[str, str]) -> bool:
    if "--no-write-json" in args:
        return True
    return "--write-json" not in args and env.get("DBT_WRITE_JSON", "").strip().lower() in ("0", "false", "no", "off")


def _failure(
    shown: str, code: int, summary: Any, lines: list[str], mask: Masker, with_tail: bool = False
) -> DbtRunError:
    if summary is not None and not summary.success:
        detail = summary.failure_message()
        if with_tail:
            detail += "\ndbt's last lines:\n" + "\n".join(lines[-_TAIL:])
    else:
        tail = "\n".join(lines[-_TAIL:])
        detail = f"dbt wrote no run results; its last lines:\n{tail}"
    failed = tuple(r.unique_id for r in summary.failing) if summary is not None else ()
    return DbtRunError(
        mask(f"`dbt {shown}` failed (exit code {code}).\n{detail}"),
        command=shown,
        exit_code=code,
        failed_nodes=failed,
    )


def _namespace_fields(target: Any) -> dict[str, Any]:
    """The target's fields that name its warehouse (no secret: only ``NAMESPACE_FIELDS``)."""
    from manifest_dag.core.openlineage import NAMESPACE_FIELDS
    from manifest_dag.core.secrets import is_secret_name

    fields = target[2] if target else {}
    return {k: v for k, v in fields.items() if k in NAMESPACE_FIELDS and not is_secret_name(k)}
