"""Section 2 of ``docs/performance-worker.md``: the demo DAG through a real scheduler, and the
targets judged on those runs.

Apart from ``worker_sched.py``, which measures the runs, so that the report can be written
without starting a deployment (and that module can write the report after each one).
"""

from __future__ import annotations

from collections.abc import Mapping

from benchmarks.report import earlier_runs_line, fmt_ratio, fmt_s, measured_rows, median_of_runs, table
from benchmarks.worker_setup import SCHED_TOOLS, TOOL_LABEL


def merged(results: Mapping, case: str) -> Mapping | None:
    """Medians over a row's successful runs, with ``runs`` = how many."""
    return median_of_runs((results.get("sched") or {}).get(case), (results.get("sched_earlier") or {}).get(case))


def sched_table(results: Mapping) -> list[str]:
    sched = results.get("sched") or {}
    if not sched:
        return ["(not measured yet: `python -m benchmarks.worker --cases sched`)", ""]
    # cosmos's reference: the median of its successful runs (a failed run ends early)
    ref = {state: (merged(results, f"cosmos-venvdir/{state}") or {}).get("dag_s") for state in ("cold", "warm")}
    rows = []
    for tool, state, r in measured_rows(sched, SCHED_TOOLS):
        if "error" in r:
            rows.append([TOOL_LABEL[tool], state, "failed: " + r["error"][:80]] + ["–"] * 12)
            continue
        use = r.get("warm_use")
        rows.append(
            [
                TOOL_LABEL[tool],
                state,
                fmt_s(r.get("dag_s")),
                f"{r.get('ok', 0)}/{r.get('tasks', 0)}",
                str(r.get("peak_concurrent", "–")),
                fmt_s(r.get("task_median_s")),
                fmt_s(r.get("task_p90_s")),
                fmt_s(r.get("overhead_median_s")),
                fmt_s(r.get("overhead_p90_s")),
                fmt_s(r.get("overhead_no_wait_median_s")),
                fmt_s(r.get("lock_wait_sum_s")),
                f"{use['reused']} / {use['started']} / {use['cold']}" if use else "–",
                fmt_ratio(ref[state], r.get("dag_s")) if r.get("state") == "success" else "– (run failed)",
                str(r.get("load", "–")) + (f" → {r['load_end']}" if r.get("load_end") is not None else ""),
                str(r.get("code", "–")),
            ]
        )
    out = table(
        [
            "tool",
            "venv cache",
            "DAG run wall s",
            "tasks ok",
            "peak at once",
            "task median s",
            "task p90 s",
            "dbt overhead median s",
            "dbt overhead p90 s",
            "overhead without DuckDB wait, median s",
            "DuckDB wait, sum s",
            "warm: reused / started / cold",
            "cosmos ÷ this",
            "load 1 min (start → end)",
            "commit",
        ],
        rows,
    )
    out.append("")
    failed = [(case, r) for case, r in sorted(sched.items()) if r.get("failures")]
    failed += [
        (case, r)
        for case, rows_ in sorted((results.get("sched_earlier") or {}).items())
        for r in rows_
        if r.get("failures")
    ]
    if failed:
        out.append(
            "Runs that failed, and why (each failed task's first dbt error line): "
            + "; ".join(
                f"{TOOL_LABEL[case.split('/')[0]]}, {case.split('/')[1]} (commit {r.get('code')}): "
                + ", ".join(f"`{task}`: {reason}" for task, reason in sorted(r["failures"].items()))
                for case, r in failed
            )
            + "."
        )
        out.append("")
    return out + earlier_runs_line(results.get("sched_earlier") or {}, "DAG run wall s", TOOL_LABEL)


def targets(results: Mapping) -> list[list[str]]:
    """The issue's targets, judged on the scheduler runs (medians over a row's runs)."""
    rows: list[list[str]] = []
    warm = merged(results, "md-warm/warm")
    if warm and warm.get("overhead_median_s") is not None:
        v = warm["overhead_median_s"]
        n = "" if warm["runs"] == 1 else f", median of {warm['runs']} runs"
        rows.append(
            [
                "real scheduler: warm per-task dbt overhead ≤ 0.5 s (median)",
                f"{fmt_s(v)} s{n}",
                "met" if v <= 0.5 else "missed",
            ]
        )
    cosmos = merged(results, "cosmos-venvdir/warm")
    if warm and cosmos and warm.get("dag_s") and cosmos.get("dag_s"):
        ratio = cosmos["dag_s"] / warm["dag_s"]
        rows.append(
            [
                "real scheduler: warm venv cache, DAG run ≥ 5× faster than cosmos with virtualenv_dir",
                f"{fmt_ratio(cosmos['dag_s'], warm['dag_s'])} ({fmt_s(cosmos['dag_s'])} s vs "
                f"{fmt_s(warm['dag_s'])} s; medians of {cosmos['runs']} and {warm['runs']} runs)",
                "met" if ratio >= 5 else "missed",
            ]
        )
    return rows


SECTION_INTRO = [
    "Each task runs in its own Airflow task-runner process, which loads the DAG file again (inside",
    "a parsing context naming the task), so these durations include what a deployment pays per task",
    "and `dag.test()` does not: the task runner's start, the DAG file load (manifest-dag's",
    "task-scoped build; cosmos's manifest load and render), and up to four tasks sharing two cores",
    "with the scheduler, the DAG processor and the api-server. The deployment is",
    "`tests/support/scheduler_env.py` (Postgres metadata DB, LocalExecutor, parallelism 4); cosmos gets a",
    "deployment of its own from `.bench/cosmos-venv`. Each tool's first DAG run starts from an",
    "empty venv cache (*cold*), its second reuses it (*warm*); every run writes a fresh DuckDB file.",
    "manifest-dag's warm processes are stopped after each run, so a run starts its own.",
    "",
    "- *DAG run wall s*: `dag_run.start_date` → `end_date`.",
    "- *task median / p90*: `end_date - start_date` per task instance; *dbt overhead*: that minus",
    "  the nodes' `execution_time` in the task's `run_results.json` (as in section 1).",
    "- *DuckDB wait*: manifest-dag's tasks on one DuckDB file take turns (DuckDB allows one writer),",
    "  and a task logs how long it waited; that wait is part of its overhead. *overhead without",
    "  DuckDB wait* takes it out. cosmos has no such lock, so its column is empty: its lock on the",
    "  venv keeps most of its dbt runs apart, but not all of them (see the failed runs below).",
    "- *warm: reused / started / cold*: per task, from its log: ran in a warm process another task",
    "  had started; started one; ran dbt as a fresh process (warm path off or unavailable).",
    "- *cosmos ÷ this*: cosmos's DAG run wall time (the median of its successful runs, same",
    "  venv-cache state) over this row's.",
    "",
]
