"""Airflow operators that run one dbt command in a worker virtualenv.

Construction runs on the scheduler for every task of every parse, so ``__init__`` only stores
and checks arguments (cheap; no I/O). Everything heavy happens in ``execute`` on the worker,
through ``manifest_dag.worker.runner``, which knows nothing of Airflow.

Each operator also works alone in a plain DAG::

    DbtRunOperator(task_id="orders", project_dir="/dbt/shop", select=["orders"],
                   py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"],
                   profile_config=ProfileConfig(profile_name="shop", profiles_yml_path="..."))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from airflow.sdk.bases.operator import BaseOperator

from manifest_dag.core.config import ProfileConfig, VenvConfig
from manifest_dag.core.errors import ConfigError
from manifest_dag.core.dbt import FULL_REFRESH_COMMANDS, check_dbt_flags, command_args

class DbtVenvOperator(BaseOperator):
    """Run ``dbt <command>`` in a cached worker virtualenv, on a temporary copy of the project."""

    template_fields: Sequence[str] = ("select", "exclude", "dbt_vars", "env", "dbt_flags", "project_dir")
    template_fields_renderers: ClassVar[dict[str, str]] = {"dbt_vars": "json", "env": "json"}
    ui_color = "#fde5dd"
    ui_fgcolor = "#000000"
    dbt_command: ClassVar[str] = ""

    def __init__(
        self,
        *,
        project_dir: str | Path,
        select: Sequence[str] = (),
        exclude: Sequence[str] = (),
        selector: str | None = None,
        indirect_selection: str | None = None,
        profile_config: ProfileConfig | None = None,
        venv_config: VenvConfig | None = None,
        py_requirements: Sequence[str] | None = None,
        manifest_path: str | Path | None = None,
        partial_parse_path: str | Path | None = None,
        dbt_vars: Mapping[str, Any] | str | None = None,
        env: Mapping[str, str] | None = None,
        full_refresh: bool = False,
        dbt_flags: Sequence[str] = (),
        install_deps: bool = False,
        artifacts_callback: Callable[[Path, Any], None] | None = None,
        dbt_command: str | None = None,
        **kwargs: Any,
    ) -> None:
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
        if not isinstance(full_refresh, bool):
            raise ConfigError(f"{where}: full_refresh must be True or False, got {full_refresh!r}")
        self.project_dir = str(project_dir)
        self.select = [select] if isinstance(select, str) else list(select)
        self.exclude = [exclude] if isinstance(exclude, str) else list(exclude)
        self.selector = selector
        self.indirect_selection = indirect_selection
        self.profile_config = profile_config
        self.venv_config = venv_config
        self.manifest_path = str(manifest_path) if manifest_path else None
        self.partial_parse_path = str(partial_parse_path) if partial_parse_path else None
        self.dbt_vars = dict(dbt_vars) if isinstance(dbt_vars, Mapping) else dbt_vars
        self.env = dict(env or {})
        self.full_refresh = full_refresh
        self.dbt_flags = list(check_dbt_flags(dbt_flags, where))
        self.install_deps = install_deps
        self.artifacts_callback = artifacts_callback

    def dbt_args(self) -> list[str]:
        """The dbt argv after ``dbt`` (before the operator's managed flags)."""
        args = command_args(self.dbt_command, self.select, self.exclude, self.selector, self.indirect_selection)
        if self.full_refresh and self.dbt_command in FULL_REFRESH_COMMANDS:
            args.append("--full-refresh")
        args += self.dbt_flags
        return args

    def execute(self, context: Any) -> Any:
        from manifest_dag.worker.runner import run_operator

        return run_operator(self, context)

    def on_kill(self) -> None:
        """Airflow stops the task (timeout, mark-failed): stop dbt with it."""
        invoker = getattr(self, "_invoker", None)
        if invoker is not None:
            invoker.kill()


class DbtRunOperator(DbtVenvOperator):
    dbt_command = "run"
    ui_color = "#fde5dd"


class DbtTestOperator(DbtVenvOperator):
    dbt_command = "test"
    ui_color = "#e3f1dc"


class DbtSeedOperator(DbtVenvOperator):
    dbt_command = "seed"
    ui_color = "#e1ecf7"


class DbtSnapshotOperator(DbtVenvOperator):
    dbt_command = "snapshot"
    ui_color = "#efe3f5"


class DbtBuildOperator(DbtVenvOperator):
    dbt_command = "build"
    ui_color = "#fbeed5"


class DbtSourceFreshnessOperator(DbtVenvOperator):
    dbt_command = "source freshness"
    ui_color = "#e8f7f5"


OPERATOR_FOR_COMMAND: Mapping[str, type[DbtVenvOperator]] = {
    cls.dbt_command: cls
    for cls in (
        DbtRunOperator,
        DbtTestOperator,
        DbtSeedOperator,
        DbtSnapshotOperator,
        DbtBuildOperator,
        DbtSourceFreshnessOperator,
    )
}
