"""The line between the two sides: the import contract holds, fails when crossed, and holds at run time.

The contract (``[tool.importlinter]`` in pyproject.toml) is checked statically by ``make lint``;
here it is also checked to *bite*: a copy of the package with one scheduler module importing a
worker module must fail it. And since the operators' one allowed crossing is an import inside
``execute``, a fresh interpreter that builds a whole DAG must not have loaded any worker module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import JAFFLE, REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(package_parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_contract_holds() -> None:
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout


def test_the_contract_fails_when_the_scheduler_imports_the_worker(tmp_path: Path) -> None:
    shutil.copytree(REPO / "manifest_dag", tmp_path / "manifest_dag", ignore=shutil.ignore_patterns("__pycache__"))
    plan = tmp_path / "manifest_dag" / "scheduler" / "plan.py"
    plan.write_text(plan.read_text() + "\n\ndef _crossing() -> None:\n    import manifest_dag.worker.results  # noqa: F401\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout[-3000:]
    assert "The scheduler side never imports the worker side BROKEN" in done.stdout
    assert "manifest_dag.scheduler.plan -> manifest_dag.worker.results" in done.stdout


def test_the_contract_fails_when_core_imports_airflow(tmp_path: Path) -> None:
    shutil.copytree(REPO / "manifest_dag", tmp_path / "manifest_dag", ignore=shutil.ignore_patterns("__pycache__"))
    dbt = tmp_path / "manifest_dag" / "core" / "dbt.py"
    dbt.write_text(dbt.read_text() + "\n\ndef _crossing() -> None:\n    import airflow.sdk  # noqa: F401\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout[-3000:]
    assert "Manifest, graph, selection and plan import no Airflow BROKEN" in done.stdout


_BUILD_A_DAG = f"""
import json, sys
from manifest_dag import DbtDag, ProjectConfig, RenderConfig, VenvConfig
dag = DbtDag(dag_id="contract", schedule=None,
             project_config=ProjectConfig(manifest_path={str(JAFFLE)!r}, plan_cache_dir=False),
             venv_config=VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"]))
assert len(dag.task_dict) > 5, list(dag.task_dict)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("manifest_dag.worker") or m == "dbt" or m.startswith("dbt."))))
"""


def test_building_a_dag_loads_no_worker_module() -> None:
    """The operators import the worker side inside ``execute`` only: a DAG parse never loads it."""
    done = subprocess.run([sys.executable, "-c", _BUILD_A_DAG], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"building a DAG loaded {loaded}"
