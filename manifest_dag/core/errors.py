"""One error hierarchy, so callers catch ``ManifestDagError`` and never a stray ``KeyError``.

Every message says what was wrong, where (file, node, option) and how to mend it: the person
reading it is usually looking at a failed DAG import or task log, not at our code.
"""

from __future__ import annotations

from collections.abc import Sequence


class ManifestDagError(Exception):
    """Root of every error manifest-dag raises on purpose."""


class ConfigError(ManifestDagError, ValueError):
    """A config object or operator argument has a wrong type or value (names the field)."""


class ManifestError(ManifestDagError):
    """The manifest cannot be used: missing, not JSON, unsupported schema, dangling dependency."""


class ObjectStoreError(ManifestDagError):
    """An object in a bucket (``s3://``, ``gs://``, ``az://`` ...) could not be read or written.

    ``url`` is the object's URL without credentials; ``missing`` tells a missing object from an
    unreadable one (denied, no answer within the deadline, a broken connection).
    """

    def __init__(self, message: str, *, url: str, missing: bool = False, reason: str = "") -> None:
        super().__init__(message)
        self.url = url
        self.missing = missing
        #: what went wrong, without the URL (``no such object``, ``... got no answer within 30 s``)
        self.reason = reason or message


class GraphError(ManifestDagError):
    """The dbt graph is not a DAG (names the cycle) or is otherwise inconsistent."""


class SelectionError(ManifestDagError):
    """A ``select``/``exclude``/``selector`` expression is malformed or selects nothing."""


class CliError(ManifestDagError):
    """A command-line argument that cannot be used (beyond what argparse checks)."""


class DrawError(ManifestDagError):
    """A picture could not be made (unknown format, Graphviz missing or failing)."""


class VenvError(ManifestDagError):
    """A worker virtualenv could not be created, verified or used."""


class WorkspaceError(ManifestDagError):
    """The dbt project could not be copied or prepared on the worker."""


class ProfileError(ManifestDagError):
    """A dbt profile could not be made from the given file or Airflow Connection."""


class DbtRunError(ManifestDagError):
    """dbt ran and failed; carries the command, exit code and failing nodes.

    The message is what a person reads in the task log; the attributes are for code (an
    ``on_failure_callback``, a retry policy, tests) that must not parse the message. A
    ``run_results.json`` that cannot be read raises it too, with no command or exit code.
    """

    def __init__(
        self,
        message: str,
        *,
        command: str | None = None,
        exit_code: int | None = None,
        failed_nodes: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        #: the dbt command line after ``dbt`` as the log shows it (``run --select orders``)
        self.command = command
        #: dbt's exit code (None: dbt did not run, or only its results file was at fault)
        self.exit_code = exit_code
        #: unique ids of the nodes dbt reported as failing (error, fail, skipped ...), in its order
        self.failed_nodes = tuple(failed_nodes)
