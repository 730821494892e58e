"""``manifest-dag venv build|list|prune``: the worker venv cache, managed from a shell.

Builds at deploy time so the first task does not wait; ``--dags`` reads the settings from the DAG
files themselves, so the keys match the tasks'. The cache root is found by the same lookup a task
uses. Imports the worker side (and, for ``--dags``, Airflow) only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from manifest_dag.cli.output import out, size, table
from manifest_dag.core.errors import CliError

if TYPE_CHECKING:
    from manifest_dag.core.config import VenvConfig
    from manifest_dag.worker.venv import VenvCache


def _cache(
    args: argparse.Namespace, log: Callable[[str], None] | None = None, config: VenvConfig | None = None
) -> VenvCache:
    from manifest_dag.worker.venv import VenvCache

    root = args.cache_dir
    if root is None:
        from manifest_dag.core import settings

        # the same lookup as a task: VenvConfig.cache_dir, MANIFEST_DAG_VENV_CACHE, Airflow's
        # [manifest_dag] venv_cache_dir, then ~/.cache/manifest-dag/venvs
        root = settings.venv_cache_dir(config.cache_dir if config else None, airflow_config=True)
    return VenvCache(root, log=log or (lambda line: None))


class _Progress:
    """Step-by-step progress of a venv build on stderr, each line with the elapsed time."""

    STEPS = (("creating venv", "create"), ("installing", "install"), ("verifying:", "verify"))

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.monotonic()
        self.step = 0

    def __call__(self, line: str) -> None:
        for n, (prefix, name) in enumerate(self.STEPS, start=1):
            if line.startswith(prefix) and n > self.step:
                self.step = n
                self._print(f"[{n}/3 {name}] {line}")
                return
        if not self.quiet or not line.startswith("  "):
            self._print(line)

    def _print(self, text: str) -> None:
        print(f"{time.monotonic() - self.started:6.1f}s  {text}", file=sys.stderr, flush=True)


def load_dbt_tasks(path: str) -> list[Any]:
    """The dbt tasks (``DbtVenvOperator``) of the DAG files at ``path`` (a file or folder), loaded
    as Airflow's DAG processor loads them (dbt blocked); ``CliError`` on an import error or none."""
    from manifest_dag.operators import DbtVenvOperator
    from manifest_dag.testing import load_dag_bag

    if not Path(path).exists():
        raise CliError(f"--dags {path}: no such file or folder")
    import logging

    # Airflow's logging setup would print every INFO line of DagBag and virtualenv on stderr,
    # between the progress lines
    for name in ("", "airflow", "virtualenv", "python_discovery"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        bag = load_dag_bag(path)
    except AssertionError as exc:
        raise CliError(f"--dags {path}: {exc}") from None
    tasks = [task for dag in bag.dags.values() for task in dag.tasks if isinstance(task, DbtVenvOperator)]
    if not tasks:
        raise CliError(f"--dags {path}: the DAG files there have no dbt tasks ({len(bag.dags)} DAGs loaded)")
    return tasks


def _configs_from_dags(path: str, queues: Sequence[str] = ()) -> list[VenvConfig]:
    """The distinct VenvConfigs of the dbt tasks in the DAG files at ``path`` (a file or folder);
    with ``queues``, of those tasks routed to one of them only (a worker listening on those queues
    runs no other task, so it needs no other venv)."""
    found: dict[Any, VenvConfig] = {}
    seen_queues: set[str] = set()
    for task in load_dbt_tasks(path):
        seen_queues.add(str(task.queue))
        if queues and task.queue not in queues:
            continue
        cfg = task.venv_config
        found.setdefault((cfg.to_spec(), str(cfg.cache_dir or "")), cfg)
    if not found and queues:
        raise CliError(
            f"--dags {path} --queue {','.join(queues)}: no dbt task there is routed to these queues "
            f"(the dbt tasks use {', '.join(sorted(seen_queues)) or 'none'})"
        )
    return list(found.values())


def build(args: argparse.Namespace) -> int:
    import dataclasses

    from manifest_dag.core.config import VenvConfig

    reqs = list(args.requirements)
    if args.manifest:
        from manifest_dag.scheduler.manifest import load_manifest

        m = load_manifest(args.manifest)
        if m.dbt_version in ("", "unknown"):
            raise CliError(f"{m.path}: the manifest does not record its dbt version; name the requirements instead")
        reqs += list(VenvConfig.for_manifest(m.dbt_version, m.adapter_type).py_requirements)
    configs = []
    if reqs:
        configs.append(
            VenvConfig(
                py_requirements=reqs,
                python=args.python,
                index_url=args.index_url,
                extra_index_urls=args.extra_index_url,
                find_links=args.find_links,
                constraints=args.constraints,
                py_system_site_packages=args.system_site_packages,
                pip_args=args.pip_arg,
                cache_dir=args.cache_dir,
            )
        )
    if args.dags:
        configs += _configs_from_dags(args.dags, args.queue)
    elif args.queue:
        raise CliError("--queue picks among the tasks of --dags: give --dags too")
    if not configs:
        raise CliError("name the requirements (e.g. dbt-core~=1.11.0 dbt-duckdb~=1.11.0), or give --manifest or --dags")
    for config in configs:
        spec = config.to_spec()
        if args.verify is not None:
            spec = dataclasses.replace(spec, verify_command=tuple(shlex.split(args.verify)))
        progress = _Progress(args.quiet)
        cache = _cache(args, progress, config)
        if spec.external:
            venv = cache.ensure(spec)  # checked, never built or written
            warm = "warm processes with its Python" if venv.python else f"no warm processes: {venv.no_python}"
            out(f"dbt brought along at {venv.dbt} ({spec.external}): usable, nothing to build ({warm})")
            continue
        progress._print(f"venv cache {cache.root}; requirements: {', '.join(spec.requirements)}")
        venv = cache.ensure(spec)
        state = f"built in {time.monotonic() - progress.started:.1f} s" if venv.built else "already built"
        out(f"venv {venv.key} ready at {venv.path} ({state})")
    return 0


def list_cached(args: argparse.Namespace) -> int:
    cache = _cache(args)
    infos = cache.list()
    if args.json:
        out(
            json.dumps(
                [
                    {
                        "key": i.key,
                        "path": str(i.path),
                        "requirements": list(i.requirements),
                        "size_bytes": i.size_bytes,
                        "created": i.created.isoformat() if i.created else None,
                        "last_used": i.last_used.isoformat() if i.last_used else None,
                        "healthy": i.healthy,
                        "problem": i.problem,
                    }
                    for i in infos
                ],
                indent=2,
            )
        )
        return 0
    if not infos:
        out(f"no venvs in {cache.root}")
        return 0
    fmt = "%Y-%m-%d %H:%M"
    rows = [
        (
            i.key,
            size(i.size_bytes),
            i.last_used.astimezone().strftime(fmt) if i.last_used else "-",
            "ok" if i.healthy else f"broken: {i.problem}",
            " ".join(i.requirements) or "-",
        )
        for i in infos
    ]
    out(f"venv cache {cache.root}: {len(infos)} venvs, {size(sum(i.size_bytes for i in infos))}")
    out(table(rows, ("key", "size", "last used", "state", "requirements")))
    return 0


def prune(args: argparse.Namespace) -> int:
    """Unused venvs, then the state folders (slots, kept msgpacks, deps copies, warm pools) of
    projects that are gone or unused for as long (``worker.state_prune``)."""
    from manifest_dag.worker.state_prune import dir_size, prune_state
    from manifest_dag.worker.venv import STATE_DIR

    lines: list[str] = []
    cache = _cache(args, lines.append)
    removed = cache.prune(args.older_than, dry_run=args.dry_run)
    for line in lines:
        if args.dry_run and line.startswith("prune: would remove "):
            path = Path(line[len("prune: would remove ") :].split(" (", 1)[0])
            line = f"{line}; {size(dir_size(path))}"
        out(line)
    state = prune_state(cache.root / STATE_DIR, args.older_than, dry_run=args.dry_run, venv_root=cache.root)
    verb = "would remove" if args.dry_run else "removing"
    for folder in state.removed:
        whose = f" of {folder.source}" if folder.source else ""
        out(f"prune: {verb} {folder.path} ({folder.kind}{whose}: {folder.why}; {size(folder.size_bytes)})")
    for folder in state.busy:
        whose = f" of {folder.source}" if folder.source else ""
        out(f"prune: busy, kept {folder.path} ({folder.kind}{whose}: {folder.why})")
    n = len(removed) + len(state.removed)
    verb = "would remove" if args.dry_run else "removed"
    out(
        f"{verb} {n} entr{'y' if n == 1 else 'ies'} from {cache.root}: {len(removed)} venv"
        f"{'' if len(removed) == 1 else 's'}, {len(state.removed)} state folder"
        f"{'' if len(state.removed) == 1 else 's'} ({size(state.size_bytes)})"
        + (f"; {len(state.busy)} in use, kept" if state.busy else "")
    )
    return 0
