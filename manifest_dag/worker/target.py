"""Which dbt target a task will use, read the way dbt will read it, before dbt starts.

Three things on the worker depend on the target before dbt runs: the partial-parse key (dbt
refuses a msgpack written for another connection), the DuckDB one-writer lock (keyed by the
database file), and the ``--profile``/``--target`` flags (given only where they differ from dbt's
own choice, since dbt hashes the flags into its partial-parse check). All read the profile,
``dbt_project.yml`` and ``{{ env_var() }}`` the same way, here.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from manifest_dag.core.config import ProfileConfig
from manifest_dag.core.dbt_project import project_field, read_dbt_project
from manifest_dag.core.secrets import is_secret_name
from manifest_dag.core.specs import DbtInvocation

#: (profile name, target name, the target's fields) as dbt will pick them
Target = tuple[Any, Any, dict[str, Any]]

_ENV_VAR = re.compile(r"""\{\{\s*env_var\(\s*['"]([^'"]+)['"]\s*(?:,\s*['"]([^'"]*)['"]\s*)?\)\s*\}\}""")


def fill_env_vars(text: str, env: Mapping[str, str]) -> str:
    """``{{ env_var('X', 'default') }}`` replaced as dbt would, from ``env`` then the worker's own."""
    return _ENV_VAR.sub(lambda m: env.get(m.group(1), os.environ.get(m.group(1), m.group(2) or "")), text)


def _profiles_yml(profile: Any, default: Path | None = None) -> str:
    """The profiles.yml text a task's dbt reads: rendered from a Connection, a file, or ``default``."""
    from manifest_dag.worker.profiles import RenderedProfile

    if isinstance(profile, RenderedProfile):
        return profile.profiles_yml
    return (Path(profile) if profile is not None or default is None else default).read_text()


def target_output(inv: DbtInvocation, profile: Any) -> Target | None:
    """(profile name, target name, the target's fields) as dbt will pick them, or None."""
    import yaml

    pc = inv.profile_config
    name: Any
    try:
        profiles = yaml.safe_load(_profiles_yml(profile, inv.project_dir / "profiles.yml")) or {}
        if pc:
            name = pc.profile_name
        else:
            project = read_dbt_project(inv.project_dir)
            if project is None:
                return None
            name = project.get("profile")
        entry = profiles.get(name) or {}
        target = pc.target_name if pc else entry.get("target")
        output = (entry.get("outputs") or {}).get(target) or {}
        return (name, target, output) if isinstance(output, dict) else None
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        return None


def connection_fingerprint(found: Target | None, env: Mapping[str, str]) -> str:
    """A digest of the target's non-secret fields (``env_var()`` filled in).

    dbt refuses a partial_parse.msgpack written for another connection ("profile has changed":
    it hashes the adapter's connection info), so the worker keeps one msgpack per connection.
    Profile and target *names* alone are not enough: two DAGs of one project may use the same
    names for a DuckDB and a Postgres target, or two logins, and would replace each other's
    msgpack on every task. Secret fields (``core.secrets.is_secret_name``) stay out of the digest.
    """
    if found is None:
        return ""
    fields = []
    for key, value in sorted(found[2].items(), key=lambda kv: str(kv[0])):
        if is_secret_name(str(key)):
            continue
        if isinstance(value, str):
            value = fill_env_vars(value, env)
        fields.append((str(key), repr(value)))
    return hashlib.sha256(repr(fields).encode()).hexdigest()[:16]


def profile_flags(pc: ProfileConfig | None, project_dir: Path, profile: Any) -> list[str]:
    """``--profile``/``--target`` only where they differ from what dbt would pick anyway.

    dbt hashes the *flags* into its partial-parse check, so a ``dbt parse`` run without them (the
    usual way a manifest is made) is only reused by invocations without them too.
    """
    if pc is None:
        return []
    import yaml

    flags: list[str] = []
    if project_field(project_dir, "profile") != pc.profile_name:
        flags += ["--profile", pc.profile_name]
    try:
        default_target = (yaml.safe_load(_profiles_yml(profile)) or {}).get(pc.profile_name, {}).get("target")
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        default_target = None
    if default_target != pc.target_name:
        flags += ["--target", pc.target_name]
    return flags
