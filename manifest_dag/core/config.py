"""The frozen config objects users hand to ``DbtDag``/``DbtTaskGroup``.

They are checked when built, not when a task runs: a wrong type or value in a DAG file should
fail the DAG import with the field's name, where the author sees it, rather than hours later on a
worker. No Airflow import here, so the worker-side modules can use them too.
"""

from __future__ import annotations

import copy
import enum
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

from manifest_dag.core.dbt import INDIRECT_SELECTION_MODES
from manifest_dag.core.errors import ConfigError
from manifest_dag.core.specs import VenvSpec


class TestBehavior(str, enum.Enum):
    """Where dbt tests run in the rendered DAG."""

    __test__ = False  # not a pytest class

    AFTER_EACH = "after_each"  #: after each node its own tests (a model's run and test in a TaskGroup)
    AFTER_ALL = "after_all"  #: every model first, then one ``dbt test`` at the end
    BUILD = "build"  #: one ``dbt build`` per node (runs it and its tests)
    NONE = "none"  #: no tests


class AssetUriStyle(str, enum.Enum):
    """How the Asset outlets of ``RenderConfig(emit_assets=True)`` are named."""

    MANIFEST_DAG = "manifest_dag"  #: ``<adapter>://<database>/<schema>/<alias>``
    #: cosmos's Airflow 3 URIs from OpenLineage's dataset naming: ``<namespace>/<database>/<schema>/<table>``
    OPENLINEAGE = "openlineage"


class SourceRendering(str, enum.Enum):
    """Whether dbt sources become tasks."""

    NONE = "none"  #: sources only order the graph
    FRESHNESS = "freshness"  #: a ``dbt source freshness`` task per source that sets freshness


def _fail(cls: type, name: str, message: str) -> ConfigError:
    return ConfigError(f"{cls.__name__}.{name}: {message}")


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _path(obj: object, name: str, required: bool = False) -> None:
    value = getattr(obj, name)
    if value is None:
        if required:
            raise _fail(type(obj), name, "is required (a path)")
        return
    if not isinstance(value, (str, Path)) or str(value) == "":
        raise _fail(type(obj), name, f"must be a path (str or Path), got {value!r}")
    _set(obj, name, Path(value))


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: a Celery queue name as a worker lists it in ``--queues a,b`` (no comma, no space)
_QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")


def _local_path(obj: object, name: str, *, absolute: bool = False) -> None:
    """A path that must not be a URL; ``absolute`` for paths read on workers (their working
    folder is the task's, so a relative path means nothing there). Existence is not checked:
    the scheduler has neither the project nor the worker's files."""
    _path(obj, name)
    value = getattr(obj, name)
    if value is None:
        return
    text = str(value)
    if _URL.match(text) or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", text):  # Path() turns // into /
        raise _fail(type(obj), name, f"must be a local file path, not a URL, got {text!r}")
    if absolute and not value.is_absolute():
        raise _fail(type(obj), name, f"must be an absolute path (it is used on workers), got {text!r}")


def _object_or_path(obj: object, name: str, required: bool = False) -> None:
    """A local path (made a ``Path``) or an object-store URL (kept a ``str``: ``Path`` folds ``//``)."""
    value = getattr(obj, name)
    if isinstance(value, str) and _URL.match(value.strip()):
        url = value.strip()
        from manifest_dag.core.secrets import mask_url_credentials

        shown = mask_url_credentials(url)
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]+/.", url):
            raise _fail(type(obj), name, f"must name an object, such as 's3://bucket/dbt/manifest.json', got {shown!r}")
        _set(obj, name, url)
        return
    _path(obj, name, required=required)
    text = str(getattr(obj, name) or "")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", text) and not text.startswith("/"):  # a URL folded by Path()
        from manifest_dag.core.secrets import mask_url_credentials

        raise _fail(
            type(obj),
            name,
            f"must be a local file path or an object-store URL (a str such as 's3://bucket/key'), got {mask_url_credentials(text)!r}",
        )


def _url(obj: object, name: str, value: object) -> None:
    if not isinstance(value, str) or not _URL.match(value.strip()):
        from manifest_dag.core.secrets import mask_url_credentials

        shown = mask_url_credentials(repr(value))
        raise _fail(type(obj), name, f"must be a URL such as 'https://pypi.example/simple', got {shown}")


def _str_tuple(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if value is None:
        value = ()
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise _fail(type(obj), name, f"must be a list of strings, got {value!r}")
    _set(obj, name, tuple(value))


class FrozenMap(Mapping[str, Any]):
    """A read-only dict that deep-copies and pickles, unlike ``types.MappingProxyType``.

    Airflow deep-copies and pickles operators and task groups (``dag.test()``'s task groups on
    Airflow 3.0, ``dag.partial_subset``, ``copy.deepcopy(dag)``), and the configs sit in both.
    """

    __slots__ = ("_data",)
    _data: dict[str, Any]

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __reduce__(self) -> tuple[type[FrozenMap], tuple[dict[str, Any]]]:
        return FrozenMap, (self._data,)

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenMap:
        return FrozenMap(copy.deepcopy(self._data, memo))


def _mapping(obj: object, name: str, str_values: bool = False) -> None:
    value = getattr(obj, name)
    if value is None:
        value = {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _fail(type(obj), name, f"must be a dict with string keys, got {value!r}")
    if str_values and not all(isinstance(v, str) for v in value.values()):
        bad = next(k for k, v in value.items() if not isinstance(v, str))
        raise _fail(type(obj), name, f"values must be strings; {bad!r} is {type(value[bad]).__name__}")
    _set(obj, name, FrozenMap(value))


def _bool(obj: object, name: str) -> None:
    if not isinstance(getattr(obj, name), bool):
        raise _fail(type(obj), name, f"must be True or False, got {getattr(obj, name)!r}")


#: what a rendered yes/no template may say (Airflow renders ``{{ params.x }}`` of a bool as "True")
_SWITCH_TRUE = frozenset({"true", "1", "yes", "on"})
_SWITCH_FALSE = frozenset({"false", "0", "no", "off", "", "none"})


def check_switch(value: Any, where: str) -> bool | str:
    """A yes/no setting that may be decided per run: ``True``, ``False`` or a template string.

    A template (``"{{ params.full_refresh }}"``) is rendered by Airflow when the task runs, then
    read by ``rendered_switch``. A plain string is refused here, at the DAG import: ``"yes"`` in a
    DAG file is a typo for ``True`` or a template missing its braces.
    """
    if isinstance(value, bool) or (isinstance(value, str) and "{{" in value):
        return value
    name = where.replace(":", " ").split()[-1].split(".")[-1]  # "X(task_id='t'): full_refresh" -> full_refresh
    raise ConfigError(f"{where} must be True, False or a template such as '{{{{ params.{name} }}}}', got {value!r}")


def rendered_switch(value: Any, where: str) -> bool:
    """A ``check_switch`` value once rendered: ``true``/``false``, ``yes``/``no``, ``on``/``off``,
    ``1``/``0`` (any case), ``""``/``None`` (a template that printed nothing) as false; a native
    bool as is (``render_template_as_native_obj``). Anything else is a ``ConfigError`` naming it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if value is None:
        return False
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _SWITCH_TRUE:
            return True
        if text in _SWITCH_FALSE:
            return False
        if "{{" in value:
            raise ConfigError(
                f"{where} is a template not rendered yet: {value!r} (Airflow renders it as the task runs)"
            )
    raise ConfigError(f"{where} rendered to {value!r}; it must say true or false (true/false, yes/no, on/off, 1/0)")


def _enum(obj: object, name: str, enum_cls: type[enum.Enum]) -> None:
    value = getattr(obj, name)
    try:
        _set(obj, name, enum_cls(value))
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum_cls)
        raise _fail(type(obj), name, f"must be one of {allowed}, got {value!r}") from None


#: dbt reads a secret var's value from this environment variable (``secret_var_env_name``)
SECRET_VAR_ENV_PREFIX = "MANIFEST_DAG_SECRET_VAR_"
#: the Connection fields a ``SecretVar`` may read (``extra.<key>`` too)
_CONN_FIELDS = ("password", "login", "host", "schema", "port")


def secret_var_env_name(var_name: str) -> str:
    """The environment variable that carries the secret dbt var ``var_name`` to dbt.

    Not ``DBT_ENV_SECRET_*``: dbt refuses those outside ``profiles.yml`` and ``packages.yml``
    (``SecretEnvVarLocationError``), and a var is read in models and macros. The name holds
    ``SECRET``, so every masker that goes by names hides its value too.
    """
    token = re.sub(r"[^A-Z0-9]+", "_", var_name.upper()).strip("_")
    return f"{SECRET_VAR_ENV_PREFIX}{token or 'VAR'}"


def secret_var_reference(var_name: str) -> str:
    """What ``--vars`` holds for a secret var: dbt renders a var's string value as Jinja when the
    project calls ``var()``, so this reads the value from the environment at that moment."""
    return f"{{{{ env_var('{secret_var_env_name(var_name)}') }}}}"


@dataclass(frozen=True)
class SecretVar:
    """Where a secret dbt var's value is read, on the worker, when the task runs.

    Give exactly one source: an Airflow Connection field (``conn_id`` with ``conn_field``:
    ``password`` (default), ``login``, ``host``, ``schema``, ``port`` or ``extra.<key>``, dots
    going down nested extra), an Airflow Variable (``airflow_variable``), or an environment
    variable of the worker (``env_var``). The value never enters the DAG, a template field, dbt's
    command line or ``run_results.json``: dbt gets ``--vars '{name: "{{ env_var(...) }}"}'`` and
    the value in that environment variable of its own process (see ``secret_var_env_name``).
    """

    conn_id: str | None = None
    conn_field: str = "password"
    airflow_variable: str | None = None
    env_var: str | None = None

    def __post_init__(self) -> None:
        given = [n for n in ("conn_id", "airflow_variable", "env_var") if getattr(self, n) is not None]
        if len(given) != 1:
            raise _fail(
                type(self),
                "conn_id",
                f"give exactly one of conn_id, airflow_variable or env_var, got {given or 'none'}",
            )
        for name in given:
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise _fail(type(self), name, f"must be a non-empty string, got {value!r}")
        f = self.conn_field
        if not isinstance(f, str) or not (f in _CONN_FIELDS or (f.startswith("extra.") and len(f) > len("extra."))):
            raise _fail(type(self), "conn_field", f"must be one of {', '.join(_CONN_FIELDS)} or extra.<key>, got {f!r}")

    def describe(self) -> str:
        """Where the value comes from, for messages (never the value)."""
        if self.conn_id is not None:
            return f"Airflow connection {self.conn_id!r} field {self.conn_field}"
        if self.airflow_variable is not None:
            return f"Airflow variable {self.airflow_variable!r}"
        return f"environment variable {self.env_var} of the worker"


def check_secret_vars(value: Any, where: str, dbt_vars: Any = None) -> Mapping[str, SecretVar]:
    """``secret_vars`` checked: names to ``SecretVar``, no clash with ``dbt_vars`` or between
    their environment variables. A plain string is refused: it would be the secret itself in the
    DAG file, or a template whose rendered value Airflow stores and shows."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
        raise ConfigError(f"{where}: secret_vars must be a dict of var name to SecretVar, got {type(value).__name__}")
    for name, ref in value.items():
        if not isinstance(ref, SecretVar):
            raise ConfigError(
                f"{where}: secret_vars[{name!r}] must be a SecretVar (SecretVar(conn_id=...), "
                f"SecretVar(airflow_variable=...) or SecretVar(env_var=...)), got {type(ref).__name__}; "
                "never the value itself or a template: it would be stored with the DAG and shown in "
                "rendered fields"
            )
    seen: dict[str, str] = {}
    for name in value:
        env = secret_var_env_name(name)
        if env in seen:
            raise ConfigError(
                f"{where}: secret_vars {seen[env]!r} and {name!r} would share the env var {env}; rename one"
            )
        seen[env] = name
    if isinstance(dbt_vars, Mapping):
        both = sorted(set(dbt_vars) & set(value))
        if both:
            raise ConfigError(f"{where}: {both} are in both dbt_vars and secret_vars; a var is one or the other")
    return FrozenMap(value)


def vars_with_secret_references(
    dbt_vars: Mapping[str, Any] | str | None, secret_vars: Mapping[str, SecretVar]
) -> Mapping[str, Any] | str | None:
    """``dbt_vars`` with each secret var as its ``env_var()`` reference (what ``--vars`` gets).

    Idempotent (a var already holding its reference stays), so an invocation copied with
    ``dataclasses.replace`` is not merged twice. A YAML string is read as dbt reads ``--vars``.
    """
    if not secret_vars:
        return dbt_vars
    merged: dict[str, Any]
    if dbt_vars is None or dbt_vars == "":
        merged = {}
    elif isinstance(dbt_vars, str):
        import yaml

        try:
            loaded = yaml.safe_load(dbt_vars)
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"dbt_vars is not valid YAML ({exc.__class__.__name__}); secret_vars need a mapping"
            ) from None
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"dbt_vars must be a mapping to add secret_vars to, got {type(loaded).__name__}")
        merged = dict(loaded)
    else:
        merged = dict(dbt_vars)
    for name in secret_vars:
        reference = secret_var_reference(name)
        if name in merged and merged[name] != reference:
            raise ConfigError(f"var {name!r} is in both dbt_vars and secret_vars; a var is one or the other")
        merged[name] = reference
    return merged


@dataclass(frozen=True)
class ProjectConfig:
    """Where the dbt project and its manifest are.

    ``manifest_path`` is read on the scheduler; ``project_dir`` only on workers (the scheduler
    needs no dbt project at all). ``manifest_path`` may be an object-store URL (``s3://``,
    ``gs://``, ``az://`` ...) read through Airflow's ``ObjectStoragePath`` with the Connection
    ``manifest_conn_id``; it then stays a ``str`` (a ``Path`` would fold the ``//``).
    """

    manifest_path: str | Path
    project_dir: str | Path | None = None
    #: vars passed to every dbt command (``--vars``); values may be Jinja-templated strings.
    dbt_vars: Mapping[str, Any] = field(default_factory=dict)
    #: environment variables for every dbt command (templated).
    env_vars: Mapping[str, str] = field(default_factory=dict)
    #: vars whose values are secrets: name -> ``SecretVar`` (where the worker reads the value).
    #: Never templated, never on dbt's command line; the project reads them with ``var()`` as usual.
    secret_vars: Mapping[str, SecretVar] = field(default_factory=dict)
    #: ``partial_parse.msgpack`` to reuse; default: the one beside the manifest, if any.
    partial_parse_path: str | Path | None = None
    #: run ``dbt deps`` (once per worker per package spec) when the project has packages; a
    #: template (``"{{ params.install_deps }}"``) decides per run.
    install_deps: bool | str = False
    #: where parsed plans are cached (see ``manifest_dag.scheduler.plan_cache``); None: ``MANIFEST_DAG_PLAN_CACHE``
    #: or ``~/.cache/manifest-dag/plans``; False: no disk cache.
    plan_cache_dir: str | Path | bool | None = None
    #: the Airflow Connection for a ``manifest_path`` (and ``partial_parse_path``) in object
    #: storage; None: the filesystem's default (``aws_default`` for ``s3://`` ...).
    manifest_conn_id: str | None = None
    #: object storage (``s3://bucket/prefix`` ...) where the workers share their
    #: ``partial_parse.msgpack`` copies (``manifest_dag.worker.shared_state``); None: each keeps its own.
    shared_state_url: str | None = None
    #: the Airflow Connection for ``shared_state_url``; None: the filesystem's default.
    shared_state_conn_id: str | None = None

    def __post_init__(self) -> None:
        _object_or_path(self, "manifest_path", required=True)
        _local_path(self, "project_dir", absolute=True)
        _object_or_path(self, "partial_parse_path")
        if self.manifest_conn_id is not None:
            if not isinstance(self.manifest_conn_id, str) or not self.manifest_conn_id.strip():
                raise _fail(
                    type(self), "manifest_conn_id", f"must be a Connection id (str), got {self.manifest_conn_id!r}"
                )
            if not _URL.match(str(self.manifest_path)) and not (
                self.partial_parse_path is not None and _URL.match(str(self.partial_parse_path))
            ):
                raise _fail(
                    type(self),
                    "manifest_conn_id",
                    "is for a manifest_path or partial_parse_path in object storage (s3://, gs://, az:// ...); "
                    f"manifest_path {str(self.manifest_path)!r} is a local file",
                )
        if self.plan_cache_dir is not None and self.plan_cache_dir is not False:
            _path(self, "plan_cache_dir")
        if self.shared_state_url is not None:
            if not isinstance(self.shared_state_url, str) or not _URL.match(self.shared_state_url.strip()):
                from manifest_dag.core.secrets import mask_url_credentials

                shown = mask_url_credentials(repr(self.shared_state_url))
                raise _fail(
                    type(self),
                    "shared_state_url",
                    f"must be an object-store URL such as 's3://bucket/manifest-dag', got {shown}",
                )
            _set(self, "shared_state_url", self.shared_state_url.strip().rstrip("/"))
        if self.shared_state_conn_id is not None and not (
            isinstance(self.shared_state_conn_id, str) and self.shared_state_conn_id.strip()
        ):
            raise _fail(
                type(self), "shared_state_conn_id", f"must be a Connection id (str), got {self.shared_state_conn_id!r}"
            )
        _mapping(self, "dbt_vars")
        _mapping(self, "env_vars", str_values=True)
        _set(self, "secret_vars", check_secret_vars(self.secret_vars, "ProjectConfig.secret_vars", self.dbt_vars))
        _set(self, "install_deps", check_switch(self.install_deps, "ProjectConfig.install_deps"))


@dataclass(frozen=True)
class ProfileConfig:
    """Which dbt profile tasks use: a ``profiles.yml`` file or an Airflow Connection.

    With neither, dbt's own lookup applies (``profiles.yml`` in the project, then ``~/.dbt``).
    """

    profile_name: str
    target_name: str = "dev"
    profiles_yml_path: str | Path | None = None
    conn_id: str | None = None
    #: extra target fields for a Connection-made profile (``schema``, ``threads``, ``path`` ...).
    profile_args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("profile_name", "target_name"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise _fail(type(self), name, f"must be a non-empty string, got {value!r}")
        _path(self, "profiles_yml_path")
        if self.conn_id is not None and (not isinstance(self.conn_id, str) or not self.conn_id):
            raise _fail(type(self), "conn_id", f"must be a non-empty string, got {self.conn_id!r}")
        if self.conn_id and self.profiles_yml_path:
            raise _fail(type(self), "conn_id", "give either profiles_yml_path or conn_id, not both")
        _mapping(self, "profile_args")


#: the VenvConfig fields that say how manifest-dag builds a venv: meaningless for a dbt it did not build
_INSTALL_FIELDS = (
    "python", "index_url", "extra_index_urls", "find_links", "constraints", "py_system_site_packages", "pip_args",
)  # fmt: skip


@dataclass(frozen=True)
class VenvConfig:
    """The worker virtualenv that runs dbt: what goes in it and where it is cached.

    Either manifest-dag builds it (``py_requirements``, cached per worker), or the team brings its
    own dbt, baked into the worker image: ``existing_venv`` (a virtualenv folder holding dbt) or
    ``dbt_executable_path`` (a ``dbt`` program, a venv's or not, dbt Fusion's binary too). A dbt
    brought along is used as is and never written to; workspaces, profiles, partial parsing and
    the warm processes (where its Python allows them) work as for a built venv.
    """

    #: e.g. ``["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"]``. ``DbtDag`` without a VenvConfig pins
    #: the dbt-core version and adapter that wrote the manifest (see ``VenvConfig.for_manifest``).
    py_requirements: Sequence[str] = ()
    #: interpreter for the venv; default: the worker's own Python.
    python: str | None = None
    index_url: str | None = None
    extra_index_urls: Sequence[str] = ()
    #: wheelhouse directories or URLs, for workers without an index.
    find_links: Sequence[str] = ()
    constraints: str | Path | None = None
    py_system_site_packages: bool = False
    pip_args: Sequence[str] = ()
    #: warm dbt processes per venv on each worker, reused by its tasks (``0``: off, a fresh
    #: dbt process per task); default ``MANIFEST_DAG_WARM_PROCESSES``, else how many tasks the
    #: worker runs at once (``manifest_dag.worker.warm.worker_task_parallelism``), else its cores.
    warm_processes: int | None = None
    #: the trust boundary of warm processes beyond the project: tasks share a warm dbt process only
    #: when they run the same venv, the same project folder and the same ``warm_scope`` (say a
    #: team or DAG name). dbt runs the project's Python in that process; never share it across trust.
    warm_scope: str | None = None
    #: where venvs are cached; default, in order: ``MANIFEST_DAG_VENV_CACHE``, Airflow's
    #: ``[manifest_dag] venv_cache_dir``, else ``~/.cache/manifest-dag/venvs``.
    cache_dir: str | Path | None = None
    #: the Airflow queue (a Celery queue) this venv's tasks go to, so that only workers that carry
    #: the venv (pre-built there with ``manifest-dag venv build --dags ... --queue NAME``) run them:
    #: say ``dbt110`` for the DAGs still on dbt 1.10. Sets each task's ``queue`` (over the DAG's
    #: ``default_args``) unless the task names one itself (``queue=``, or DbtDag's ``operator_args``);
    #: ``None``: Airflow's default queue. Not part of
    #: the venv's key: the same venv may serve several queues.
    queue: str | None = None
    #: a virtualenv built outside manifest-dag that holds dbt and its adapter (absolute path on the
    #: workers, e.g. baked into the image): used read-only, never installed into or changed
    existing_venv: str | Path | None = None
    #: a ``dbt`` executable built outside manifest-dag (absolute path on the workers): a venv's
    #: ``bin/dbt``, a system install's, or dbt Fusion's binary (no warm processes: not Python)
    dbt_executable_path: str | Path | None = None

    def __post_init__(self) -> None:
        for name in ("py_requirements", "extra_index_urls", "find_links", "pip_args"):
            _str_tuple(self, name)
        _local_path(self, "existing_venv", absolute=True)
        _local_path(self, "dbt_executable_path", absolute=True)
        brought = [n for n in ("existing_venv", "dbt_executable_path") if getattr(self, n) is not None]
        if len(brought) > 1:
            raise _fail(type(self), "existing_venv", "give existing_venv or dbt_executable_path, not both")
        if brought:
            if self.py_requirements:
                raise _fail(
                    type(self),
                    "py_requirements",
                    f"give py_requirements (a venv manifest-dag builds) or {brought[0]} (a dbt you built), not both",
                )
            defaults = {f.name: f.default for f in fields(self)}
            ignored = [n for n in _INSTALL_FIELDS if getattr(self, n) != defaults[n]]
            if ignored:
                raise _fail(
                    type(self),
                    ignored[0],
                    f"only shapes a venv manifest-dag builds; with {brought[0]} nothing is installed "
                    f"(remove {', '.join(ignored)})",
                )
        elif not self.py_requirements:
            raise _fail(
                type(self),
                "py_requirements",
                "must name at least dbt-core and an adapter (or give existing_venv or dbt_executable_path)",
            )
        for name in ("python", "index_url"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise _fail(type(self), name, f"must be a string, got {value!r}")
        if self.queue is not None and (not isinstance(self.queue, str) or not _QUEUE.match(self.queue)):
            raise _fail(
                type(self), "queue", f"must be a queue name (letters, digits, '.', '_', ':', '-'), got {self.queue!r}"
            )
        if self.index_url is not None:
            _url(self, "index_url", self.index_url)
        for url in self.extra_index_urls:
            _url(self, "extra_index_urls", url)
        # a constraints file lives on workers: an absolute path (not checked here, the scheduler
        # has no such file) or a URL the installer fetches; a relative path means the task's cwd
        if isinstance(self.constraints, str) and _URL.match(self.constraints):
            pass
        else:
            _local_path(self, "constraints", absolute=True)
        _path(self, "cache_dir")
        _bool(self, "py_system_site_packages")
        if self.warm_scope is not None and (not isinstance(self.warm_scope, str) or not self.warm_scope):
            raise _fail(type(self), "warm_scope", f"must be a non-empty string or None, got {self.warm_scope!r}")
        if self.warm_processes is not None and (
            not isinstance(self.warm_processes, int) or isinstance(self.warm_processes, bool) or self.warm_processes < 0
        ):
            raise _fail(type(self), "warm_processes", f"must be a whole number >= 0, got {self.warm_processes!r}")
        from manifest_dag.core.requirements import normalise_requirements

        normalise_requirements(self.py_requirements)  # raises ConfigError naming a bad one

    def __repr__(self) -> str:
        """Index URLs may carry ``user:password@``: never show it (configs end up in logs)."""
        from manifest_dag.core.secrets import mask_url_credentials

        inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"VenvConfig({mask_url_credentials(inner)})"

    @classmethod
    def for_manifest(cls, dbt_version: str, adapter_type: str | None) -> VenvConfig:
        """Requirements matching the dbt that wrote the manifest, so its partial parse is reused."""
        reqs = [f"dbt-core=={dbt_version}"]
        if adapter_type:
            minor = ".".join(dbt_version.split(".")[:2])
            reqs.append(f"dbt-{adapter_type}~={minor}.0")
        return cls(py_requirements=reqs)

    def to_spec(self) -> VenvSpec:
        """The ``VenvSpec`` that keys the worker's venv cache."""
        return VenvSpec(
            requirements=tuple(self.py_requirements),
            python=self.python,
            index_url=self.index_url,
            extra_index_urls=tuple(self.extra_index_urls),
            find_links=tuple(self.find_links),
            constraints=str(self.constraints) if self.constraints else None,
            system_site_packages=self.py_system_site_packages,
            pip_args=tuple(self.pip_args),
            existing_venv=str(self.existing_venv) if self.existing_venv else None,
            dbt_executable=str(self.dbt_executable_path) if self.dbt_executable_path else None,
        )


@dataclass(frozen=True)
class DocsConfig:
    """A ``dbt docs generate`` task at the end of a ``DbtDag``, its site published for the docs plugin."""

    #: where the site goes: a local folder or an object storage URL (``s3://bucket/docs/shop``),
    #: templated; default ``<docs root>/<dag_id>`` (``MANIFEST_DAG_DOCS_ROOT`` or Airflow's
    #: ``[manifest_dag] docs_root``), the folder the docs plugin serves the DAG's page from.
    docs_dir: str | None = None
    #: the Airflow Connection of an object storage ``docs_dir`` (default ``MANIFEST_DAG_DOCS_CONN_ID``
    #: or ``[manifest_dag] docs_conn_id``; none: the storage's own credentials chain).
    conn_id: str | None = None
    #: the docs task's id (inside the DbtTaskGroup for one).
    task_id: str = "dbt_docs"
    #: also publish dbt's one-file site (``docs generate --static``, dbt 1.7+), the page the plugin
    #: shows; False for an older dbt (the plugin then has no page to show for the DAG).
    static: bool = True

    def __post_init__(self) -> None:
        for name in ("docs_dir", "conn_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise _fail(type(self), name, f"must be a non-empty string or None, got {value!r}")
        if not isinstance(self.task_id, str) or not self.task_id.strip():
            raise _fail(type(self), "task_id", f"must be a task id, got {self.task_id!r}")
        if not isinstance(self.static, bool):
            raise _fail(type(self), "static", f"must be True or False, got {self.static!r}")


@dataclass(frozen=True)
class RenderConfig:
    """Which dbt nodes become tasks, and how."""

    select: Sequence[str] = ()
    exclude: Sequence[str] = ()
    selector: str | None = None
    test_behavior: TestBehavior | str = TestBehavior.AFTER_EACH
    source_rendering: SourceRendering | str = SourceRendering.NONE
    #: dbt's indirect selection of tests (``eager``, ``cautious``, ``buildable``, ``empty``).
    indirect_selection: str = "eager"
    #: render nodes of installed dbt packages (they still order the graph when left out).
    include_packages: bool = True
    #: allow a selection that picks nothing (an empty DAG) instead of failing the import.
    allow_empty: bool = False
    #: add an Airflow Asset outlet per model, seed and snapshot, named as ``asset_uri_style`` says.
    emit_assets: bool = False
    #: ``manifest_dag`` (``<adapter>://<database>/<schema>/<alias>``) or ``openlineage`` (cosmos's URIs).
    asset_uri_style: AssetUriStyle | str = AssetUriStyle.MANIFEST_DAG
    #: the OpenLineage dataset namespace (``postgres://<host>:<port>``): the scheduler reads no profile.
    asset_namespace: str | None = None
    #: the naming object (task ids, group ids, docs, asset URIs); default ``DbtNaming()``.
    naming: Any = None
    #: inside a task's parsing context, build only that task (Airflow's runner needs no more).
    task_scoped: bool = True
    #: a test task of its own (several parents, or a parent without a task) holds back every node
    #: downstream of all its parents, as in ``dbt build``; False: nothing waits for such a task.
    tests_gate_downstream: bool = True
    #: a source that names a seed's table is read after that seed is loaded (dbt does not order it).
    order_sources_after_seeds: bool = True
    #: settings for every test task (``retries``, ``pool`` ...: the keys of a node's
    #: ``meta.manifest_dag``), over what the tested node sets; a test's own meta wins over these.
    test_task_args: Mapping[str, Any] = field(default_factory=dict)
    #: callbacks a node's meta may name (``on_failure_callback: page_team``): name -> a callable
    #: or a list of callables. A manifest is data: it names code, the DAG file holds it.
    callbacks: Mapping[str, Any] = field(default_factory=dict)
    #: nest TaskGroups by the folders of the models, seeds and snapshots (their ``path``).
    folder_groups: bool = False
    #: ``after_each``: a TaskGroup for every model, also one without tests (default: a plain task).
    group_every_model: bool = False
    #: a resource type (``"exposure"``, ``"seed"``, ``"test"`` ...) or a node's unique id ->
    #: ``converter(node, default) -> task | TaskGroup | None``: replaces the default task (None: no
    #: task; dependents wait for what it waited for). Types without tasks (exposures, sources) get one.
    node_converters: Mapping[str, Any] = field(default_factory=dict)
    #: a seed task skips itself (AirflowSkipException) when its CSV and its config are as at its
    #: last successful load, recorded in an Airflow Variable; what follows it still runs.
    skip_unchanged_seeds: bool = False

    def __post_init__(self) -> None:
        _str_tuple(self, "select")
        _str_tuple(self, "exclude")
        if self.selector is not None and (not isinstance(self.selector, str) or not self.selector):
            raise _fail(type(self), "selector", f"must be a selector name, got {self.selector!r}")
        _enum(self, "test_behavior", TestBehavior)
        _enum(self, "source_rendering", SourceRendering)
        _enum(self, "asset_uri_style", AssetUriStyle)
        from manifest_dag.core.openlineage import check_namespace

        _set(self, "asset_namespace", check_namespace(self.asset_namespace, "RenderConfig.asset_namespace"))
        if self.indirect_selection not in INDIRECT_SELECTION_MODES:
            raise _fail(
                type(self),
                "indirect_selection",
                f"must be eager, cautious, buildable or empty, got {self.indirect_selection!r}",
            )
        for name in (
            "include_packages",
            "allow_empty",
            "emit_assets",
            "task_scoped",
            "tests_gate_downstream",
            "order_sources_after_seeds",
            "folder_groups",
            "group_every_model",
            "skip_unchanged_seeds",
        ):
            _bool(self, name)
        if self.naming is None:
            from manifest_dag.core.naming import DbtNaming

            _set(self, "naming", DbtNaming())
        _set(self, "callbacks", _callbacks(self.callbacks))
        _set(self, "node_converters", _converters(self.node_converters))
        from manifest_dag.core.task_settings import check_settings

        tests = check_settings(
            self.test_task_args if self.test_task_args is not None else {},
            "RenderConfig.test_task_args",
            prefix="",
            callbacks=self.callbacks,
            command="test",
        )
        _set(self, "test_task_args", FrozenMap(tests))


def _converters(value: Any) -> FrozenMap:
    """``RenderConfig.node_converters`` checked: a resource type or a node id -> a callable."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise _fail(
            RenderConfig, "node_converters", f"must be a dict of resource type or node id to a callable, got {value!r}"
        )
    out: dict[str, Any] = {}
    for raw, fn in value.items():
        key = getattr(raw, "value", raw)  # a resource-type enum (cosmos's DbtResourceType) reads as its value
        if not isinstance(key, str) or not key:
            raise _fail(RenderConfig, "node_converters", f"keys are resource types or node ids, got {raw!r}")
        if not callable(fn):
            raise _fail(RenderConfig, "node_converters", f"{key!r} must be a callable (node, default), got {fn!r}")
        out[key] = fn
    return FrozenMap(out)


def _callbacks(value: Any) -> FrozenMap:
    """``RenderConfig.callbacks`` checked: names to a callable or a list of callables."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
        raise _fail(RenderConfig, "callbacks", f"must be a dict of names to callables, got {value!r}")
    out: dict[str, Any] = {}
    for name, fn in value.items():
        fns = list(fn) if isinstance(fn, (list, tuple)) else [fn]
        if not fns or not all(callable(f) for f in fns):
            raise _fail(RenderConfig, "callbacks", f"{name!r} must be a callable or a list of callables, got {fn!r}")
        out[name] = fn if callable(fn) else tuple(fns)
    return FrozenMap(out)
