"""What an adapter mapping sees of an Airflow Connection, and how it keeps a secret out of the YAML.

Every adapter reads the same normalised fields and puts each secret through
:meth:`ConnectionView.secret`, so the env var naming (``MANIFEST_DAG_<CONN_ID>_<FIELD>``) and the
list of values to mask are decided in one place, not once per warehouse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from manifest_dag.core.errors import ProfileError
from manifest_dag.core.secrets import holds_credentials, is_secret_name
from manifest_dag.worker.profiles.yaml_text import EnvRef

ENV_PREFIX = "MANIFEST_DAG_"


@dataclass
class ConnectionView:
    """The parts of an Airflow Connection a mapping reads, normalised.

    ``extra`` has legacy ``extra__<conn_type>__`` prefixes removed; ``args`` are the user's
    ``ProfileConfig.profile_args`` (read-only here: they are merged over the result afterwards).
    """

    conn_id: str
    conn_type: str
    host: str | None
    port: int | None
    login: str | None
    password: str | None
    schema: str | None
    extra: Mapping[str, Any]
    args: Mapping[str, Any]
    _env: dict[str, str] = field(default_factory=dict, repr=False)
    _secrets: set[str] = field(default_factory=set, repr=False)

    def env_name(self, name: str) -> str:
        token = re.sub(r"[^A-Z0-9]+", "_", self.conn_id.upper()).strip("_") or "CONN"
        return f"{ENV_PREFIX}{token}_{re.sub(r'[^A-Z0-9]+', '_', name.upper()).strip('_')}"

    def secret(self, name: str, value: Any, *, json_value: bool = False) -> EnvRef:
        """Put ``value`` into an env var and return the YAML reference to it.

        ``json_value``: the value is a mapping (e.g. a key file); it travels as JSON and dbt turns
        it back into a mapping with ``fromjson`` when it renders the profile.
        """
        if json_value:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ProfileError(
                        f"Airflow connection {self.conn_id!r}: {name} is not valid JSON ({exc})"
                    ) from None
            text = json.dumps(value, separators=(",", ":"), sort_keys=True)
        else:
            text = str(value)
        env_name = self.env_name(name)
        self._env[env_name] = text
        self._secrets.add(text)
        if isinstance(value, Mapping):  # mask the key file's own secrets (private_key ...) too
            self._secrets.update(str(v) for k, v in value.items() if is_secret_name(k) and v)
        if json_value:
            return EnvRef(f"{{{{ fromjson(env_var('{env_name}')) }}}}")
        return EnvRef(f"{{{{ env_var('{env_name}') }}}}")

    def get(self, *names: str, default: Any = None) -> Any:
        """The first of ``names`` set (not None or "") in ``extra``."""
        for name in names:
            value = self.extra.get(name)
            if value is not None and value != "":
                return value
        return default

    def flag(self, *names: str) -> bool:
        """Whether the first of ``names`` set in ``extra`` is true (``true``, ``"true"``, ``"1"``, ``"yes"``)."""
        value = self.get(*names)
        return value is True or str(value).strip().lower() in ("true", "1", "yes")

    def passthrough(self, fields: dict[str, Any], names: tuple[str, ...]) -> None:
        """Copy the ``extra`` keys dbt knows for this adapter into ``fields``, nested secrets hidden.

        A passed-through value may be a mapping or a list of them (DuckDB's ``settings``,
        ``secrets``, ``filesystems``, ``attach``): every entry under a secret name, at any depth,
        goes through :meth:`secret` (see :meth:`hide_secrets`).
        """
        for name in names:
            value = self.extra.get(name)
            if value is not None and value != "":
                fields[name] = self.hide_secrets(name, value)

    def hide_secrets(self, path: str, value: Any) -> Any:
        """``value`` with every entry under a secret name, and every string holding credentials
        (``password=``, ``user:pass@``), at any depth, replaced by an env var reference.

        ``path`` names the env var (``secrets_0_secret`` for the first item's ``secret``); an entry
        under a secret name that is itself a mapping or list travels as one JSON env var.
        """
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for k, v in value.items():
                sub = f"{path}_{k}"
                if v is None or v == "" or isinstance(v, (bool, EnvRef)) or not is_secret_name(str(k)):
                    out[k] = self.hide_secrets(sub, v)
                elif isinstance(v, str) and "{{" in v:  # the user's own Jinja (their env_var()): dbt renders it
                    out[k] = EnvRef(v)
                elif isinstance(v, (Mapping, list)):
                    out[k] = self.secret(sub, v, json_value=True)
                else:
                    out[k] = self.secret(sub, v)
            return out
        if isinstance(value, (list, tuple)):
            return [self.hide_secrets(f"{path}_{i}", v) for i, v in enumerate(value)]
        if isinstance(value, str) and "{{" not in value and holds_credentials(value):
            return self.secret(path, value)
        return value
