"""The scheduler side never needs dbt.

The DAG processor parses DAG files every few seconds on machines where dbt is not installed (dbt
lives only in the workers' cached virtualenvs). These tests build a ``DbtDag`` from every manifest
fixture in a process where ``import dbt`` fails, and load the shipped example DAG folder the way
Airflow does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import (
    JAFFLE,
    LARGE_MANIFESTS,
    OWN_MANIFESTS,
    REPO,
    SHARED,
    VERSION_MANIFESTS,
)

#: dbt-core 1.5 to 1.12, one manifest each (1.4 wrote schema v8, which is not supported).
WANTED_MINORS = {f"1.{minor}" for minor in range(5, 13)}

# Runs in a fresh interpreter. The finder is installed before anything else is imported, so any
# `import dbt` / `import dbt.<x>` anywhere (ours, Airflow's, a provider's) raises ImportError and is
# recorded, whether or not dbt happens to be installed in this environment.
_NO_DBT_CHILD = r"""
import importlib.abc
import json
import sys

attempts = []


class NoDbt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "dbt" or name.startswith("dbt."):
            attempts.append(name)
            raise ImportError(f"dbt is not importable on the scheduler side (tried {name!r})")
        return None


sys.meta_path.insert(0, NoDbt())
for loaded in [m for m in sys.modules if m == "dbt" or m.startswith("dbt.")]:
    del sys.modules[loaded]

try:
    import dbt  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("the no-dbt finder did not block `import dbt`")
attempts.clear()

from manifest_dag import DbtDag, ProjectConfig

results = []
for path in json.loads(sys.argv[1]):
    dag = DbtDag(dag_id="scheduler_safety", project_config=ProjectConfig(manifest_path=path), schedule=None)
    results.append(
        {
            "path": path,
            "tasks": len(dag.tasks),
            "dbt_loaded": sorted(m for m in sys.modules if m == "dbt" or m.startswith("dbt.")),
        }
    )
print("RESULT " + json.dumps({"results": results, "attempts": attempts}))
"""


def _manifests() -> list[Path]:
    return [JAFFLE, *VERSION_MANIFESTS, *LARGE_MANIFESTS, *OWN_MANIFESTS]


def test_fixture_lists_are_complete(shared_manifests: Path) -> None:
    """Guard against a glob that silently matches nothing (a moved ../shared, a renamed file)."""
    assert JAFFLE.is_file(), JAFFLE
    minors = {".".join(p.name[len("manifest_dbt-") :].split(".")[:2]) for p in VERSION_MANIFESTS}
    assert WANTED_MINORS <= minors, f"missing version manifests: {sorted(WANTED_MINORS - minors)}"
    assert LARGE_MANIFESTS, f"no large manifests under {SHARED / 'large'}"
    assert OWN_MANIFESTS, f"no manifests under {REPO / 'fixtures' / 'manifests'}"


def test_every_manifest_builds_a_dag_without_dbt(shared_manifests: Path) -> None:
    paths = [str(p) for p in _manifests()]
    done = subprocess.run(
        [sys.executable, "-c", _NO_DBT_CHILD, json.dumps(paths)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ),  # conftest's throwaway AIRFLOW_HOME
        timeout=300,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-5000:]}"
    line = next(ln for ln in reversed(done.stdout.splitlines()) if ln.startswith("RESULT "))
    report = json.loads(line[len("RESULT ") :])
    assert report["attempts"] == [], f"something tried to import dbt: {report['attempts']}"
    built = {r["path"]: r for r in report["results"]}
    assert sorted(built) == sorted(paths)
    for path in paths:
        assert built[path]["tasks"] > 0, f"{path}: the DAG has no tasks"
        assert built[path]["dbt_loaded"] == [], f"{path}: dbt modules loaded: {built[path]['dbt_loaded']}"


def test_example_dag_folder_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from manifest_dag.core.airflow_compat import dag_bag_class

    DagBag = dag_bag_class()

    monkeypatch.setenv("MANIFEST_DAG_DEMO_DIR", str(tmp_path))
    bag = DagBag(str(REPO / "examples" / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    assert "shop" in bag.dag_ids, bag.dag_ids
    dag = bag.dags["shop"]  # not get_dag(): that reads the metadata DB, which parsing needs not
    assert len(dag.tasks) > 0
    assert "dbt" not in sys.modules
