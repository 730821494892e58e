"""The YAML text of a generated profile, with ``env_var()`` references quoted as dbt needs them.

A secret is written as ``"{{ env_var('...') }}"``; plain YAML would leave ``{{`` unquoted, which
is a flow mapping to a YAML parser. So such values are ``EnvRef`` strings, and one dumper knows
to double-quote them.
"""

from __future__ import annotations

from typing import Any

import yaml


class EnvRef(str):
    """A Jinja expression reading an environment variable; dumped double-quoted in the YAML."""

    __slots__ = ()


class _ProfileDumper(yaml.SafeDumper):
    """SafeDumper that writes ``EnvRef`` values as ``"{{ env_var('...') }}"``."""


_ProfileDumper.add_representer(
    EnvRef, lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style='"')
)


def dump_profiles_yml(document: Any) -> str:
    """``document`` as block YAML in its own key order, no line ever wrapped."""
    return yaml.dump(
        document,
        Dumper=_ProfileDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=2**31 - 1,
    )
