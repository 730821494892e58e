"""``make bench-worker``, case *sched*: the demo DAG through a real Airflow scheduler (issue 11).

The dag.test() case runs one task at a time in one process; a deployment does not. Here a real
Airflow 3 deployment (``tests/support/scheduler_env.py``: Postgres as metadata DB, scheduler,
dag-processor and api-server, the LocalExecutor with parallelism 4) runs the whole demo DAG
(``fixtures/shop`` on DuckDB), each task in its own task-runner process that loads the DAG file
again, up to four at once on the machine's two cores:

- ``md-cold``: manifest-dag with ``VenvConfig(warm_processes=0)``, a fresh dbt process per task;
- ``md-warm``: manifest-dag's default (warm dbt processes, the pool sized by the LocalExecutor's
  parallelism);
- ``cosmos-venvdir``: astronomer-cosmos ``ExecutionMode.VIRTUALENV`` with ``virtualenv_dir``, its
  Airflow and cosmos from ``.bench/cosmos-venv`` (a deployment of its own).

Each tool gets two DAG runs: the first with an empty venv cache (*cold*), the second reusing it
(*warm*); each run writes a fresh DuckDB file. manifest-dag's warm processes are stopped after
each run, so the warm-cache run starts its own. The two manifest-dag tools share one deployment
and take turns (cold, warm, cold, warm); nothing else runs in the deployment meanwhile.

Per task: Airflow's ``start_date``/``end_date`` from the metadata DB (what the task runner spends
after the executor started it: the DAG file load, the operator, dbt); its dbt overhead is that
duration minus the nodes' ``execution_time`` in the ``run_results.json`` its dbt call wrote, kept
from the ``node_seconds`` of manifest-dag's XCom value, and from the ``run_results.json``
cosmos's ``callback`` keeps, as in the dag.test() case. Per run: the DAG run's wall time
(``dag_run.start_date`` → ``end_date``), the peak of tasks running at once, and for manifest-dag
what each task log says of the warm path (reused a process, started one, or ran cold). The
section of the report these runs fill is ``worker_sched_report.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
from collections.abc import Mapping
from pathlib import Path

from benchmarks.cosmos_venv import COSMOS_PY
from benchmarks.provenance import code_version
from benchmarks.report import fmt_s
from benchmarks.runtime import PY, log, save_results
from benchmarks.task_times import node_times, summarize_run, task_overhead
from benchmarks.worker_report import write_doc
from benchmarks.worker_setup import RESULTS, SCHED_TOOLS, load_now, shop_dag, stop_warm, synth_dag, uv_bin_dir
from tests.support.scheduler_env import SchedulerEnv, make_root, peak_concurrency

WARM_REUSED = "warm dbt: running in warm process"
WARM_STARTED = "warm dbt: starting a warm dbt process"
WARM_FELL_BACK = "warm dbt unavailable"
LOCK_WAIT = re.compile(r"DuckDB target free after ([0-9.]+) s of waiting")
DBT_ERROR = re.compile(r"\b(?:IO|Runtime|Database|Compilation|Parsing|Dependency) Error:.*")


def dag_id(tool: str, cache_state: str) -> str:
    return f"shop_{tool}_{cache_state}".replace("-", "_")


def warm_use(log_texts: Mapping[str, str]) -> dict[str, int]:
    """What the task logs say of the warm path: tasks that reused a process, started one, ran cold."""
    out = {"reused": 0, "started": 0, "cold": 0}
    for text in log_texts.values():
        if WARM_FELL_BACK in text or WARM_REUSED not in text:
            out["cold"] += 1
        elif WARM_STARTED in text:
            out["started"] += 1
        else:
            out["reused"] += 1
    return out


def failure_reasons(tis: list[dict], log_texts: Mapping[str, str]) -> dict[str, str]:
    """Each failed task's first dbt error line, from its log (JSON lines: their ``event``)."""
    out: dict[str, str] = {}
    for ti in tis:
        if ti["state"] != "failed":
            continue
        reason = "(no dbt error line in the task log)"
        for line in log_texts.get(ti["task_id"], "").splitlines():
            text = line
            if line.startswith("{"):
                try:
                    text = str(json.loads(line).get("event", ""))
                except ValueError:
                    pass
            m = DBT_ERROR.search(text)
            if m:
                reason = m.group(0).strip()[:240]
                break
        out[ti["task_id"]] = reason
    return out


def lock_waits(log_texts: Mapping[str, str]) -> dict[str, float]:
    """Seconds each task waited for the DuckDB file's turn (manifest-dag logs it), 0 if it did not."""
    return {task: sum(float(m) for m in LOCK_WAIT.findall(text)) for task, text in log_texts.items()}


def summarize(
    tis: list[dict],
    run_wall: float | None,
    run_state: str,
    node_time: Mapping[str, float],
    waits: Mapping[str, float] | None = None,
) -> dict:
    """One scheduler DAG run → the same figures as a dag.test() run, plus its peak concurrency."""
    child = {
        "state": run_state,
        "dag_s": run_wall,
        "tasks": {
            ti["task_id"]: {
                "state": ti["state"],
                "duration": ti["end"] - ti["start"] if ti["start"] is not None and ti["end"] is not None else None,
            }
            for ti in tis
        },
    }
    row = summarize_run(child, node_time)
    row["peak_concurrent"] = peak_concurrency(tis)
    row["per_task"] = {tid: [t["state"], t["duration"], node_time.get(tid)] for tid, t in child["tasks"].items()}
    if waits is not None:  # the overhead without the wait for the DuckDB file's turn
        rest = [
            o - waits.get(tid, 0.0)
            for tid, t in child["tasks"].items()
            if (o := task_overhead(t["duration"], node_time.get(tid))) is not None
        ]
        row["lock_wait_sum_s"] = sum(waits.values())
        row["overhead_no_wait_median_s"] = statistics.median(rest) if rest else None
    return row


def _task_logs(env: SchedulerEnv, dag: str, run_id: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    for path in sorted((env.logs / f"dag_id={dag}" / f"run_id={run_id}").glob("task_id=*/**/attempt=*.log")):
        task = next(p for p in path.parts if p.startswith("task_id=")).removeprefix("task_id=")
        texts[task] = texts.get(task, "") + path.read_text(errors="replace")
    return texts


def _dag_file(tool: str, cache_state: str, root: Path, cache: Path) -> tuple[str, dict]:
    cosmos = tool.startswith("cosmos")
    run = root / "runs" / dag_id(tool, cache_state)
    (run / "rr").mkdir(parents=True)
    bench: dict = {
        "dag_id": dag_id(tool, cache_state),
        "rr_dir": str(run / "rr"),
        "duckdb": str(run / "shop.duckdb"),
        "venv_cache": str(cache),
    }
    if tool == "md-cold":
        bench["warm_processes"] = 0
    if cosmos:
        bench["cosmos_venv_dir"] = str(cache / "venv")
    return shop_dag(cosmos, [], bench), bench


def measure_run(env: SchedulerEnv, dag: str, cosmos: bool, cache: Path, rr_dir: Path, timeout: float) -> dict:
    """Trigger one run of ``dag`` in the started deployment ``env``, wait for it, and summarize it
    (task durations, node seconds, lock waits, warm use, failures); manifest-dag's warm processes
    in ``cache`` are stopped after it, so the next run starts its own."""
    load = load_now()
    code = code_version()
    log(f"  {dag}: triggering (load {load}) ...")
    run_id = env.trigger(dag)
    try:
        final = env.wait_runs({dag: run_id}, timeout=timeout)[dag]
    finally:
        if not cosmos:
            stopped = stop_warm(cache)
            if stopped:
                log(f"  stopped {stopped} warm dbt process(es)")
    tis = env.task_instances({dag: run_id})
    ((start, end),) = env.meta(
        f"select extract(epoch from start_date), extract(epoch from end_date) from dag_run "
        f"where dag_id='{dag}' and run_id='{run_id}'"
    )
    rr = {p.stem: json.loads(p.read_text()) for p in rr_dir.glob("*.json")}
    xcoms = {
        task: json.loads(value)
        for task, value in env.meta(
            f"select task_id, value::text from xcom where dag_id='{dag}' and run_id='{run_id}' "
            "and key='return_value' and map_index=-1"
        )
    }
    logs = _task_logs(env, dag, run_id)
    row = summarize(
        tis,
        float(end) - float(start) if start and end else None,
        final,
        node_times(rr, xcoms),
        None if cosmos else lock_waits(logs),
    )
    if not cosmos:
        row["warm_use"] = warm_use(logs)
    if final != "success":
        row["failures"] = failure_reasons(tis, logs)
    row.update(load=load, load_end=round(os.getloadavg()[0], 2), code=code)
    row["node_seconds"] = "run_results.json (callback)" if cosmos else "XCom node_seconds"
    log(
        f"  {final}: run {fmt_s(row['dag_s'])} s, {row['ok']}/{row['tasks']} ok, peak "
        f"{row['peak_concurrent']} at once, task median {fmt_s(row['task_median_s'])} s, overhead "
        f"median {fmt_s(row['overhead_median_s'])} s" + (f", warm {row['warm_use']}" if "warm_use" in row else "")
    )
    return row


def deployment(tools: list[str], args: argparse.Namespace) -> dict[str, dict]:
    """One deployment for ``tools`` (all manifest-dag, or cosmos): every tool's cold run, then
    every tool's warm run; {"tool/cache": row}."""
    cosmos = tools[0].startswith("cosmos")
    root = make_root("md-bench-sched-")
    env = SchedulerEnv(root, root / "dags", python=str(COSMOS_PY if cosmos else PY))
    if cosmos and args.cosmos_uv:  # as in the dag.test() case: cosmos's venvs with uv
        env.extra_env["PATH"] = f"{uv_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}"
    rows: dict[str, dict] = {}
    plan = [(tool, state) for state in ("cold", "warm") for tool in tools]
    try:
        (root / "dags").mkdir(parents=True)
        caches = {tool: root / "caches" / tool for tool in tools}
        settings = {}
        for tool, state in plan:
            caches[tool].mkdir(parents=True, exist_ok=True)
            text, settings[(tool, state)] = _dag_file(tool, state, root, caches[tool])
            (root / "dags" / f"{dag_id(tool, state)}.py").write_text(text)
        log(f"[sched] starting a deployment for {', '.join(tools)} in {root} ...")
        env.start()
        env.wait_dags_parsed([dag_id(t, s) for t, s in plan], timeout=600)
        for tool, state in plan:
            log(f"[sched] {tool}, {state} venv cache ...")
            rr_dir = Path(settings[(tool, state)]["rr_dir"])
            rows[f"{tool}/{state}"] = measure_run(env, dag_id(tool, state), cosmos, caches[tool], rr_dir, args.timeout)
    finally:
        env.stop()
        shutil.rmtree(root, ignore_errors=True)
    return rows


def synth_run(project: Path, select: list[str], cache: Path, args: argparse.Namespace) -> dict:
    """The scale case's DAG (issue 18): ``select`` of the generated project ``project`` rendered by
    manifest-dag with its default warm dbt processes, one DAG run through a deployment of its own.

    ``cache`` is the venv cache the scale case's tasks used (its venv built), so the run measures
    a warm venv cache; the run writes a fresh DuckDB file, and its warm processes are stopped after it.
    """
    root = make_root("md-bench-sched-synth-")
    env = SchedulerEnv(root, root / "dags", python=str(PY))
    dag = "synth_md_warm"
    try:
        run = root / "runs" / dag
        (run / "rr").mkdir(parents=True)
        (root / "dags").mkdir(parents=True)
        bench = {
            "dag_id": dag,
            "rr_dir": str(run / "rr"),
            "duckdb": str(run / "synth.duckdb"),
            "venv_cache": str(cache),
        }
        (root / "dags" / f"{dag}.py").write_text(synth_dag(False, project, select, bench))
        log(f"[scale sched] starting a deployment in {root} for {' '.join(select)} of {project} ...")
        env.start()
        env.wait_dags_parsed([dag], timeout=600)
        return measure_run(env, dag, False, cache, run / "rr", args.timeout)
    finally:
        env.stop()
        shutil.rmtree(root, ignore_errors=True)


def bench_sched(results: dict, args: argparse.Namespace) -> None:
    tools = [t for t in SCHED_TOOLS if t in (args.sched_tools or SCHED_TOOLS)]
    groups = [
        g for g in ([t for t in tools if not t.startswith("cosmos")], [t for t in tools if t.startswith("cosmos")]) if g
    ]
    for group in groups:
        try:
            rows = deployment(group, args)
        except Exception as exc:  # noqa: BLE001 - the report says which deployment failed and why
            log(f"[sched] deployment for {group} failed: {exc}")
            rows = {f"{t}/{s}": {"error": str(exc)[:300]} for t in group for s in ("cold", "warm")}
        for case, row in rows.items():
            old = (results.get("sched") or {}).get(case)
            if old and "error" not in old:
                old = {k: v for k, v in old.items() if k != "per_task"}
                results.setdefault("sched_earlier", {}).setdefault(case, []).append(old)
            results.setdefault("sched", {})[case] = row
        save_results(RESULTS, results)
        write_doc(results)
