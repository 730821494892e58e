"""plan_task: a dry run of one task, showing what it would run on a worker, with nothing run.

A task's command is only complete on the worker: templates (``{{ ds }}``, params, Variables) are
rendered for the run, the profile is made from an Airflow Connection, and the argv gets the
worker's paths. Reviewing that in CI means doing the same steps offline, with the same code:
Airflow's own templating for a given logical date, the operator's own ``invocation()``, the
worker's profile builders and ``profile_flags``, and the one argv builder in
:mod:`manifest_dag.core.dbt` (so the plan cannot drift from what runs), with secrets masked by
the one rule in :mod:`manifest_dag.core.secrets` and the per-task paths shown as placeholders.
Airflow and the worker side are imported only when a task is planned.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from manifest_dag.core.dbt import build_dbt_argv
from manifest_dag.core.requirements import normalise_requirements
from manifest_dag.core.secrets import MASK, Masker

__all__ = ["MASK", "PROFILES_DIR", "VENV_DIR", "WORKSPACE_DIR", "TaskPlan", "plan_task"]

#: placeholders for paths that exist only while the task runs
VENV_DIR = "<venv>"
WORKSPACE_DIR = "<workspace>"
PROFILES_DIR = "<profiles-dir>"


@dataclass(frozen=True)
class TaskPlan:
    """What a task would run on a worker; ``str()`` prints it."""

    task_id: str
    command: str
    #: the dbt arguments after ``dbt`` (command, selection, flags), templates rendered
    dbt_args: tuple[str, ...]
    #: the full argv run_dbt starts, with the worker-side paths as placeholders
    argv: tuple[str, ...]
    venv_key: str
    requirements: tuple[str, ...]
    python: str | None
    #: environment dbt gets on top of the venv's (``PATH``...): name → value, secrets ``***``
    env: Mapping[str, str]
    profile_source: str
    #: the ``profiles.yml`` the task would use, secrets masked (None: dbt's own lookup)
    profiles_yml: str | None
    #: ``vars`` after rendering (secrets masked), and the ``--vars`` JSON
    vars: Any
    vars_json: str | None
    project_dir: str
    logical_date: Any
    install_deps: bool = False
    rendered: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def env_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.env))

    def __str__(self) -> str:
        lines = [
            f"task {self.task_id} (logical date {self.logical_date})",
            f"  venv {self.venv_key}: {' '.join(self.requirements)}"
            + (f" (python {self.python})" if self.python else ""),
            f"  dbt {' '.join(self.dbt_args)}",
            f"  argv: {' '.join(self.argv)}",
            f"  project_dir: {self.project_dir}" + ("  (dbt deps when needed)" if self.install_deps else ""),
            f"  vars: {self.vars_json or '-'}",
            "  env: " + (", ".join(f"{k}={v}" for k, v in sorted(self.env.items())) or "-"),
            f"  profile: {self.profile_source}",
        ]
        if self.profiles_yml:
            lines += ["    " + line for line in self.profiles_yml.rstrip().splitlines()]
        return "\n".join(lines)


def _context(
    task: Any, logical_date: Any, params: Mapping[str, Any] | None, data_interval: Any, run_id: str | None
) -> dict[str, Any]:
    from airflow.sdk.definitions.param import process_params
    from airflow.sdk.execution_time.context import ConnectionAccessor, MacrosAccessor, VariableAccessor

    from manifest_dag.core.airflow_compat import coerce_datetime

    logical_date = coerce_datetime(logical_date)
    start, end = data_interval if data_interval is not None else (logical_date, logical_date)
    ds = logical_date.strftime("%Y-%m-%d")
    ts = logical_date.isoformat()
    run_id = run_id or f"manual__{ts}"
    return {
        "dag": task.dag,
        "task": task,
        "run_id": run_id,
        # copies: Airflow sets a run's conf into the Param objects, which the DAG's tasks share
        "params": process_params(
            SimpleNamespace(params=copy.deepcopy(getattr(task.dag, "params", None) or {})),  # type: ignore[arg-type]
            SimpleNamespace(params=copy.deepcopy(task.params)),  # type: ignore[arg-type]
            dict(params or {}),
            suppress_exception=False,
        ),
        "macros": MacrosAccessor(),
        "var": {"json": VariableAccessor(deserialize_json=True), "value": VariableAccessor(deserialize_json=False)},
        "conn": ConnectionAccessor(),
        "logical_date": logical_date,
        "ds": ds,
        "ds_nodash": ds.replace("-", ""),
        "ts": ts,
        "ts_nodash": logical_date.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
        "data_interval_start": coerce_datetime(start),
        "data_interval_end": coerce_datetime(end),
        "task_instance_key_str": f"{task.dag_id}__{task.task_id}__{ds.replace('-', '')}",
        "inlets": task.inlets,
        "outlets": task.outlets,
    }


def plan_task(
    task: Any,
    *,
    logical_date: Any = None,
    params: Mapping[str, Any] | None = None,
    data_interval: tuple[Any, Any] | None = None,
    run_id: str | None = None,
    connections: Mapping[str, Any] | None = None,
) -> TaskPlan:
    """A dry run of a manifest-dag task: what it would run on a worker, with nothing run.

    Templated fields (``select``, ``vars``, ``env``, flags ...) are rendered by Airflow's own
    templating for ``logical_date`` (default: the DAG's start date) and the run's ``params``
    (as a triggered run's conf). No venv is built and dbt is not started; the profile is made
    from ``connections[conn_id]`` when given (a Connection or a dict of its fields), else fetched
    the way a worker would (``AIRFLOW_CONN_<ID>`` environment variables in tests).
    """
    from manifest_dag.operators import DbtVenvOperator
    from manifest_dag.worker.partial_parse import canonical_vars
    from manifest_dag.worker.profiles import RenderedProfile, profile_from_connection, resolve_profile
    from manifest_dag.worker.target import profile_flags
    from manifest_dag.worker.venv_key import venv_key

    if not isinstance(task, DbtVenvOperator):
        raise TypeError(f"plan_task takes a manifest-dag operator, got {type(task).__name__}")
    if logical_date is None:
        logical_date = getattr(task.dag, "start_date", None) or getattr(task, "start_date", None)
        if logical_date is None:
            raise ValueError("plan_task: give logical_date= (the DAG has no start_date)")
    rendered_task = task.prepare_for_execution()
    context = _context(rendered_task, logical_date, params, data_interval, run_id)
    rendered_task.render_template_fields(context)  # type: ignore[arg-type]  # a plain dict of the same keys
    inv = rendered_task.invocation()
    spec = inv.venv_spec
    pc = inv.profile_config
    profile: Any = None
    if pc is not None and pc.conn_id and connections and pc.conn_id in connections:
        conn = connections[pc.conn_id]
        if isinstance(conn, Mapping):
            conn = SimpleNamespace(
                conn_id=pc.conn_id,
                **{k: conn.get(k) for k in ("conn_type", "host", "port", "login", "password", "schema", "extra")},
            )
        profile = profile_from_connection(conn, pc.profile_name, pc.target_name, pc.profile_args)
    elif pc is not None:
        profile = resolve_profile(pc, inv.project_dir)
    mask = Masker(profile.secrets if isinstance(profile, RenderedProfile) else ())
    profiles_yml: str | None = None
    if isinstance(profile, RenderedProfile):
        assert pc is not None  # a rendered profile is made from pc
        profiles_yml = mask.yaml(profile.profiles_yml)
        source = f"from Airflow connection {pc.conn_id!r} (written to {PROFILES_DIR}/profiles.yml, mode 0600)"
    elif isinstance(profile, Path):
        try:
            profiles_yml = mask.yaml(profile.read_text(encoding="utf-8"))
        except OSError:
            profiles_yml = None
        source = f"file {profile} (copied to {PROFILES_DIR}/profiles.yml)"
    else:
        source = "none: dbt looks for profiles.yml itself"
    env: dict[str, str] = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    for name, value in inv.env.items():
        env[name] = mask.value(name, value)
    if isinstance(profile, RenderedProfile):
        env.update({name: MASK for name in profile.env})
    vars_json = canonical_vars(inv.dbt_vars)
    shown_vars = mask.value("vars", inv.dbt_vars)
    shown_vars_json = (
        canonical_vars(shown_vars)
        if isinstance(shown_vars, Mapping)
        else (mask.value("vars", vars_json) if vars_json else None)
    )
    # the argv run_dbt builds (worker.run.run_dbt), paths as placeholders
    args = list(inv.command_args)
    project = f"{WORKSPACE_DIR}/project"
    profile_args: list[str] = []
    if isinstance(profile, (RenderedProfile, Path)):
        profile_args = ["--profiles-dir", PROFILES_DIR]
    if pc is not None:
        profile_args += profile_flags(pc, inv.project_dir, profile)
    argv = build_dbt_argv(
        f"{VENV_DIR}/bin/dbt", args, project, profile_args, f"{project}/target", f"{project}/logs", shown_vars_json
    )
    return TaskPlan(
        task_id=task.task_id,
        command=rendered_task.dbt_command,
        dbt_args=tuple(args),
        argv=tuple(argv),
        venv_key=venv_key(spec),
        requirements=normalise_requirements(spec.requirements),
        python=spec.python,
        env=env,
        profile_source=source,
        profiles_yml=profiles_yml,
        vars=shown_vars,
        vars_json=shown_vars_json,
        project_dir=str(inv.project_dir),
        logical_date=context["logical_date"],
        install_deps=inv.install_deps,
        rendered={name: getattr(rendered_task, name) for name in rendered_task.template_fields},
    )
