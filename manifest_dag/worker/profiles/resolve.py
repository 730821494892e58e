"""Which profile a task uses, from its ``ProfileConfig``: a user's file, a Connection, or dbt's own search.

The one decision the runner asks for; each answer is made by the module that owns it.
"""

from __future__ import annotations

from pathlib import Path

from manifest_dag.core.config import ProfileConfig
from manifest_dag.worker.profiles.fetch import fetch_connection
from manifest_dag.worker.profiles.files import check_profiles_file
from manifest_dag.worker.profiles.from_connection import profile_from_connection
from manifest_dag.worker.profiles.rendered import RenderedProfile


def resolve_profile(config: ProfileConfig, project_dir: Path | str | None = None) -> RenderedProfile | Path | None:
    """The profile a task uses.

    - ``profiles_yml_path``: that file (relative paths are taken from ``project_dir``), after
      checking it defines ``profile_name`` with target ``target_name``;
    - ``conn_id``: a profile made from that Airflow Connection;
    - neither: ``None``, and dbt looks for ``profiles.yml`` itself.
    """
    if config.profiles_yml_path is not None:
        return check_profiles_file(Path(config.profiles_yml_path), config, project_dir)
    if config.conn_id:
        conn = fetch_connection(config.conn_id)
        return profile_from_connection(conn, config.profile_name, config.target_name, config.profile_args)
    return None
