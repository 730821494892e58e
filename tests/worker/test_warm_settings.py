"""The warm pool's size: by default, as many processes as the worker runs tasks at once (issue 11)."""

from __future__ import annotations

import os

import pytest

from manifest_dag.worker.warm import WarmSettings, worker_task_parallelism


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("MANIFEST_DAG_WARM_") or name in (
            "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__PARALLELISM", "AIRFLOW__CELERY__WORKER_CONCURRENCY",
            "AIRFLOW__EDGE__WORKER_CONCURRENCY",
        ):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    ("executor", "options", "expected"),
    [
        ("LocalExecutor", {"AIRFLOW__CORE__PARALLELISM": "7"}, 7),
        ("airflow.executors.local_executor.LocalExecutor", {"AIRFLOW__CORE__PARALLELISM": "3"}, 3),
        ("CeleryExecutor", {"AIRFLOW__CELERY__WORKER_CONCURRENCY": "5"}, 5),
        ("fast:airflow.providers.edge3.executors.EdgeExecutor", {"AIRFLOW__EDGE__WORKER_CONCURRENCY": "6"}, 6),
        ("KubernetesExecutor", {}, 1),
        # several executors: the largest figure, so no task of any of them finds the pool full
        ("KubernetesExecutor,LocalExecutor", {"AIRFLOW__CORE__PARALLELISM": "9"}, 9),
        # parallelism 0 is "unbounded": nothing to size a pool by
        ("LocalExecutor", {"AIRFLOW__CORE__PARALLELISM": "0"}, None),
        ("SomeThirdPartyExecutor", {}, None),
    ],
)
def test_the_pool_is_sized_by_the_workers_task_parallelism(
    clean_env: pytest.MonkeyPatch, executor: str, options: dict[str, str], expected: int | None
) -> None:
    clean_env.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    for k, v in options.items():
        clean_env.setenv(k, v)
    assert worker_task_parallelism() == expected
    default = expected or max(2, os.cpu_count() or 2)
    assert WarmSettings.from_env().processes == default


def test_the_environment_and_the_venv_config_override_the_workers_parallelism(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    clean_env.setenv("AIRFLOW__CORE__PARALLELISM", "7")
    clean_env.setenv("MANIFEST_DAG_WARM_PROCESSES", "3")
    assert WarmSettings.from_env().processes == 3
    assert WarmSettings.from_env(0).processes == 0  # VenvConfig(warm_processes=0): off
    assert WarmSettings.from_env(4).processes == 4


def test_a_malformed_option_falls_back_to_the_cores(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    clean_env.setenv("AIRFLOW__CORE__PARALLELISM", "many")
    assert worker_task_parallelism() is None
    assert WarmSettings.from_env().processes == max(2, os.cpu_count() or 2)
