"""The one rule for what is a secret, and the one masker that hides it.

Secrets reach manifest-dag from Airflow Connections (passwords, tokens, key files), from index
URLs (``https://user:token@host``) and from users' vars and env. Whatever reads them (the profile
writer, the task's log stream, the dry run, error messages) must agree on which names are secret
and how a value is hidden: a field that one place masks and another prints is a leak. So the name
rule, the value masker and the URL masker live here, once, and nothing else decides.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

#: What a hidden value reads as.
MASK = "***"
#: Shorter secrets are not masked inside other text: "ab" would blank half a log line.
MIN_SECRET_LENGTH = 3

_SECRET_WORDS = (
    r"password|passwd|passphrase|secret|token|private_key|credential|api_?key|keyfile_json"
    r"|encryption_key|account_key|connection_string"  # DuckDB attach options, Azure storage
)
#: A field, variable or key name whose value is a secret (case-insensitive, anywhere in the name:
#: ``sslpassword``, ``MOTHERDUCK_TOKEN``, ``settings_s3_secret_access_key``).
SECRET_NAME = re.compile(_SECRET_WORDS, re.IGNORECASE)
#: A ``key: value`` line of YAML whose key is a secret name.
_YAML_SECRET = re.compile(
    rf"^(?P<key>\s*[\"']?[A-Za-z0-9_-]*(?:{_SECRET_WORDS})[A-Za-z0-9_-]*[\"']?\s*:\s*)(?P<value>.+)$",
    re.IGNORECASE | re.MULTILINE,
)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/]+)@")
#: a connection string holding a password: libpq's ``password=...`` (DuckDB ``attach`` of a
#: postgres database) or a URI's ``user:pass@``
_CREDENTIALS_IN_TEXT = re.compile(r"\bpassword\s*=|://[^/\s@]+:[^/\s@]*@", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether a field, variable or key called ``name`` holds a secret."""
    return SECRET_NAME.search(str(name)) is not None


def holds_credentials(text: str) -> bool:
    """Whether a value, whatever its name, is a connection string with a password in it."""
    return _CREDENTIALS_IN_TEXT.search(text) is not None


class Masker:
    """Replaces known secret values in text, longest first (so no secret leaves a tail)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def value(self, key: str, value: Any) -> Any:
        """``value`` with secrets hidden: whole when ``key`` is a secret name, else known values."""
        if isinstance(value, Mapping):
            return {k: self.value(str(k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(key, v) for v in value]
        if isinstance(value, str):
            if value and is_secret_name(key):
                return MASK
            return self(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and is_secret_name(key):
            return MASK  # a numeric PIN or token under a secret name is as secret as a string
        return value

    def yaml(self, text: str) -> str:
        """A YAML text with known values and the values of secret-named keys hidden.

        ``{{ env_var(...) }}`` references stay: they are how a secret is kept out of the file.
        """
        text = self(text)

        def sub(m: re.Match[str]) -> str:
            value = m.group("value").strip()
            if "env_var(" in value or value in ("", "null", "~", f"'{MASK}'", MASK):
                return m.group(0)
            return f"{m.group('key')}'{MASK}'"

        return _YAML_SECRET.sub(sub, text)


def _mask_userinfo(match: re.Match[str]) -> str:
    user, sep, _password = match.group("userinfo").partition(":")
    # "user:password@" keeps the user; a lone "token@" is usually the secret itself.
    return f"{match.group('scheme')}{user}:****@" if sep else f"{match.group('scheme')}****@"


def mask_url_credentials(text: str) -> str:
    """Hide credentials in URLs (``https://user:pw@host`` -> ``https://user:****@host``).

    Index URLs often carry credentials and end up in task logs, error messages and the venv
    marker file; everything that writes or raises them goes through here first.
    """
    return _USERINFO.sub(_mask_userinfo, text)


def register_with_airflow(secrets: Iterable[str]) -> None:
    """Register secrets with Airflow's log masker, when Airflow is already loaded (a task is).

    Airflow then hides them in every log line of the task, also lines that did not pass through
    a ``Masker`` (a user's callback, a third-party library).
    """
    values = [s for s in secrets if s]
    if not values or "airflow" not in sys.modules:
        return
    from manifest_dag.core.airflow_compat import mask_secret_function

    mask = mask_secret_function()
    if mask is None:
        return
    for secret in values:
        try:
            mask(secret)
        except Exception:  # noqa: BLE001 - masking is best effort; never fail a task over it
            pass
