"""One error hierarchy, so callers catch ``ManifestDagError`` and never a stray ``KeyError``.

Every message says what was wrong, where (file, node, option) and how to mend it: the person
reading it is usually looking at a failed DAG import or task log, not at our code.
"""

from __future__ import annotations


class ManifestDagError(Exception):
    """Root of every error manifest-dag raises on purpose."""


class ConfigError(ManifestDagError, ValueError):
    """A config object or operator argument has a wrong type or value (names the field)."""


class ManifestError(ManifestDagError):
    """The manifest cannot be used: missing, not JSON, unsupported schema, dangling dependency."""


class GraphError(ManifestDagError):
    """The dbt graph is not a DAG (names the cycle) or is otherwise inconsistent."""


class SelectionError(ManifestDagError):
    """A ``select``/``exclude``/``selector`` expression is malformed or selects nothing."""


class VenvError(ManifestDagError):
    """A worker virtualenv could not be created, verified or used."""


class WorkspaceError(ManifestDagError):
    """The dbt project could not be copied or prepared on the worker."""


class ProfileError(ManifestDagError):
    """A dbt profile could not be made from the given file or Airflow Connection."""


class DbtRunError(ManifestDagError):
    """dbt ran and failed; carries the command, exit code and failing nodes."""
