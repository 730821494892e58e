"""The public face: ``DbtDag`` and ``DbtTaskGroup``.

Both do the same thing into a different container: load the manifest, select, plan, render.
Nothing here runs dbt or imports it: this is what the DAG processor executes every few seconds.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, TaskGroup
from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.definitions._internal.templater import LiteralValue

from manifest_dag.core import settings
from manifest_dag.core.config import DocsConfig, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig
from manifest_dag.core.errors import ConfigError, ManifestError
from manifest_dag.core.gc import paused_gc
from manifest_dag.core.object_store import is_url, shown
from manifest_dag.core.task_settings import CALLBACK_KEYS, DURATION_KEYS, NodeSettingsError
from manifest_dag.operators import OPERATOR_FOR_COMMAND, DbtDocsOperator
from manifest_dag.scheduler.plan import RenderPlan, TaskSpec
from manifest_dag.scheduler.plan_cache import PlannedManifest, cached_plan
from manifest_dag.scheduler.project import plan_project as _plan_project
from manifest_dag.scheduler.render import asset_outlets, link, render_one, render_plan, task_ends
from manifest_dag.scheduler.shared_plans import SharedPlans

if TYPE_CHECKING:
    from manifest_dag.scheduler.manifest import Manifest

log = logging.getLogger(__name__)

#: operator arguments the renderer sets per task; operator_args may not override them
_RESERVED = frozenset(
    {
        "task_id",
        "task_group",
        "dag",
        "dbt_command",
        "select",
        "exclude",
        "selector",
        "indirect_selection",
        "doc_md",
        "outlets",
        "task_display_name",
        "project_dir",
        "manifest_path",
        "partial_parse_path",
        "manifest_conn_id",
        "shared_state_url",
        "shared_state_conn_id",
        "profile_config",
        "venv_config",
        "py_requirements",
        "dbt_vars",
        "secret_vars",
        "env",
        "install_deps",
        "openlineage_namespace",
    }
)


def _check(value: Any, cls: type, name: str, required: bool = False) -> Any:
    if value is None and not required:
        return None
    if not isinstance(value, cls):
        raise ConfigError(f"{name} must be a {cls.__name__}, got {type(value).__name__}: {value!r}")
    return value


def plan_project(
    project_config: ProjectConfig,
    render_config: RenderConfig | None = None,
    *,
    id_prefix: int = 0,
    manifest_file: Path | None = None,
) -> tuple[Manifest, RenderPlan]:
    """Load, select and plan (see ``manifest_dag.scheduler.project``): the manifest and its plan.

    ``manifest_file``: the local copy of a manifest in object storage (``manifest_file_of``).
    """
    local = manifest_file or manifest_file_of(project_config)
    try:
        planned = _plan_project(local, render_config, id_prefix=id_prefix)
    except ManifestError as exc:
        if local == Path(str(project_config.manifest_path)):
            raise
        raise ManifestError(f"{exc} (the local copy of {shown(str(project_config.manifest_path))})") from None
    return planned.manifest, planned.plan


def manifest_file_of(project_config: ProjectConfig) -> Path:
    """The manifest as a local file: the path itself, or the fresh (or last good) local copy of
    an object-store URL (``scheduler.remote_manifest``)."""
    path = project_config.manifest_path
    if isinstance(path, str) and is_url(path):
        from manifest_dag.scheduler.remote_manifest import local_manifest

        return local_manifest(path, project_config.manifest_conn_id, _plan_cache_dir(project_config))
    return Path(path)


class _OperatorFactory:
    """Turns a TaskSpec into an operator with the DAG-wide settings; cheap per call."""

    def __init__(
        self,
        project_config: ProjectConfig,
        profile_config: ProfileConfig | None,
        venv_config: VenvConfig,
        operator_args: Mapping[str, Any],
        callbacks: Mapping[str, Any] | None = None,
        converters: Mapping[str, Any] | None = None,
        openlineage_namespace: str | None = None,
    ) -> None:
        bad = _RESERVED.intersection(operator_args)
        if bad:
            raise ConfigError(f"operator_args may not set {sorted(bad)}: the renderer sets them per task")
        self.common = {
            "project_dir": str(project_config.project_dir) if project_config.project_dir else "",
            "manifest_path": str(project_config.manifest_path),
            "partial_parse_path": project_config.partial_parse_path,
            "manifest_conn_id": project_config.manifest_conn_id,
            "shared_state_url": project_config.shared_state_url,
            "shared_state_conn_id": project_config.shared_state_conn_id,
            "profile_config": profile_config,
            "venv_config": venv_config,
            "dbt_vars": dict(project_config.dbt_vars) or None,
            "secret_vars": dict(project_config.secret_vars) or None,
            "env": dict(project_config.env_vars),
            "install_deps": project_config.install_deps,
            **({"openlineage_namespace": openlineage_namespace} if openlineage_namespace else {}),
            **operator_args,
        }
        self.callbacks = callbacks or {}
        self.converters = converters or {}

    def settings_kwargs(self, spec: TaskSpec) -> dict[str, Any]:
        """The operator arguments a task's planned settings (its nodes' meta) make.

        Over ``operator_args`` (and so over the DAG's ``default_args``); the dbt values are added
        to the DAG-wide vars, env and flags as ``LiteralValue``: a manifest is never a template.
        """
        out: dict[str, Any] = {}
        for key, value in (spec.settings or {}).items():
            if key in DURATION_KEYS:
                out[key] = timedelta(seconds=value)
            elif key in CALLBACK_KEYS:
                fns: list[Any] = []
                for name in value:
                    fn = self.callbacks[name]
                    fns.extend(fn if isinstance(fn, tuple) else (fn,))
                out[key] = fns[0] if len(fns) == 1 else fns
            elif key in ("dbt_vars", "env"):
                base = self.common.get(key) or {}
                out[key] = {**base, **{k: LiteralValue(v) for k, v in value.items()}}
            elif key == "dbt_flags":
                out[key] = [*(self.common.get("dbt_flags") or ()), *(LiteralValue(f) for f in value)]
            elif key == "profile":
                out["profile_config"] = self._profile(spec, value)
            else:
                out[key] = value
        return out

    def _profile(self, spec: TaskSpec, fields: Mapping[str, Any]) -> ProfileConfig:
        base: ProfileConfig | None = self.common.get("profile_config")
        where = spec.node_ids[0] if spec.node_ids else spec.task_id
        try:
            if base is None:
                return ProfileConfig(**fields)
            changes = dict(fields)
            if "conn_id" in changes:  # one or the other, as in ProfileConfig
                changes.setdefault("profiles_yml_path", None)
            elif "profiles_yml_path" in changes:
                changes.setdefault("conn_id", None)
            return dataclasses.replace(base, **changes)
        except (ConfigError, TypeError) as exc:
            raise NodeSettingsError(where, "profile", f"does not make a profile: {exc}") from None

    def __call__(self, spec: TaskSpec, group: TaskGroup | None, dag: DAG) -> BaseOperator | TaskGroup | None:
        kwargs = {**self.common, **self.settings_kwargs(spec)} if spec.settings else self.common
        shown: dict[str, Any] = {"task_display_name": spec.display_name} if spec.display_name else {}
        ids = {"task_id": spec.local_id, "task_group": group, "dag": dag, **shown}
        if not spec.command:  # a node only a converter makes a task of (an exposure ...)
            from airflow.providers.standard.operators.empty import EmptyOperator

            from manifest_dag.scheduler.converters import base_operator_arguments

            airflow_only = {k: v for k, v in kwargs.items() if k in base_operator_arguments()}
            args = {**airflow_only, **ids, "doc_md": spec.doc_md, "outlets": asset_outlets(spec.outlet_uri)}
            return self._made(spec, EmptyOperator, args, dag)
        args = {
            **ids,
            # manifest text (folder and file names) is never a Jinja template: render it as is
            "select": LiteralValue(spec.select),
            "exclude": LiteralValue(spec.exclude),
            "selector": spec.selector,
            "indirect_selection": spec.indirect_selection,
            "doc_md": spec.doc_md,
            "outlets": asset_outlets(spec.outlet_uri),
            **kwargs,
        }
        return self._made(spec, OPERATOR_FOR_COMMAND[spec.command], args, dag)

    def _made(
        self, spec: TaskSpec, cls: type[BaseOperator], args: dict[str, Any], dag: DAG
    ) -> BaseOperator | TaskGroup | None:
        if not self.converters:
            return cls(**args)
        from manifest_dag.scheduler.converters import convert

        return convert(spec, cls, args, self.converters, dag)


def _task_scope(
    dag: DAG,
    parent_group: TaskGroup | None,
    plan: PlannedManifest,
    enabled: bool,
    extra: str | None = None,
    plan_has_converters: bool = False,
) -> str | None | bool:
    """What this parse must build: ``True`` everything, ``False`` nothing, or one task's plan id.

    Airflow's task runner parses the whole DAG file before every task, inside a parsing context
    naming the DAG and the task. Only that task is looked up afterwards, so building the other
    thousands is wasted; outside a task (DAG processor, ``dag.test()``, tests) both names are None.
    ``extra`` is a task outside the plan (the docs task), built alone the same way.
    """
    if not enabled or settings.is_off(settings.TASK_SCOPED):
        return True
    from airflow.sdk import get_parsing_context

    ctx = get_parsing_context()
    if ctx.dag_id is None or ctx.task_id is None:
        return True
    if ctx.dag_id != dag.dag_id:
        return False  # another DAG of the same file is running a task
    prefix = f"{parent_group.group_id}." if parent_group is not None and parent_group.group_id else ""
    if not ctx.task_id.startswith(prefix):
        return False  # a task of the user's DAG outside this DbtTaskGroup
    local = ctx.task_id[len(prefix) :]
    if local in plan or (extra is not None and local == extra):
        return local
    log.log(
        logging.INFO if plan_has_converters else logging.WARNING,
        "manifest-dag: task %s is not in the plan of %s (a converter's own task, a renamed model, or "
        "the manifest changed since scheduling); building the full DAG instead of the task alone",
        ctx.task_id,
        dag.dag_id,
    )
    return True


def _plan_cache_dir(project_config: ProjectConfig) -> Path | bool:
    """``ProjectConfig.plan_cache_dir`` as ``cached_plan`` takes it: True (default), False or a folder."""
    value = project_config.plan_cache_dir
    if value is None or value is True:
        return True
    if value is False:
        return False
    return Path(value)


def build_into(
    dag: DAG,
    parent_group: TaskGroup | None,
    project_config: ProjectConfig,
    profile_config: ProfileConfig | None,
    venv_config: VenvConfig | None,
    render_config: RenderConfig | None,
    operator_args: Mapping[str, Any] | None,
    docs_config: DocsConfig | None = None,
) -> tuple[PlannedManifest, dict[str, BaseOperator | TaskGroup]]:
    """Plan (or read the cached plan) and create the operators this parse needs.

    Returns the planned manifest, whose ``plan`` is decoded on first use: a task-scoped parse
    never decodes the whole plan.
    """
    _check(project_config, ProjectConfig, "project_config", required=True)
    _check(profile_config, ProfileConfig, "profile_config")
    _check(venv_config, VenvConfig, "venv_config")
    _check(render_config, RenderConfig, "render_config")
    _check(docs_config, DocsConfig, "docs_config")
    if operator_args is not None and not isinstance(operator_args, Mapping):
        raise ConfigError(f"operator_args must be a dict, got {type(operator_args).__name__}")
    render_config = render_config or RenderConfig()
    # the ids are planned to fit Airflow's limit with the DbtTaskGroup's dotted prefix in front
    id_prefix = len(parent_group.group_id) + 1 if parent_group is not None and parent_group.group_id else 0
    manifest_file = manifest_file_of(project_config)
    planned, _source = cached_plan(
        manifest_file,
        render_config,
        lambda: plan_project(project_config, render_config, id_prefix=id_prefix, manifest_file=manifest_file),
        cache_dir=_plan_cache_dir(project_config),
        id_prefix=id_prefix,
        shared=SharedPlans.configured(project_config.shared_state_url, project_config.shared_state_conn_id),
    )
    if venv_config is None:
        if planned.dbt_version == "unknown":
            raise ConfigError(
                f"{project_config.manifest_path}: the manifest does not record its dbt version; give "
                "venv_config=VenvConfig(py_requirements=[...]) naming the dbt to run"
            )
        venv_config = VenvConfig.for_manifest(planned.dbt_version, planned.adapter_type)
    factory = _OperatorFactory(
        project_config,
        profile_config,
        venv_config,
        operator_args or {},
        render_config.callbacks,
        render_config.node_converters,
        render_config.asset_namespace,
    )
    docs_id = docs_config.task_id if docs_config is not None else None
    if docs_id is not None and docs_id in planned:
        raise ConfigError(
            f"DocsConfig.task_id {docs_id!r} is a task of the dbt plan already: give the docs task another id"
        )
    scope = _task_scope(
        dag,
        parent_group,
        planned,
        render_config.task_scoped,
        extra=docs_id,
        plan_has_converters=bool(render_config.node_converters),
    )
    if scope is True:
        with paused_gc():  # thousands of live operators: collecting while creating them finds nothing
            tasks = render_plan(planned.plan, dag=dag, parent_group=parent_group, make_operator=factory)
    elif scope is False or scope == docs_id:
        tasks = {}
    else:
        spec, groups = planned.task(str(scope))
        tasks = render_one(spec, groups, dag=dag, parent_group=parent_group, make_operator=factory)
    if docs_config is not None and (scope is True or scope == docs_id):
        docs = _docs_task(docs_config, planned, factory, dag, parent_group)
        if scope is True:
            for made in list(tasks.values()):
                for task in task_ends(made, first=False):  # a converter's task group: its last tasks
                    if not task.downstream_task_ids:
                        link(task, docs)  # the site shows the project as the whole run left it
        tasks[docs_config.task_id] = docs
    return planned, tasks


def _docs_task(
    docs: DocsConfig, planned: PlannedManifest, factory: _OperatorFactory, dag: DAG, parent_group: TaskGroup | None
) -> BaseOperator:
    """The ``dbt docs generate`` task, with which dbt nodes each of the DAG's tasks runs (the
    plugin's per-task link); its ids are the DAG's (with the DbtTaskGroup's prefix)."""
    prefix = f"{parent_group.group_id}." if parent_group is not None and parent_group.group_id else ""
    nodes = {f"{prefix}{spec.task_id}": list(spec.node_ids) for spec in planned.plan.tasks if spec.node_ids}
    common = {k: v for k, v in factory.common.items() if k not in ("full_refresh",)}
    return DbtDocsOperator(
        task_id=docs.task_id,
        task_group=parent_group,
        dag=dag,
        docs_dir=docs.docs_dir,
        docs_conn_id=docs.conn_id,
        static=docs.static,
        task_nodes=nodes,
        **common,
    )


class _DbtContainer:
    """What ``DbtDag`` and ``DbtTaskGroup`` share: build the plan's tasks into themselves."""

    _dbt_planned: PlannedManifest

    def _build_dbt(self, dag: DAG, parent_group: TaskGroup | None, *configs: Any) -> None:
        """``configs``: project, profile, venv and render config, operator_args, docs config
        (``build_into``'s order)."""
        self._dbt_planned, _tasks = build_into(dag, parent_group, *configs)

    @property
    def dbt_plan(self) -> RenderPlan:
        """The plan this was built from (all tasks, also when this parse built only one)."""
        return self._dbt_planned.plan


class DbtDag(_DbtContainer, DAG):
    """An Airflow DAG holding a dbt project's selected nodes as tasks.

    Every keyword besides the configs goes to Airflow's ``DAG``.
    """

    def __init__(
        self,
        *,
        project_config: ProjectConfig,
        profile_config: ProfileConfig | None = None,
        venv_config: VenvConfig | None = None,
        render_config: RenderConfig | None = None,
        operator_args: Mapping[str, Any] | None = None,
        docs_config: DocsConfig | None = None,
        **dag_kwargs: Any,
    ) -> None:
        super().__init__(**dag_kwargs)
        self._build_dbt(
            self, None, project_config, profile_config, venv_config, render_config, operator_args, docs_config
        )


class DbtTaskGroup(_DbtContainer, TaskGroup):
    """A TaskGroup holding a dbt project's selected nodes, inside the user's own DAG."""

    def __init__(
        self,
        group_id: str = "dbt",
        *,
        project_config: ProjectConfig,
        profile_config: ProfileConfig | None = None,
        venv_config: VenvConfig | None = None,
        render_config: RenderConfig | None = None,
        operator_args: Mapping[str, Any] | None = None,
        docs_config: DocsConfig | None = None,
        **group_kwargs: Any,
    ) -> None:
        super().__init__(group_id=group_id, **group_kwargs)
        self._build_dbt(
            self.dag, self, project_config, profile_config, venv_config, render_config, operator_args, docs_config
        )
