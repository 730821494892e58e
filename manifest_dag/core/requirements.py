"""Requirement strings, checked and canonicalised without the rest of the venv machinery.

The scheduler validates ``VenvConfig.py_requirements`` every time it parses a DAG file, and the
task runner before every task: that path needs ``packaging``, not the lock library and process
code of ``manifest_dag.worker.venv``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from manifest_dag.core.errors import ConfigError
from manifest_dag.core.secrets import mask_url_credentials as mask_secrets


def _canonical_requirement(req: Requirement) -> str:
    name = canonicalize_name(req.name)
    extras = f"[{','.join(sorted(canonicalize_name(e) for e in req.extras))}]" if req.extras else ""
    if req.url:
        text = f"{name}{extras} @ {req.url}"
        return f"{text} ; {req.marker}" if req.marker else text
    text = f"{name}{extras}{req.specifier}"  # SpecifierSet's str is sorted and space-free
    return f"{text}; {req.marker}" if req.marker else text


def normalise_requirements(reqs: Iterable[str] | str) -> tuple[str, ...]:
    """Canonical, sorted, duplicate-free PEP 508 strings.

    ``"DBT_Core >= 1.11 "`` and ``"dbt-core>=1.11"`` must give the same venv key, or every
    spelling of the same set would build (and keep) its own venv.
    """
    items: Iterable[Any] = (reqs,) if isinstance(reqs, str) else reqs
    if not isinstance(items, Iterable):
        raise ConfigError(f"requirements must be a sequence of strings, got {type(reqs).__name__}")
    seen: set[str] = set()
    for raw in items:
        if not isinstance(raw, str):
            raise ConfigError(f"requirement {raw!r} is a {type(raw).__name__}, not a string")
        text = raw.strip()
        try:
            if not text:
                raise InvalidRequirement("empty string")
            req = Requirement(text)
            if any(not spec.version.strip() for spec in req.specifier):
                # packaging 26.3 (pinned by some providers) accepts "dbt-core===": an arbitrary
                # equality with nothing, which no installer can satisfy; 26.4 refuses it
                raise InvalidRequirement("a version specifier without a version")
        except InvalidRequirement as exc:
            raise ConfigError(
                f"invalid requirement {mask_secrets(repr(raw))}: {mask_secrets(str(exc))}. Requirements are "
                "PEP 508 strings such as 'dbt-core~=1.11.0'; installer options (-r, -e, --index-url, "
                "--find-links, -c) belong in VenvSpec's index_url, find_links, constraints or pip_args."
            ) from None
        seen.add(_canonical_requirement(req))
    return tuple(sorted(seen))
