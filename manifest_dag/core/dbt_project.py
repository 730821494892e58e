"""The one reader of a project's ``dbt_project.yml``.

The worker needs two of its fields (``name``: whose files a ``partial_parse.msgpack`` records;
``profile``: which profile dbt picks without ``--profile``) and used to parse the file in three
places, each catching a different set of errors. Every caller treats an unreadable file the same
way, as "unknown": the workspace checks the file exists before anything reads it, and dbt itself
reports what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROJECT_FILE = "dbt_project.yml"


def read_dbt_project(project_dir: Path) -> dict[str, Any] | None:
    """``project_dir/dbt_project.yml`` as a mapping; None when missing, unreadable or not a mapping."""
    import yaml  # only a worker reads it

    try:
        data = yaml.safe_load((Path(project_dir) / PROJECT_FILE).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def project_field(project_dir: Path, name: str) -> str | None:
    """One string field of ``dbt_project.yml`` (``name``, ``profile``), or None."""
    value = (read_dbt_project(project_dir) or {}).get(name)
    return value if isinstance(value, str) else None
