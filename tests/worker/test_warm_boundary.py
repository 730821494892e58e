"""Issue 19 item 5: warm dbt processes never cross a trust boundary (venv, project folder, warm_scope)."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifest_dag import ConfigError, VenvConfig
from manifest_dag.operators import DbtRunOperator
from manifest_dag.worker.invokers import default_invoker, warm_pool_dir
from manifest_dag.worker.venv import Venv, VenvCache
from manifest_dag.worker.warm import FallbackInvoker


def _pool(tmp_path: Path, project: Path, scope: str | None = None) -> Path:
    cache = VenvCache(tmp_path / "venvs", log=lambda s: None)
    root = tmp_path / "venvs" / "k1"
    venv = Venv(key="k1", path=root, python=root / "bin" / "python", bin_dir=root / "bin", built=False)
    invoker = default_invoker(venv, cache, 2, lambda s: None, project_dir=project, warm_scope=scope)
    assert isinstance(invoker, FallbackInvoker)
    return invoker.warm.pool_dir


def test_two_projects_never_share_a_warm_pool(tmp_path: Path) -> None:
    a, b = tmp_path / "team_a" / "shop", tmp_path / "team_b" / "shop"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    assert _pool(tmp_path, a) != _pool(tmp_path, b)
    assert _pool(tmp_path, a) == _pool(tmp_path, a)  # the same project's tasks do share one
    assert _pool(tmp_path, a) == _pool(tmp_path, tmp_path / "team_a" / "." / "shop")  # however spelt


def test_the_authors_scope_separates_tasks_of_one_project(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    assert _pool(tmp_path, project, "finance") != _pool(tmp_path, project, "marketing")
    assert _pool(tmp_path, project, "finance") != _pool(tmp_path, project)
    assert _pool(tmp_path, project, "finance") == warm_pool_dir(tmp_path / "venvs", "k1", project, "finance")


def test_the_operator_hands_its_scope_to_the_worker(tmp_path: Path) -> None:
    op = DbtRunOperator(
        task_id="orders",
        project_dir=str(tmp_path),
        venv_config=VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"], warm_scope="finance"),
    )
    assert op.invocation().warm_scope == "finance"


def test_an_empty_scope_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"VenvConfig\.warm_scope"):
        VenvConfig(py_requirements=["dbt-core~=1.11.0"], warm_scope="")
