"""Airflow operators that run one dbt command in a worker virtualenv.

Construction runs on the scheduler for every task of every parse, so ``__init__`` only stores
and checks arguments (cheap; no I/O). Everything heavy happens in ``execute`` on the worker,
through the worker side (``manifest_dag.worker``), which knows nothing of Airflow. The operator
hands it a ``DbtInvocation`` (``invocation()``) and keeps the running call's invoker for ``on_kill``.

Each operator also works alone in a plain DAG::

    DbtRunOperator(task_id="orders", project_dir="/dbt/shop", select=["orders"],
                   py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"],
                   profile_config=ProfileConfig(profile_name="shop", profiles_yml_path="..."))
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.definitions._internal.templater import LiteralValue

from manifest_dag.core import settings
from manifest_dag.core.config import (
    ProfileConfig,
    SecretVar,
    VenvConfig,
    check_secret_vars,
    check_switch,
    rendered_switch,
)
from manifest_dag.core.dbt import FULL_REFRESH_COMMANDS, FULL_REFRESH_FLAGS, check_dbt_flags, command_args
from manifest_dag.core.errors import ConfigError, DbtRunError, WorkspaceError
from manifest_dag.core.object_store import is_url
from manifest_dag.core.object_store import join as object_store_join
from manifest_dag.core.object_store import parent as object_store_parent
from manifest_dag.core.openlineage import check_namespace
from manifest_dag.core.specs import DbtInvocation

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk.definitions.context import Context


class Killable(Protocol):
    """What the operator keeps of the running dbt call: a way to stop it (Airflow's on_kill)."""

    def kill(self) -> None: ...


class DbtVenvOperator(BaseOperator):
    """Run ``dbt <command>`` in a cached worker virtualenv, on a temporary copy of the project."""

    template_fields: Sequence[str] = (
        "select",
        "exclude",
        "dbt_vars",
        "env",
        "dbt_flags",
        "project_dir",
        "full_refresh",
        "install_deps",
        "compiled_sql",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"dbt_vars": "json", "env": "json", "compiled_sql": "sql"}
    #: Airflow 3 stores the rendered fields again after ``execute`` (its task runner's
    #: ``finalize``), so ``compiled_sql``, set as dbt finishes, shows in the task's rendered fields
    overwrite_rtif_after_execution: bool = True
    ui_color = "#fde5dd"
    ui_fgcolor = "#000000"
    dbt_command: ClassVar[str] = ""
    #: the running dbt call's invoker while ``execute`` runs (for ``on_kill``), else None
    _invoker: Killable | None = None
    #: what dbt reported on, once it ran: (unique id, status, rows affected) per node (OpenLineage)
    _lineage_results: tuple[tuple[str, str, int | None], ...] = ()
    #: the fields of the dbt target the run used that name the warehouse (OpenLineage's namespace)
    _lineage_target: Mapping[str, Any] | None = None
    #: the running dbt call's secrets as a ``Masker``, once ``execute`` built it
    _mask: Any = None

    def __init__(
        self,
        *,
        project_dir: str | Path,
        select: Sequence[str] | LiteralValue = (),
        exclude: Sequence[str] | LiteralValue = (),
        selector: str | None = None,
        indirect_selection: str | None = None,
        profile_config: ProfileConfig | None = None,
        venv_config: VenvConfig | None = None,
        py_requirements: Sequence[str] | None = None,
        manifest_path: str | Path | None = None,
        partial_parse_path: str | Path | None = None,
        manifest_conn_id: str | None = None,
        shared_state_url: str | None = None,
        shared_state_conn_id: str | None = None,
        dbt_vars: Mapping[str, Any] | str | None = None,
        secret_vars: Mapping[str, SecretVar] | None = None,
        env: Mapping[str, str] | None = None,
        full_refresh: bool | str = False,
        dbt_flags: Sequence[str] = (),
        install_deps: bool | str = False,
        artifacts_callback: Callable[[Path, Any], None] | None = None,
        on_warning_callback: Callable[[Any, list[dict[str, Any]]], None] | None = None,
        skip_exit_code: int | None = None,
        append_env: bool = True,
        openlineage_namespace: str | None = None,
        dbt_command: str | None = None,
        **kwargs: Any,
    ) -> None:
        # route the task to the workers that carry its venv (VenvConfig.queue) unless the task names
        # a queue itself (``queue=`` or DbtDag's operator_args); it wins over the DAG's default_args
        if venv_config is not None and venv_config.queue is not None and kwargs.get("queue") is None:
            kwargs["queue"] = venv_config.queue
        super().__init__(**kwargs)
        where = f"{type(self).__name__}(task_id={self.task_id!r})"
        if dbt_command is not None:
            self.dbt_command = dbt_command  # type: ignore[misc]
        if not self.dbt_command:
            raise ConfigError(f"{where}: dbt_command is required for DbtVenvOperator")
        if venv_config is None:
            if not py_requirements:
                raise ConfigError(f"{where}: give venv_config or py_requirements (the dbt to run)")
            venv_config = VenvConfig(py_requirements=py_requirements)
        elif py_requirements:
            raise ConfigError(f"{where}: give venv_config or py_requirements, not both")
        # Airflow's "render as is" wrapper: the renderer passes the manifest's selectors in it, so a
        # folder named ``x{{ conn.db.password }}`` is a folder name, never a template; the DAG
        # author's own select/exclude stay templated
        literal = {
            name for name, value in (("select", select), ("exclude", exclude)) if isinstance(value, LiteralValue)
        }
        if literal:
            self.template_fields = tuple(f for f in type(self).template_fields if f not in literal)
        select, exclude = (v.value if isinstance(v, LiteralValue) else v for v in (select, exclude))
        self.project_dir = str(project_dir)
        self.select = [select] if isinstance(select, str) else list(select)
        self.exclude = [exclude] if isinstance(exclude, str) else list(exclude)
        self.selector = selector
        self.indirect_selection = indirect_selection
        self.profile_config = profile_config
        self.venv_config = venv_config
        self.manifest_path = str(manifest_path) if manifest_path else None
        self.partial_parse_path = str(partial_parse_path) if partial_parse_path else None
        # a LiteralValue item of dbt_vars, env or dbt_flags is passed to dbt as is, never rendered
        # (the renderer gives a node's meta settings so): kept apart, added once rendered
        dbt_vars, self._literal_vars = _literal_items(dbt_vars)
        env, self._literal_env = _literal_items(env)
        dbt_flags, self._literal_flags = _literal_list(dbt_flags)
        self._literals_merged = False
        #: the Connection for a manifest_path/partial_parse_path in object storage
        self.manifest_conn_id = manifest_conn_id
        #: object storage where the workers share partial-parse state (``ProjectConfig.shared_state_url``)
        self.shared_state_url = shared_state_url
        self.shared_state_conn_id = shared_state_conn_id
        self.dbt_vars = dict(dbt_vars) if isinstance(dbt_vars, Mapping) else dbt_vars
        # not a template field: a secret's value is read on the worker as the task runs, so Airflow
        # never renders, stores or shows it (see SecretVar)
        all_vars = {**dbt_vars, **self._literal_vars} if isinstance(dbt_vars, Mapping) else dbt_vars
        self.secret_vars = dict(check_secret_vars(secret_vars, where, all_vars))
        self.env = dict(env or {})
        # True, False or a template rendered as the task runs ("{{ params.full_refresh }}")
        self.full_refresh = check_switch(full_refresh, f"{where}: full_refresh")
        self.dbt_flags = list(check_dbt_flags(dbt_flags, where, self.dbt_command))
        check_dbt_flags(self._literal_flags, where, self.dbt_command)
        self.install_deps = check_switch(install_deps, f"{where}: install_deps")
        self.artifacts_callback = artifacts_callback
        if on_warning_callback is not None and not callable(on_warning_callback):
            raise ConfigError(
                f"{where}: on_warning_callback must be a callable (context, warnings), got {on_warning_callback!r}"
            )
        self.on_warning_callback = on_warning_callback
        if skip_exit_code is not None and (
            not isinstance(skip_exit_code, int) or isinstance(skip_exit_code, bool) or skip_exit_code <= 0
        ):
            raise ConfigError(
                f"{where}: skip_exit_code must be a dbt exit code above 0 (or None), got {skip_exit_code!r}"
            )
        self.skip_exit_code = skip_exit_code
        if not isinstance(append_env, bool):
            raise ConfigError(f"{where}: append_env must be True or False, got {append_env!r}")
        self.append_env = append_env
        #: the namespace of the task's OpenLineage datasets; None: the dbt target's (see lineage)
        self.openlineage_namespace = check_namespace(openlineage_namespace, f"{where}: openlineage_namespace")
        #: the SQL dbt compiled for the task's nodes, set as dbt finishes (a rendered field)
        self.compiled_sql = ""

    @property
    def _where(self) -> str:
        return f"{type(self).__name__}(task_id={self.task_id!r})"

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Airflow's rendering, then the literal (never rendered) vars, env and flags added, so the
        rendered fields Airflow stores show what dbt got."""
        super().render_template_fields(context, jinja_env)
        if not self._literals_merged:
            self.dbt_vars, self.env, self.dbt_flags = self._with_literals()
            self._literals_merged = True

    def _with_literals(self) -> tuple[Any, dict[str, Any], list[Any]]:
        """dbt_vars, env and dbt_flags with the literal items added (over the templated ones)."""
        if self._literals_merged:
            return self.dbt_vars, self.env, self.dbt_flags
        dbt_vars = self.dbt_vars
        if self._literal_vars:
            dbt_vars = {**(dbt_vars if isinstance(dbt_vars, Mapping) else {}), **self._literal_vars}
        return dbt_vars, {**(self.env or {}), **self._literal_env}, [*self.dbt_flags, *self._literal_flags]

    def _rendered_flags(self) -> list[str]:
        """``dbt_flags`` as rendered: an item a template left empty is dropped (a flag chosen per
        run: ``"{{ '--full-refresh' if params.full_refresh else '' }}"``), a list a native template
        gave is spread, and the result is checked again, since rendering may have made a flag."""
        flags: list[str] = []
        for item in self._with_literals()[2]:
            for value in item if isinstance(item, (list, tuple)) else (item,):
                text = value if isinstance(value, str) else str(value)
                if text.strip():
                    flags.append(text.strip() if text.strip().startswith("-") else text)
        return list(check_dbt_flags(flags, f"{self._where} (rendered)", self.dbt_command))

    def dbt_args(self) -> list[str]:
        """The dbt argv after ``dbt`` (before the operator's managed flags).

        Also called where nothing is rendered (golden files, ``inspect``): there a full_refresh
        template adds nothing; ``invocation()`` refuses one that is still a template.
        """
        args = command_args(self.dbt_command, self.select, self.exclude, self.selector, self.indirect_selection)
        flags = self._rendered_flags()
        refresh = self.full_refresh
        if isinstance(refresh, str) and "{{" in refresh:
            refresh = False  # not rendered (yet): decided as the task runs
        wanted = rendered_switch(refresh, f"{self._where}: full_refresh")
        if wanted and self.dbt_command in FULL_REFRESH_COMMANDS and not set(flags) & set(FULL_REFRESH_FLAGS):
            args.append("--full-refresh")
        args += flags
        return args

    def _partial_parse_url(self) -> str | None:
        """The msgpack in object storage: ``partial_parse_path`` as a URL, else the one beside a
        manifest in object storage (dbt CI publishes both)."""
        if self.partial_parse_path:
            return self.partial_parse_path if is_url(self.partial_parse_path) else None
        if self.manifest_path and is_url(self.manifest_path):
            return object_store_join(object_store_parent(self.manifest_path), "partial_parse.msgpack")
        return None

    def invocation(self) -> DbtInvocation:
        """The dbt call this task's (rendered) arguments describe: all the worker side needs."""
        rendered_switch(self.full_refresh, f"{self._where}: full_refresh")  # a template left unrendered fails here
        dbt_vars, env, _flags = self._with_literals()
        return DbtInvocation(
            command_args=tuple(self.dbt_args()),
            project_dir=Path(self.project_dir),
            venv_spec=self.venv_config.to_spec(),
            profile_config=self.profile_config,
            manifest_path=Path(self.manifest_path) if self.manifest_path and not is_url(self.manifest_path) else None,
            partial_parse_path=(
                Path(self.partial_parse_path)
                if self.partial_parse_path and not is_url(self.partial_parse_path)
                else None
            ),
            partial_parse_url=self._partial_parse_url(),
            object_conn_id=self.manifest_conn_id,
            shared_state_url=self.shared_state_url,
            shared_state_conn_id=self.shared_state_conn_id,
            cache_dir=settings.venv_cache_dir(self.venv_config.cache_dir, airflow_config=True),
            dbt_vars=dbt_vars,
            secret_vars=self.secret_vars,
            env={str(k): str(v) for k, v in env.items()},
            install_deps=rendered_switch(self.install_deps, f"{self._where}: install_deps"),
            warm_processes=self.venv_config.warm_processes,
            warm_scope=self.venv_config.warm_scope,
            append_env=self.append_env,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        """Run dbt on this worker, log as it goes, return a small summary for XCom."""
        if not self.project_dir:
            raise WorkspaceError(f"task {self.task_id}: no project_dir; set ProjectConfig(project_dir=...)")
        from manifest_dag.worker.run import run_dbt  # the worker side: loaded only where a task runs

        def callback(target: Path) -> None:
            self._on_artifacts(target, context)

        def show_compiled(summary: Any) -> None:
            self.compiled_sql = summary.compiled_sql()  # masked like the log; failed or not
            self._lineage_results = tuple(
                (r.unique_id, r.status, _rows_affected(r.adapter_response)) for r in summary.results
            )

        try:
            outcome = run_dbt(
                self.invocation(),
                log=self.log.info,
                artifacts_callback=callback if self._wants_artifacts() else None,
                on_invoker=self._keep_invoker,
                on_results=show_compiled,
                on_mask=self._keep_mask,
            )
        except DbtRunError as exc:
            if self.skip_exit_code is not None and exc.exit_code == self.skip_exit_code:
                from manifest_dag.core.airflow_compat import skip_exception

                raise skip_exception()(
                    f"dbt exited with {exc.exit_code}, this task's skip_exit_code: skipped. {exc}"
                ) from exc
            raise
        finally:
            self._invoker = None
        summary = outcome.summary
        self._lineage_target = getattr(outcome, "target_fields", None)
        warnings = summary.warned() if summary is not None else []
        if warnings and self.on_warning_callback is not None:
            # dbt succeeded, but tests or freshness checks warned: the author's signal (a failed
            # task has Airflow's on_failure_callback). What it raises fails the task.
            self.on_warning_callback(context, warnings)
        return {
            "command": self.dbt_command,
            "exit_code": outcome.exit_code,
            "seconds": round(outcome.duration, 3),
            "partial_parse_reused": outcome.reparsed is None,
            "statuses": summary.counts() if summary is not None else {},
            "node_seconds": round(summary.node_seconds, 3) if summary is not None else None,
            "warnings": warnings,
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """What the task read and wrote, for Airflow's OpenLineage provider (called by it after the
        task, only when it is installed and enabled): see ``scheduler.lineage``."""
        from manifest_dag.scheduler.lineage import openlineage_facets

        return openlineage_facets(
            self.manifest_path, self._lineage_namespace(), self._lineage_results, where=self._where
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """The same for a failed task: what dbt read, and what it built before it failed."""
        return self.get_openlineage_facets_on_complete(task_instance)

    def _lineage_namespace(self) -> str | None:
        """The DAG's namespace, else the one OpenLineage names the dbt target the run used."""
        if self.openlineage_namespace:
            return self.openlineage_namespace
        if not self._lineage_target:
            return None
        from manifest_dag.core.openlineage import openlineage_namespace

        try:
            return openlineage_namespace(self._lineage_target)
        except ConfigError as exc:
            self.log.info("manifest-dag: no OpenLineage namespace for the dbt target: %s", exc)
            return None

    def _keep_invoker(self, invoker: Killable) -> None:
        self._invoker = invoker

    def _keep_mask(self, mask: Any) -> None:
        """The call's ``Masker`` (its secrets), for what a subclass does with dbt's files."""
        self._mask = mask

    def _wants_artifacts(self) -> bool:
        """Whether dbt's target folder is handed over as dbt finishes (``_on_artifacts``)."""
        return self.artifacts_callback is not None

    def _on_artifacts(self, target: Path, context: Any) -> None:
        """dbt's target folder, as dbt finished (failed or not): the user's ``artifacts_callback``."""
        if self.artifacts_callback is not None:
            self.artifacts_callback(target, context)

    def on_kill(self) -> None:
        """Airflow stops the task (timeout, mark-failed): stop dbt with it."""
        invoker = self._invoker
        if invoker is not None:
            invoker.kill()


def _literal_items(value: Any) -> tuple[Any, dict[str, Any]]:
    """A mapping's LiteralValue items taken out (unwrapped); anything else as it is."""
    if not isinstance(value, Mapping) or not any(isinstance(v, LiteralValue) for v in value.values()):
        return value, {}
    plain = {k: v for k, v in value.items() if not isinstance(v, LiteralValue)}
    return plain, {k: v.value for k, v in value.items() if isinstance(v, LiteralValue)}


def _literal_list(value: Any) -> tuple[Any, list[str]]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        return value, []
    literal = [v.value for v in value if isinstance(v, LiteralValue)]
    return ([v for v in value if not isinstance(v, LiteralValue)] if literal else value), literal


def _rows_affected(response: Mapping[str, Any] | None) -> int | None:
    """The row count dbt's adapter reported for a node (``rows_affected``), if it is a number."""
    value = (response or {}).get("rows_affected")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class DbtRunOperator(DbtVenvOperator):
    dbt_command = "run"
    ui_color = "#fde5dd"


class DbtTestOperator(DbtVenvOperator):
    dbt_command = "test"
    ui_color = "#e3f1dc"


class DbtSeedOperator(DbtVenvOperator):
    """``dbt seed``; with ``skip_unchanged``, skipped when its CSV files are as at the last load.

    The decision is taken here, on the worker, as the task runs: the SHA-256 of the CSV files
    (``seed_files``, relative to ``project_dir``), of the seed's table-shaping config
    (``seed_config``, a digest the planner makes from the manifest) and of the profile and target
    is compared with what the last successful load of this task recorded in the Airflow Variable
    ``manifest_dag.seed_state.<dag_id>.<task_id>``. The same: ``AirflowSkipException`` (the DAG's
    tasks after it run anyway: the planner gives them the ``none_failed`` trigger rule). Otherwise
    the record is removed, dbt runs, and a successful load records the new state. ``full_refresh``
    always loads. Delete the Variable to load again by hand.
    """

    dbt_command = "seed"
    ui_color = "#e1ecf7"

    def __init__(
        self,
        *,
        skip_unchanged: bool = False,
        seed_files: Sequence[str] = (),
        seed_config: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(skip_unchanged, bool):
            raise ConfigError(f"{self._where}: skip_unchanged must be True or False, got {skip_unchanged!r}")
        files = [seed_files] if isinstance(seed_files, str) else list(seed_files)
        if not all(isinstance(f, str) and f and not Path(f).is_absolute() for f in files):
            raise ConfigError(
                f"{self._where}: seed_files must be CSV paths relative to project_dir, got {seed_files!r}"
            )
        if skip_unchanged and not files:
            raise ConfigError(f"{self._where}: skip_unchanged needs seed_files (the CSVs this task loads)")
        self.skip_unchanged = skip_unchanged
        self.seed_files = files
        self.seed_config = str(seed_config)

    def seed_state(self) -> str | None:
        """What a load depends on, as a digest; None when a CSV cannot be read (then it loads)."""
        digest = hashlib.sha256()
        pc = self.profile_config
        digest.update(
            repr((self.seed_config, pc.profile_name if pc else None, pc.target_name if pc else None)).encode()
        )
        for name in sorted(self.seed_files):
            try:
                with (Path(self.project_dir) / name).open("rb") as fh:
                    digest.update(name.encode() + b"\0")
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(chunk)
            except OSError:
                return None
        return digest.hexdigest()

    def execute(self, context: Any) -> dict[str, Any]:
        if not self.skip_unchanged:
            return super().execute(context)
        from airflow.sdk import Variable
        from airflow.sdk.exceptions import AirflowSkipException

        name = f"manifest_dag.seed_state.{self.dag_id}.{self.task_id}"
        state = self.seed_state()
        refresh = rendered_switch(self.full_refresh, f"{self._where}: full_refresh")
        try:
            recorded = Variable.get(name, default=None)
        except Exception as exc:  # noqa: BLE001 - no record to trust: load
            self.log.warning("seed state %s could not be read (%s); loading the seed", name, exc)
            recorded = None
        if state is not None and recorded == state and not refresh:
            raise AirflowSkipException(
                f"seed unchanged since its last successful load ({', '.join(self.seed_files)}; state "
                f"{state[:12]} in Airflow Variable {name}): skipped, the tasks after it run. Delete the "
                "Variable, or run with full_refresh, to load it again"
            )
        if recorded is not None:
            Variable.delete(name)  # a failed or stopped load must not count as the last good one
        outcome = super().execute(context)
        if state is not None:
            Variable.set(name, state, description="manifest-dag: the seed's CSV and config at its last successful load")
            self.log.info("seed state %s recorded in Airflow Variable %s", state[:12], name)
        return outcome


class DbtSnapshotOperator(DbtVenvOperator):
    dbt_command = "snapshot"
    ui_color = "#efe3f5"


class DbtBuildOperator(DbtVenvOperator):
    dbt_command = "build"
    ui_color = "#fbeed5"


class DbtSourceFreshnessOperator(DbtVenvOperator):
    dbt_command = "source freshness"
    ui_color = "#e8f7f5"


class DbtRunOperationOperator(DbtVenvOperator):
    """``dbt run-operation <macro_name> --args <macro_args>``: one macro as a task (grants,
    vacuums, a table to drop before a load).

    ``macro_name`` and ``macro_args`` are templated; a mapping is sent as JSON (which is YAML, what
    dbt reads), a string as is. Like ``--vars``, the args are on dbt's command line: put secrets in
    ``secret_vars`` and read them with ``var()`` in the macro. There is no selection: the
    ``select``, ``exclude``, ``selector`` and ``indirect_selection`` arguments are refused.
    """

    dbt_command = "run-operation"
    template_fields: Sequence[str] = (*DbtVenvOperator.template_fields, "macro_name", "macro_args")
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **DbtVenvOperator.template_fields_renderers,
        "macro_args": "json",
    }
    ui_color = "#f3eedb"

    def __init__(self, *, macro_name: str, macro_args: Mapping[str, Any] | str | None = None, **kwargs: Any) -> None:
        where = f"{type(self).__name__}(task_id={kwargs.get('task_id')!r})"
        given = [name for name in ("select", "exclude", "selector", "indirect_selection") if kwargs.get(name)]
        if given:
            raise ConfigError(f"{where}: dbt run-operation runs one macro and takes no {', '.join(given)}")
        if kwargs.get("dbt_command", "run-operation") != "run-operation":
            raise ConfigError(f"{where}: dbt_command is run-operation here")
        kwargs.pop("dbt_command", None)
        super().__init__(**kwargs)
        if not isinstance(macro_name, str) or not macro_name.strip():
            raise ConfigError(f"{where}: macro_name must name a macro (a non-empty string), got {macro_name!r}")
        if macro_args is not None and not isinstance(macro_args, (Mapping, str)):
            raise ConfigError(f"{where}: macro_args must be a dict or a YAML string, got {type(macro_args).__name__}")
        self.macro_name = macro_name
        self.macro_args = dict(macro_args) if isinstance(macro_args, Mapping) else macro_args

    def dbt_args(self) -> list[str]:
        """``run-operation <macro> [--args <json>]`` and the task's flags."""
        args = ["run-operation", self.macro_name.strip()]
        if isinstance(self.macro_args, Mapping) and self.macro_args:
            args += ["--args", json.dumps(self.macro_args, sort_keys=True, default=str)]
        elif isinstance(self.macro_args, str) and self.macro_args.strip():
            args += ["--args", self.macro_args]
        return args + self._rendered_flags()


class DbtDocsOperator(DbtVenvOperator):
    """``dbt docs generate`` on the worker (with the catalog), the site published where the docs
    plugin serves it from the api-server as a page of the DAG.

    The site (``index.html``, ``manifest.json``, ``catalog.json`` and, with ``static``, dbt's
    one-file ``static_index.html``) goes to ``docs_dir``: a local folder or an object storage URL
    read through Airflow's ``ObjectStoragePath`` with ``docs_conn_id``. Without ``docs_dir`` it
    goes to ``<docs root>/<dag_id>`` (``MANIFEST_DAG_DOCS_ROOT`` or Airflow's ``[manifest_dag]
    docs_root``), the folder the plugin reads. It is published only after dbt succeeded, with
    the call's secrets masked, and the task fails when dbt wrote no catalog.
    ``task_nodes`` (task id → dbt node ids; ``DbtDag`` fills it) lets the plugin open a task's
    model from the task's page.
    """

    dbt_command = "docs generate"
    template_fields: Sequence[str] = (*DbtVenvOperator.template_fields, "docs_dir")
    ui_color = "#e6e1f5"

    def __init__(
        self,
        *,
        docs_dir: str | None = None,
        docs_conn_id: str | None = None,
        static: bool = True,
        task_nodes: Mapping[str, Sequence[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        where = f"{type(self).__name__}(task_id={kwargs.get('task_id')!r})"
        if kwargs.get("dbt_command", "docs generate") != "docs generate":
            raise ConfigError(f"{where}: dbt_command is docs generate here")
        kwargs.pop("dbt_command", None)
        super().__init__(**kwargs)
        for name, value in (("docs_dir", docs_dir), ("docs_conn_id", docs_conn_id)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{where}: {name} must be a non-empty string or None, got {value!r}")
        if not isinstance(static, bool):
            raise ConfigError(f"{where}: static must be True or False, got {static!r}")
        self.docs_dir = docs_dir
        self.docs_conn_id = docs_conn_id
        self.static = static
        self.task_nodes = {str(k): list(v) for k, v in (task_nodes or {}).items()}
        self._kept_dir: Path | None = None
        self._kept: list[str] = []
        self._keep_error: Exception | None = None

    def dbt_args(self) -> list[str]:
        """``docs generate`` with the selection and flags, and ``--static`` for the one-file site."""
        args = super().dbt_args()
        if self.static and "--static" not in args:
            args.append("--static")
        return args

    def docs_location(self) -> str:
        """Where this task publishes (rendered ``docs_dir``, else the docs root's folder of the DAG)."""
        if self.docs_dir:
            return str(self.docs_dir).strip()
        from manifest_dag.core.docs_site import site_location

        root = settings.airflow_setting(settings.DOCS_ROOT, "docs_root")
        if not root:
            raise ConfigError(
                f"{self._where}: nowhere to publish the docs: give docs_dir, or set "
                f"{settings.DOCS_ROOT} (or Airflow's [manifest_dag] docs_root) for every worker and the api-server"
            )
        return site_location(root, self.dag_id)

    def _destination(self, location: str) -> Any:
        if "://" not in location:
            return Path(location)
        from airflow.sdk import ObjectStoragePath

        conn_id = self.docs_conn_id or settings.airflow_setting(settings.DOCS_CONN_ID, "docs_conn_id") or None
        return ObjectStoragePath(location, conn_id=conn_id)

    def _wants_artifacts(self) -> bool:
        return True

    def _on_artifacts(self, target: Path, context: Any) -> None:
        super()._on_artifacts(target, context)
        from manifest_dag.worker.docs_publish import keep_site

        assert self._kept_dir is not None
        try:
            self._kept = keep_site(target, self._kept_dir, static=self.static, mask=self._mask)
        except Exception as exc:  # noqa: BLE001 - raised after dbt's own outcome is known
            self._keep_error = exc

    def execute(self, context: Any) -> dict[str, Any]:
        """Run ``dbt docs generate``, then publish the site it wrote; return where it went."""
        import tempfile
        from datetime import datetime, timezone

        from manifest_dag.worker.docs_publish import publish_site

        location = self.docs_location()
        destination = self._destination(location)
        with tempfile.TemporaryDirectory(prefix="manifest-dag-docs-") as kept:
            self._kept_dir, self._kept, self._keep_error = Path(kept), [], None
            result = super().execute(context)  # raises when dbt failed: nothing is published
            if self._keep_error is not None:
                raise self._keep_error
            if not self._kept:
                raise DbtRunError(
                    f"{self._where}: dbt finished but no docs site was kept", command="docs generate", exit_code=0
                )
            meta = {
                "dag_id": self.dag_id,
                "task_id": self.task_id,
                "run_id": context.get("run_id") if isinstance(context, Mapping) else None,
                "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "static": self.static,
                "tasks": self.task_nodes,
            }
            written = publish_site(Path(kept), self._kept, destination, meta)
            self._kept_dir = None
        self.log.info("published the dbt docs site to %s: %s", location, ", ".join(written))
        return {**result, "docs_dir": location, "docs_files": written}


OPERATOR_FOR_COMMAND: Mapping[str, type[DbtVenvOperator]] = {
    cls.dbt_command: cls
    for cls in (
        DbtRunOperator,
        DbtTestOperator,
        DbtSeedOperator,
        DbtSnapshotOperator,
        DbtBuildOperator,
        DbtSourceFreshnessOperator,
        DbtRunOperationOperator,
    )
}
