"""The specs that cross from the scheduler to the worker: a venv to have, a dbt call to make.

The operator (built on the scheduler, executed on a worker) turns its rendered arguments into a
``DbtInvocation`` and hands it to the worker side, which needs nothing else; the dry run
(``manifest_dag.testing.plan_task``) builds the same one offline. They are frozen, checked when
built, and print no credential (specs end up in DAG reprs and task logs).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from manifest_dag.core.errors import ConfigError
from manifest_dag.core.secrets import mask_url_credentials as mask_secrets

if TYPE_CHECKING:
    from manifest_dag.core.config import ProfileConfig, SecretVar


def _as_str_tuple(owner: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(
            f"{owner} must be a sequence of strings, got {type(value).__name__} {mask_secrets(repr(value))}"
            " (wrap a single value in a tuple)"
        )
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{owner} must contain only strings, got {type(item).__name__} {item!r}")
    return items


def _as_optional_str(owner: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{owner} must be a non-empty string or None, got {mask_secrets(repr(value))}")
    return value


@dataclass(frozen=True, slots=True)
class VenvSpec:
    """What a task needs in its venv; everything here except ``verify_command`` is part of the key.

    Sequences are stored as tuples so a spec is hashable and can sit in a frozen DAG config.
    ``pip_args`` go verbatim to the installer (``uv pip install`` or ``pip install``), so use flags
    both understand if the worker may have either. uv does not read ``pip.conf``/``PIP_*``: put
    indexes and wheelhouses here, not in the worker's pip config. ``system_site_packages`` exposes
    the *base* interpreter's site-packages, never the Airflow worker venv's.
    """

    requirements: tuple[str, ...]
    python: str | None = None
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    constraints: str | None = None
    system_site_packages: bool = False
    pip_args: tuple[str, ...] = ()
    verify_command: tuple[str, ...] = ("dbt", "--version")
    #: a venv built outside manifest-dag (``VenvConfig.existing_venv``): used as is, never written
    existing_venv: str | None = None
    #: a dbt executable built outside manifest-dag (``VenvConfig.dbt_executable_path``)
    dbt_executable: str | None = None

    def __post_init__(self) -> None:
        for name in ("requirements", "extra_index_urls", "find_links", "pip_args", "verify_command"):
            object.__setattr__(self, name, _as_str_tuple(f"VenvSpec.{name}", getattr(self, name)))
        for name in ("python", "index_url", "constraints", "existing_venv", "dbt_executable"):
            object.__setattr__(self, name, _as_optional_str(f"VenvSpec.{name}", getattr(self, name)))
        if self.existing_venv is not None and self.dbt_executable is not None:
            raise ConfigError("VenvSpec: give existing_venv or dbt_executable, not both")
        if not isinstance(self.system_site_packages, bool):
            raise ConfigError(f"VenvSpec.system_site_packages must be True or False, got {self.system_site_packages!r}")
        if self.verify_command and not self.verify_command[0].strip():
            raise ConfigError("VenvSpec.verify_command[0] must name an executable, e.g. ('dbt', '--version')")

    def __repr__(self) -> str:
        # Specs get printed in DAG reprs and task logs: never show index credentials there.
        return mask_secrets(
            "VenvSpec("
            f"requirements={self.requirements!r}, python={self.python!r}, index_url={self.index_url!r}, "
            f"extra_index_urls={self.extra_index_urls!r}, find_links={self.find_links!r}, "
            f"constraints={self.constraints!r}, system_site_packages={self.system_site_packages!r}, "
            f"pip_args={self.pip_args!r}, verify_command={self.verify_command!r}"
            + (f", existing_venv={self.existing_venv!r}" if self.existing_venv else "")
            + (f", dbt_executable={self.dbt_executable!r}" if self.dbt_executable else "")
            + ")"
        )

    @property
    def external(self) -> str | None:
        """The path of a dbt that manifest-dag did not build (a venv or an executable), or None."""
        return self.existing_venv or self.dbt_executable


@dataclass(frozen=True)
class DbtInvocation:
    """Everything one dbt call needs, with templated values already rendered.

    ``secret_vars`` name where each secret var's value is read on the worker (``SecretVar``);
    ``dbt_vars`` holds them as ``{{ env_var('MANIFEST_DAG_SECRET_VAR_<NAME>') }}`` references
    (added here), so the ``--vars`` text, and whatever prints an invocation, never holds a value.
    """

    command_args: tuple[str, ...]
    project_dir: Path
    venv_spec: VenvSpec
    profile_config: ProfileConfig | None = None
    manifest_path: Path | None = None
    partial_parse_path: Path | None = None
    #: a ``partial_parse.msgpack`` in object storage, fetched (when it changed) before the task
    partial_parse_url: str | None = None
    #: the Airflow Connection for ``partial_parse_url``
    object_conn_id: str | None = None
    #: where the fleet shares partial-parse state (``ProjectConfig.shared_state_url``), and its Connection
    shared_state_url: str | None = None
    shared_state_conn_id: str | None = None
    cache_dir: Path | None = None
    dbt_vars: Mapping[str, Any] | str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    install_deps: bool = False
    #: warm dbt processes per venv on this worker (None: MANIFEST_DAG_WARM_PROCESSES or the
    #: worker's cores; 0: off, every invocation is a fresh dbt process)
    warm_processes: int | None = None
    #: what, beyond venv and project, separates warm processes (``VenvConfig.warm_scope``)
    warm_scope: str | None = None
    #: secret vars: name -> where the worker reads the value (``core.config.SecretVar``)
    secret_vars: Mapping[str, SecretVar] = field(default_factory=dict)
    #: dbt's environment starts from the worker's (True) or only from ``MINIMAL_ENV`` of it (False)
    append_env: bool = True

    def __post_init__(self) -> None:
        from manifest_dag.core.config import check_secret_vars, vars_with_secret_references

        secret_vars = dict(check_secret_vars(self.secret_vars, "DbtInvocation"))
        object.__setattr__(self, "secret_vars", secret_vars)
        object.__setattr__(self, "dbt_vars", vars_with_secret_references(self.dbt_vars, secret_vars))
