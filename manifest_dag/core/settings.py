"""Every ``MANIFEST_DAG_*`` environment setting, read in one place.

Settings that come from the environment are read by both sides (the DAG processor, the task, the
CLI), and each reader used to parse "off" and numbers its own way, so ``no`` turned one setting
off and another on. Here is the one list of names, the one reading of a switch and of a number,
and the cache locations derived from them. Only stdlib at import; Airflow's config is read
lazily, where a setting falls back to it.
"""

from __future__ import annotations

import os
from pathlib import Path

# -- the settings ------------------------------------------------------------------------------------
#: Plan cache folder; ``off`` disables the disk cache (default ``~/.cache/manifest-dag/plans``).
PLAN_CACHE = "MANIFEST_DAG_PLAN_CACHE"
#: ``off``: build every task even inside a task's parsing context.
TASK_SCOPED = "MANIFEST_DAG_TASK_SCOPED"
#: Worker venv cache root (before Airflow's ``[manifest_dag] venv_cache_dir``).
VENV_CACHE = "MANIFEST_DAG_VENV_CACHE"
#: Airflow's config-as-env for ``[manifest_dag] venv_cache_dir``, read without importing Airflow.
AIRFLOW_VENV_CACHE = "AIRFLOW__MANIFEST_DAG__VENV_CACHE_DIR"
#: The worker's writable state (workspaces, kept msgpacks, deps, warm pools, locks); default
#: ``<venv cache>/.state``, or a folder under the temp dir when the venv cache is read-only.
STATE_DIR = "MANIFEST_DAG_STATE_DIR"
#: ``off``: DuckDB targets do not take turns (for example with a read-only target).
DUCKDB_LOCK = "MANIFEST_DAG_DUCKDB_LOCK"
#: Warm dbt processes per venv (``0``: off), and when one retires.
WARM_PROCESSES = "MANIFEST_DAG_WARM_PROCESSES"
WARM_IDLE_SECONDS = "MANIFEST_DAG_WARM_IDLE_SECONDS"
WARM_MAX_INVOCATIONS = "MANIFEST_DAG_WARM_MAX_INVOCATIONS"
WARM_MAX_RSS_MB = "MANIFEST_DAG_WARM_MAX_RSS_MB"
#: ``off``: a warm process parses for every task instead of keeping the project it parsed.
WARM_KEEP_PROJECT = "MANIFEST_DAG_WARM_KEEP_PROJECT"
#: ``off``: ``manifest-dag prestart`` always ``exec``s the pod's command, never runs Airflow's
#: workload module in its own process (see ``cli/workload_in_process.py``).
PRESTART_IN_PROCESS = "MANIFEST_DAG_PRESTART_IN_PROCESS"
#: Seconds one object-store call (a manifest, a msgpack, shared state) may take before it counts as failed.
OBJECT_TIMEOUT = "MANIFEST_DAG_OBJECT_TIMEOUT"
#: A secret shared by the fleet: pointers to shared state carry its HMAC, and readers require it.
SHARED_STATE_KEY = "MANIFEST_DAG_SHARED_STATE_KEY"
#: ``1``: golden-file assertions (re)write their files instead of comparing.
UPDATE_GOLDEN = "MANIFEST_DAG_UPDATE_GOLDEN"
#: Where ``dbt docs`` sites are published, one folder per DAG (a local folder or an object storage
#: URL), before Airflow's ``[manifest_dag] docs_root``; the docs plugin serves from there.
DOCS_ROOT = "MANIFEST_DAG_DOCS_ROOT"
#: The Airflow Connection for an object storage ``DOCS_ROOT`` (before ``[manifest_dag] docs_conn_id``).
DOCS_CONN_ID = "MANIFEST_DAG_DOCS_CONN_ID"
#: The demo's working folder (set by ``manifest-dag demo`` for its child process).
DEMO_DIR = "MANIFEST_DAG_DEMO_DIR"

#: What turns a switch off (case-insensitive); anything else non-empty turns it on.
OFF_VALUES = frozenset({"0", "off", "false", "no"})


def text(name: str) -> str:
    """The setting's value, stripped; empty when unset."""
    return os.environ.get(name, "").strip()


def is_off(name: str) -> bool:
    """Whether a default-on switch is turned off (``0``, ``off``, ``false``, ``no``)."""
    return text(name).lower() in OFF_VALUES


def is_on(name: str) -> bool:
    """Whether a default-off switch is turned on (set, and not one of the off values)."""
    value = text(name).lower()
    return bool(value) and value not in OFF_VALUES


def number(name: str, default: float) -> float:
    """A numeric setting; unset or malformed gives ``default`` (a typo must not stop a task)."""
    raw = text(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        return default


# -- locations ---------------------------------------------------------------------------------------
def user_cache_dir(kind: str) -> Path:
    """``$XDG_CACHE_HOME/manifest-dag/<kind>``, else ``~/.cache/manifest-dag/<kind>``."""
    xdg = text("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "manifest-dag" / kind


def plan_cache_dir() -> Path | None:
    """``MANIFEST_DAG_PLAN_CACHE`` (``off`` disables: None), else the user cache's ``plans``."""
    if is_off(PLAN_CACHE):
        return None
    value = text(PLAN_CACHE)
    return Path(value).expanduser() if value else user_cache_dir("plans")


def venv_cache_dir(configured: str | Path | None = None, *, airflow_config: bool = False) -> Path:
    """Where worker venvs live, by precedence.

    ``configured`` (``VenvConfig.cache_dir``), then ``MANIFEST_DAG_VENV_CACHE`` (explicit, per
    process), then Airflow's ``[manifest_dag] venv_cache_dir`` (set once for all workers: read
    from Airflow's config when ``airflow_config``, else only from its env form, which needs no
    Airflow import), then the user cache's ``venvs``.
    """
    if configured:
        return Path(configured)
    value = text(VENV_CACHE)
    if value:
        return Path(value).expanduser()
    if airflow_config:
        try:
            from airflow.configuration import conf

            configured_value = conf.get("manifest_dag", "venv_cache_dir", fallback=None)
        except Exception:  # noqa: BLE001 - config is optional; a broken one must not stop the task
            configured_value = None
        if configured_value:
            return Path(configured_value)
    value = text(AIRFLOW_VENV_CACHE)
    if value:
        return Path(value).expanduser()
    return user_cache_dir("venvs")


def airflow_setting(env_name: str, key: str) -> str:
    """``env_name`` if set, else Airflow's ``[manifest_dag] <key>`` (read lazily), else empty.

    For the settings a deployment sets once for every process (the docs root: workers publish
    there, the api-server serves from there).
    """
    value = text(env_name)
    if value:
        return value
    try:
        from airflow.configuration import conf

        return str(conf.get("manifest_dag", key, fallback="") or "").strip()
    except Exception:  # noqa: BLE001 - config is optional; a broken one means "not set"
        return ""
