"""What a profile made from a Connection is: the YAML text, and the secrets kept out of it.

One frozen value passes from the profile writer to the runner, which writes the text to disk and
hands the environment to the dbt subprocess only; its ``repr`` never shows a secret, so logging
it is safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RenderedProfile:
    """A ``profiles.yml`` text and the environment it needs; ``repr`` never shows a secret."""

    #: the YAML to write; secrets appear only as ``{{ env_var('MANIFEST_DAG_...') }}``.
    profiles_yml: str
    #: the environment variables the YAML reads, holding the secrets (give them to dbt only).
    env: Mapping[str, str] = field(repr=False)
    #: the secret values, for masking in logs.
    secrets: frozenset[str] = field(repr=False)
    profile_name: str
    target_name: str
