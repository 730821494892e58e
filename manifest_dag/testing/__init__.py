"""Offline tests of dbt DAGs: no dbt, no warehouse, no network.

What a data team's CI needs to prove, in seconds, before a DAG file is deployed:

- :class:`ManifestBuilder` writes a small, valid ``manifest.json`` for a test (models, seeds,
  snapshots, tests, sources, exposures, selectors, disabled nodes), in dbt's current schema (v12)
  or an older one;
- :func:`block_dbt` makes ``import dbt`` fail, naming the chain of modules that tried (the
  scheduler side must never need dbt); :func:`load_dag_bag` loads a DAG folder the way Airflow
  does, with dbt blocked, and fails listing every file's import error in full;
- :func:`assert_dag_matches_manifest` checks a built DAG against the manifest: the selected nodes
  and only they have tasks, and the DAG orders them exactly as dbt's graph does;
- :func:`dag_shape` prints a DAG as stable, sorted text for golden-file tests
  (:func:`assert_matches_golden`);
- :func:`plan_task` is a dry run of one task: the venv, the dbt argv, the environment (secrets
  masked), the profile and the rendered ``vars``, for a given logical date, with nothing run.

Where each lives: ``builder`` (with the per-schema tables in ``manifest_fields``), ``no_dbt``,
``dagbag``, ``assertions``, ``golden``, ``dry_run``. The pytest plugin
(``manifest_dag.testing.plugin``, registered through the ``pytest11`` entry point) wraps these
as fixtures, and pytest loads it in every run of every project that installs manifest-dag; so
this module loads nothing until a name is used (the manifest reader, the graph, Airflow and the
worker side come with the functions that need them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from manifest_dag.testing.assertions import assert_dag_matches_manifest
    from manifest_dag.testing.builder import ManifestBuilder
    from manifest_dag.testing.dagbag import load_dag_bag
    from manifest_dag.testing.dry_run import MASK as MASK
    from manifest_dag.testing.dry_run import PROFILES_DIR as PROFILES_DIR
    from manifest_dag.testing.dry_run import VENV_DIR as VENV_DIR
    from manifest_dag.testing.dry_run import WORKSPACE_DIR as WORKSPACE_DIR
    from manifest_dag.testing.dry_run import TaskPlan, plan_task
    from manifest_dag.testing.golden import UPDATE_GOLDEN as UPDATE_GOLDEN
    from manifest_dag.testing.golden import assert_matches_golden, dag_shape
    from manifest_dag.testing.no_dbt import BlockedImport, DbtImportBlocked, NoDbt, block_dbt

__all__ = [
    "BlockedImport",
    "DbtImportBlocked",
    "ManifestBuilder",
    "NoDbt",
    "TaskPlan",
    "assert_dag_matches_manifest",
    "assert_matches_golden",
    "block_dbt",
    "dag_shape",
    "load_dag_bag",
    "plan_task",
]

#: Each name this module gives, and the module that holds it.
_LAZY = {
    "ManifestBuilder": "manifest_dag.testing.builder",
    "BlockedImport": "manifest_dag.testing.no_dbt",
    "DbtImportBlocked": "manifest_dag.testing.no_dbt",
    "NoDbt": "manifest_dag.testing.no_dbt",
    "block_dbt": "manifest_dag.testing.no_dbt",
    "load_dag_bag": "manifest_dag.testing.dagbag",
    "assert_dag_matches_manifest": "manifest_dag.testing.assertions",
    "UPDATE_GOLDEN": "manifest_dag.testing.golden",
    "assert_matches_golden": "manifest_dag.testing.golden",
    "dag_shape": "manifest_dag.testing.golden",
    "MASK": "manifest_dag.testing.dry_run",
    "PROFILES_DIR": "manifest_dag.testing.dry_run",
    "VENV_DIR": "manifest_dag.testing.dry_run",
    "WORKSPACE_DIR": "manifest_dag.testing.dry_run",
    "TaskPlan": "manifest_dag.testing.dry_run",
    "plan_task": "manifest_dag.testing.dry_run",
}
#: Read from their module on every access, never cached here: the pytest plugin sets them there.
_LIVE = frozenset({"UPDATE_GOLDEN"})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'manifest_dag.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    if name not in _LIVE:
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
