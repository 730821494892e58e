"""The demo's progress view, read from real ``dag.test()`` log lines (Airflow 3.3, captured from ``make demo``)."""

from __future__ import annotations

from pathlib import Path

from manifest_dag.cli.demo import progress_line

CAPTURED = Path(__file__).parent / "data" / "dag_test_airflow3.log"


def test_progress_names_each_task_and_the_one_time_setup() -> None:
    shown = [line for line in map(progress_line, CAPTURED.read_text().splitlines()) if line is not None]
    assert shown == [
        "  ▶ raw_customers_seed",
        "      building the worker venv (dbt-core~=1.11.0 + dbt-duckdb~=1.11.0, with uv), about a minute the first time ...",
        "      checking it: dbt --version",
        "      worker venv ready in 29.8 s",
        "      dbt deps: installing the project's packages (once)",
        "      starting a warm dbt process (later tasks reuse it)",
        "  ▶ raw_payments_seed",
        "  ▶ utils_calendar.run",
    ]


def test_the_run_id_is_never_shown_as_a_task() -> None:
    """The old view printed ``▶ manual__...`` (the run id in the TaskInstance repr) for every task."""
    for line in CAPTURED.read_text().splitlines():
        assert "manual__" not in (progress_line(line) or "")


def test_pip_and_a_single_requirement() -> None:
    line = "2026-12-01T22:31:49.060274Z [info     ] installing 1 requirement with pip: dbt-duckdb~=1.11.0 [airflow.task]"
    assert progress_line(line) == (
        "      building the worker venv (dbt-duckdb~=1.11.0, with pip), about a minute the first time ..."
    )
