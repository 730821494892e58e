"""manifest-dag: a dbt project as an Airflow 3 DAG, with dbt only in worker virtualenvs.

The public API is what this module exports; everything else may change. Importing it is cheap
and never imports dbt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from manifest_dag.core.config import (
    AssetUriStyle,
    DocsConfig,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
    SecretVar,
    SourceRendering,
    TestBehavior,
    VenvConfig,
)
from manifest_dag.core.errors import (
    ConfigError,
    DbtRunError,
    GraphError,
    ManifestDagError,
    ManifestError,
    ObjectStoreError,
    ProfileError,
    SelectionError,
    VenvError,
    WorkspaceError,
)
from manifest_dag.core.task_settings import NodeSettingsError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from manifest_dag.core.naming import DbtNaming
    from manifest_dag.core.openlineage import openlineage_namespace
    from manifest_dag.operators import (
        DbtBuildOperator,
        DbtDocsOperator,
        DbtRunOperationOperator,
        DbtRunOperator,
        DbtSeedOperator,
        DbtSnapshotOperator,
        DbtSourceFreshnessOperator,
        DbtTestOperator,
        DbtVenvOperator,
    )
    from manifest_dag.scheduler.converters import DefaultTask
    from manifest_dag.scheduler.dag import DbtDag, DbtTaskGroup
    from manifest_dag.scheduler.graph import DbtGraph
    from manifest_dag.scheduler.manifest import DbtNode, Manifest, load_manifest
    from manifest_dag.scheduler.plan import DbtNodeView, RenderPlan, TaskSpec
    from manifest_dag.scheduler.selection import select_nodes
    from manifest_dag.ui.plugin import DbtDocsPlugin

# Most names load on first use, so `import manifest_dag` stays light for the worker runner (a
# task's DAG-file parse with a warm plan cache loads neither the manifest reader nor the graph).
_LAZY = {
    "DbtNaming": "manifest_dag.core.naming",
    "openlineage_namespace": "manifest_dag.core.openlineage",
    "DbtNode": "manifest_dag.scheduler.manifest",
    "Manifest": "manifest_dag.scheduler.manifest",
    "load_manifest": "manifest_dag.scheduler.manifest",
    "DbtGraph": "manifest_dag.scheduler.graph",
    "DbtDag": "manifest_dag.scheduler.dag",
    "DbtTaskGroup": "manifest_dag.scheduler.dag",
    "DbtVenvOperator": "manifest_dag.operators",
    "DbtRunOperator": "manifest_dag.operators",
    "DbtRunOperationOperator": "manifest_dag.operators",
    "DbtDocsOperator": "manifest_dag.operators",
    "DbtDocsPlugin": "manifest_dag.ui.plugin",
    "DbtTestOperator": "manifest_dag.operators",
    "DbtSeedOperator": "manifest_dag.operators",
    "DbtSnapshotOperator": "manifest_dag.operators",
    "DbtBuildOperator": "manifest_dag.operators",
    "DbtSourceFreshnessOperator": "manifest_dag.operators",
    "RenderPlan": "manifest_dag.scheduler.plan",
    "DbtNodeView": "manifest_dag.scheduler.plan",
    "DefaultTask": "manifest_dag.scheduler.converters",
    "TaskSpec": "manifest_dag.scheduler.plan",
    "select_nodes": "manifest_dag.scheduler.selection",
    # profile mappings: teaching the workers a Connection type (loads only the profiles package)
    "AdapterMapping": "manifest_dag.worker.profiles",
    "ConnectionView": "manifest_dag.worker.profiles",
    "register_adapter": "manifest_dag.worker.profiles",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'manifest_dag' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AdapterMapping",
    "AssetUriStyle",
    "ConfigError",
    "ConnectionView",
    "DbtBuildOperator",
    "DbtDag",
    "DbtDocsOperator",
    "DbtDocsPlugin",
    "DbtGraph",
    "DbtNaming",
    "DbtNode",
    "DbtNodeView",
    "DbtRunError",
    "DbtRunOperationOperator",
    "DbtRunOperator",
    "DbtSeedOperator",
    "DbtSnapshotOperator",
    "DbtSourceFreshnessOperator",
    "DbtTaskGroup",
    "DbtTestOperator",
    "DbtVenvOperator",
    "DefaultTask",
    "DocsConfig",
    "GraphError",
    "Manifest",
    "ManifestDagError",
    "ManifestError",
    "NodeSettingsError",
    "ObjectStoreError",
    "ProfileConfig",
    "ProfileError",
    "ProjectConfig",
    "RenderConfig",
    "RenderPlan",
    "SecretVar",
    "SelectionError",
    "SourceRendering",
    "TaskSpec",
    "TestBehavior",
    "VenvConfig",
    "VenvError",
    "WorkspaceError",
    "load_manifest",
    "openlineage_namespace",
    "register_adapter",
    "select_nodes",
]
