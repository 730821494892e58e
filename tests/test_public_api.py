"""The public API is what ``manifest_dag/__init__.py`` exports; this test locks it.

A change to the list below is a deliberate API change: update the list and ``docs/api.md``
together.
"""

from __future__ import annotations

import json
import subprocess
import sys

import manifest_dag

PUBLIC_NAMES = [
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


def test_all_is_the_locked_list() -> None:
    assert sorted(manifest_dag.__all__) == PUBLIC_NAMES
    assert len(set(manifest_dag.__all__)) == len(manifest_dag.__all__), "duplicates in __all__"


def test_every_public_name_resolves() -> None:
    for name in manifest_dag.__all__:
        assert getattr(manifest_dag, name) is not None, name


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        manifest_dag.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("manifest_dag.no_such_name did not raise AttributeError")


def test_errors_share_one_root() -> None:
    for name in PUBLIC_NAMES:
        obj = getattr(manifest_dag, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, manifest_dag.ManifestDagError), name


_PROBE = """
import json, sys
import manifest_dag
heavy = sorted(
    m for m in sys.modules
    if m in ("airflow", "dbt") or m.startswith(("airflow.", "dbt."))
)
print(json.dumps(heavy))
"""


def test_import_is_light() -> None:
    """``import manifest_dag`` pulls in neither Airflow nor dbt (checked in a fresh interpreter)."""
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert heavy == [], f"import manifest_dag imported {heavy[:10]}"


def test_api_page_lists_every_public_name() -> None:
    """``docs/api.md`` has a line for each exported name."""
    from tests.conftest import REPO

    page = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [name for name in PUBLIC_NAMES if f"`{name}" not in page]
    assert missing == [], f"docs/api.md does not mention {missing}"
