"""``manifest-dag prepare``: everything a task needs, made once at image build time.

A pod-per-task executor (Kubernetes) starts every task in a brand-new process and file system,
so whatever a task leaves behind for the next one (the venv, ``dbt deps``, the parsed project,
the plan) is gone. This command makes it all when the image is built, from the DAG files
themselves, so the keys match the tasks' by construction:

- each distinct venv the dbt tasks use, built into the venv cache and compiled to bytecode (a
  read-only venv cannot cache bytecode at run time, and compiling dbt costs every cold start
  seconds); a dbt brought along (``existing_venv``) is only checked, never written;
- per distinct project, profile, target, vars and environment, ``dbt deps`` and ``dbt parse`` in
  a workspace, whose ``partial_parse.msgpack`` and packages are kept in ``<cache>/.prepared``;
- the DAGs' plans in the plan cache (``--plan-cache``; ``MANIFEST_DAG_PLAN_CACHE`` for the tasks).

Tasks use the result read-only: the venv cache may be mounted or ``chmod``-ed read-only, and
tasks then keep their own state under the temp dir (``VenvCache.state_dir``), placing the
prepared msgpack (relocated to their workspace) and linking the prepared packages.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from manifest_dag.cli.output import out
from manifest_dag.core.errors import CliError, ConfigError, ManifestDagError


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_templated(v) for v in value)
    return False


def _parse_key(inv: Any) -> tuple[Any, ...]:
    """What decides the parse state and the packages: one ``dbt parse`` per distinct value."""
    from manifest_dag.worker.partial_parse import canonical_vars

    pc = inv.profile_config
    return (
        inv.venv_spec,
        str(inv.cache_dir),
        str(inv.project_dir),
        repr(pc),
        str(inv.manifest_path),
        str(inv.partial_parse_path),
        canonical_vars(inv.dbt_vars),
        tuple(sorted(inv.env.items())),
        inv.install_deps,
        inv.append_env,
        tuple(sorted(inv.secret_vars)),
    )


def _compile_bytecode(venv: Any, log: Any) -> None:
    """Compile a venv manifest-dag built (never one brought along) once: a read-only venv cannot
    keep bytecode, and dbt's import from source costs every cold task seconds."""
    site = sorted(venv.path.glob("lib/python*/site-packages"))
    if not site or any(any(p.iterdir()) for p in site[0].glob("dbt/__pycache__")):
        return
    started = time.monotonic()
    subprocess.run(  # noqa: S603 - an argv list: the venv's own Python
        [str(venv.python), "-m", "compileall", "-q", "-j", "0", *map(str, site)],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log(f"venv {venv.key}: compiled to bytecode in {time.monotonic() - started:.1f} s")


def _pool_key(inv: Any) -> tuple[Any, ...]:
    """What decides a task's warm pool (``worker.invokers.warm_pool_dir``): its venv, project,
    cache and ``warm_scope``; the vars, env and profile come with each request. A task whose
    ``VenvConfig`` turns warm processes off gets no process started for it."""
    return (inv.venv_spec, str(inv.project_dir), str(inv.cache_dir), inv.warm_scope, inv.warm_processes == 0)


def _warm_up_msgpack(cache_root: Path, project: Path, dbt_version: str | None) -> str | None:
    """A prepared msgpack of ``project`` written by ``dbt_version`` (the newest, if several), as a
    path under ``.prepared``: what a prestarted process warms up on (any state of the project
    will do: it only pays dbt's first-use costs, see ``in_venv/dbt_server.py``)."""
    from manifest_dag.worker.partial_parse import msgpack_dbt_version
    from manifest_dag.worker.state_marks import read_source
    from manifest_dag.worker.venv import PREPARED_DIR

    base = cache_root / PREPARED_DIR
    found = [
        p
        for p in base.glob("partial_parse/*/partial_parse.msgpack")
        if read_source(p.parent) == project.resolve() and msgpack_dbt_version(p) == dbt_version
    ]
    if not found:
        return None
    return str(max(found, key=lambda p: p.stat().st_mtime).relative_to(base))


def _write_prestart_index(pools: dict[tuple[Any, ...], tuple[Any, list[tuple[str, str]]]], log: Any) -> int:
    """``<cache>/.prepared/prestart.json``: for each task, the warm pool ``manifest-dag prestart``
    starts a process in, and a msgpack to warm it up on. Only ids, paths and venv keys: no
    requirement (an index URL may carry a token), no env, no vars."""
    import json

    from manifest_dag.cli.prestart import INDEX_FORMAT, INDEX_NAME
    from manifest_dag.core import settings
    from manifest_dag.core.files import replaced_atomically
    from manifest_dag.worker.venv import PREPARED_DIR, VenvCache, venv_dbt_version

    by_root: dict[Path, dict[str, Any]] = {}
    count = 0
    for inv, task_ids in pools.values():
        cache_root = Path(inv.cache_dir) if inv.cache_dir else settings.venv_cache_dir(airflow_config=True)
        cache = VenvCache(cache_root, log=log, state_dir=Path(os.path.abspath(cache_root)) / PREPARED_DIR)
        try:
            venv = cache.ensure(inv.venv_spec)  # built by now, unless only templated tasks use it
        except ManifestDagError as exc:
            _err(f"prepare: no prestart for {len(task_ids)} tasks of {inv.project_dir}: {exc}")
            continue
        spec = inv.venv_spec
        wanted = (
            {"key": venv.key}
            if not venv.external
            else {"existing_venv": spec.existing_venv, "dbt_executable": spec.dbt_executable, "python": spec.python}
        )
        index = by_root.setdefault(cache.root, {"format": INDEX_FORMAT, "pools": [], "tasks": {}})
        index["pools"].append(
            {"venv": wanted, "project_dir": str(inv.project_dir), "warm_scope": inv.warm_scope,
             "msgpack": _warm_up_msgpack(cache.root, Path(inv.project_dir), venv_dbt_version(venv)),
             "warm_off": inv.warm_processes == 0}
        )  # fmt: skip
        for dag_id, task_id in task_ids:
            index["tasks"].setdefault(dag_id, {})[task_id] = len(index["pools"]) - 1
            count += 1
    for cache_root, index in by_root.items():
        (cache_root / PREPARED_DIR).mkdir(parents=True, exist_ok=True)
        with replaced_atomically(cache_root / PREPARED_DIR / INDEX_NAME) as fh:
            fh.write(json.dumps(index, sort_keys=True).encode())
    return count


def run(args: argparse.Namespace) -> int:
    from manifest_dag.cli.venv_commands import load_dbt_tasks
    from manifest_dag.core import settings
    from manifest_dag.worker.run import run_dbt
    from manifest_dag.worker.venv import PREPARED_DIR, VenvCache

    started = time.monotonic()
    root = Path(os.path.abspath(args.cache_dir)) if args.cache_dir else None
    plans = Path(os.path.abspath(args.plan_cache)) if args.plan_cache else (root / "plans" if root else None)
    if plans is not None:
        os.environ[settings.PLAN_CACHE] = str(plans)  # the DAG files' plans go there as they load
    tasks = load_dbt_tasks(args.dags)
    groups: dict[tuple[Any, ...], Any] = {}
    skipped: list[str] = []
    pools: dict[tuple[Any, ...], tuple[Any, list[tuple[str, str]]]] = {}  # for prestart
    for task in tasks:
        try:
            inv = task.invocation()
        except ConfigError as exc:
            skipped.append(f"{task.dag_id}.{task.task_id}: {exc}")
            continue
        if root is not None:
            inv = replace(inv, cache_dir=root)
        pools.setdefault(_pool_key(inv), (inv, []))[1].append((task.dag_id, task.task_id))
        if _templated(inv.dbt_vars) or _templated(dict(inv.env)):
            skipped.append(f"{task.dag_id}.{task.task_id}: its vars or env are templates, rendered only as it runs")
            continue
        groups.setdefault(_parse_key(inv), inv)
    for line in skipped:
        _err(f"prepare: not prepared: {line}")
    if not groups:
        raise CliError(f"--dags {args.dags}: no dbt task could be prepared ({len(skipped)} skipped)")
    failures: list[str] = []
    venvs: set[str] = set()

    def log(line: str) -> None:
        if not args.quiet:
            _err(f"  {line}")

    for n, inv in enumerate(groups.values(), start=1):
        cache_root = Path(inv.cache_dir) if inv.cache_dir else settings.venv_cache_dir(airflow_config=True)
        prepared = VenvCache(cache_root, log=log, state_dir=Path(os.path.abspath(cache_root)) / PREPARED_DIR)
        what = f"{inv.project_dir} (profile {inv.profile_config.profile_name if inv.profile_config else '-'})"
        _err(f"prepare [{n}/{len(groups)}]: {what}")
        try:
            venv = prepared.ensure(inv.venv_spec)
            if not venv.external:
                _compile_bytecode(venv, _err)
            venvs.add(venv.key)
            outcome = run_dbt(
                replace(inv, command_args=("parse",), warm_processes=0),
                log=log,
                venv_cache=prepared,
            )
        except ManifestDagError as exc:
            failures.append(f"{what}: {exc}")
            _err(f"prepare: failed: {what}: {exc}")
            continue
        out(f"prepared {what}: venv {venv.key}, dbt parse in {outcome.duration:.1f} s")
    indexes = _write_prestart_index(pools, log)
    for cache_root in {Path(inv.cache_dir) for inv in groups.values() if inv.cache_dir}:
        # the parse's workspace copy and notes are this build's own; tasks need the msgpacks and deps
        for leftover in ("workspaces", "notes", "warm"):
            shutil.rmtree(cache_root / PREPARED_DIR / leftover, ignore_errors=True)
    out(
        f"prepared {len(groups) - len(failures)} of {len(groups)} parse states and {len(venvs)} venvs"
        + (f", plans in {plans}" if plans else "")
        + (f", prestart index for {indexes} tasks" if indexes else "")
        + f" in {time.monotonic() - started:.1f} s; tasks may use {root or 'the cache'} read-only"
    )
    if failures:
        raise CliError(f"{len(failures)} could not be prepared:\n" + "\n".join(failures))
    return 0
