"""One Airflow Connection (or any object with its attributes) into one dbt target.

The Connection's ``conn_type`` picks the adapter mapping; the user's ``profile_args`` are merged
over what it builds, secrets among them going through env vars as well, and the merged target is
checked before any YAML is written, so a missing field fails here with a hint and not in dbt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from manifest_dag.core.errors import ProfileError
from manifest_dag.core.secrets import register_with_airflow
from manifest_dag.worker.profiles.coerce import coerce_fields
from manifest_dag.worker.profiles.registry import find_mapping, supported_conn_types
from manifest_dag.worker.profiles.rendered import RenderedProfile
from manifest_dag.worker.profiles.view import ConnectionView
from manifest_dag.worker.profiles.yaml_text import EnvRef, dump_profiles_yml


def profile_from_connection(
    conn: Any,
    profile_name: str,
    target_name: str,
    profile_args: Mapping[str, Any] | None = None,
) -> RenderedProfile:
    """Turn an Airflow Connection (or any object with its attributes) into a dbt profile.

    ``profile_args`` override or extend the target's fields; a value of ``None`` removes a field.
    """
    conn_id = str(getattr(conn, "conn_id", None) or profile_name)
    conn_type = str(getattr(conn, "conn_type", None) or "").lower()
    mapping = find_mapping(conn_type)
    if mapping is None:
        raise ProfileError(
            f"Airflow connection {conn_id!r} has conn_type {conn_type or None!r}, which manifest-dag cannot "
            f"turn into a dbt profile; supported conn_types: {', '.join(supported_conn_types())}. "
            "Use ProfileConfig(profiles_yml_path=...) instead, or add a mapping: manifest_dag.register_adapter() "
            "in the DAG file, or an entry point in the group 'manifest_dag.profile_mappings' of a package "
            "installed on the workers"
        )
    extra = _extra(conn, conn_id, conn_type)
    args = dict(profile_args or {})
    view = ConnectionView(
        conn_id=conn_id,
        conn_type=conn_type,
        host=getattr(conn, "host", None) or None,
        port=_port(conn_id, getattr(conn, "port", None)),
        login=getattr(conn, "login", None) or None,
        password=getattr(conn, "password", None) or None,
        schema=getattr(conn, "schema", None) or None,
        extra=MappingProxyType(extra),
        args=MappingProxyType(args),
    )
    fields = mapping.build(view)
    for key, value in args.items():
        key = mapping.aliases.get(key, key)
        if value is None:
            fields.pop(key, None)
        elif isinstance(value, str) and "{{" in value:
            fields[key] = EnvRef(value)  # the user's own Jinja (e.g. their env_var()): dbt renders it
        elif key in mapping.secret_fields:
            fields[key] = view.secret(key, value, json_value=key == "keyfile_json")
        else:  # a mapping or list (DuckDB's settings, secrets, attach ...): its nested secrets too
            fields[key] = view.hide_secrets(key, value)
    fields = {k: v for k, v in fields.items() if v is not None and v != ""}
    fields["type"] = fields["type"] if fields.get("type") in mapping.type_variants else mapping.dbt_type
    coerce_fields(conn_id, fields, mapping.text_fields)
    if mapping.check is not None:
        mapping.check(view, fields)
    missing = [name for name in mapping.required if name not in fields]
    if missing:
        hints = "; ".join(f"{name}: set {mapping.required[name]}" for name in missing)
        raise ProfileError(
            f"Airflow connection {conn_id!r} ({conn_type}) lacks what a dbt {mapping.dbt_type} target needs: "
            f"{', '.join(missing)}. {hints}"
        )
    document = {profile_name: {"target": target_name, "outputs": {target_name: fields}}}
    text = (
        f"# Written by manifest-dag from Airflow connection {conn_id!r}; "
        "secrets are read from environment variables.\n" + dump_profiles_yml(document)
    )
    secrets = frozenset(s for s in view._secrets if s)
    register_with_airflow(secrets)
    return RenderedProfile(
        profiles_yml=text,
        env=MappingProxyType(dict(view._env)),
        secrets=secrets,
        profile_name=profile_name,
        target_name=target_name,
    )


def _extra(conn: Any, conn_id: str, conn_type: str) -> dict[str, Any]:
    raw = getattr(conn, "extra_dejson", None)
    if raw is None:
        raw = getattr(conn, "extra", None) or {}
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise ProfileError(f"Airflow connection {conn_id!r}: its extra is not valid JSON") from None
    if not isinstance(raw, Mapping):
        raise ProfileError(f"Airflow connection {conn_id!r}: its extra must be a JSON object, got {raw!r}")
    prefix = f"extra__{conn_type}__"
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith(prefix):
            extra.setdefault(key[len(prefix) :], value)
        else:
            extra[key] = value
    return extra


def _port(conn_id: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProfileError(f"Airflow connection {conn_id!r}: port must be a number, got {value!r}") from None
