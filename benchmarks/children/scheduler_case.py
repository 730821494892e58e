"""One measured case, in a fresh process; prints one JSON line as its last line of output.

Run by path by ``python -m benchmarks.scheduler`` (with the package venv's Python for manifest-dag
and the floors, with ``.bench/cosmos-venv``'s Python for cosmos), so it imports nothing from
``benchmarks``; not meant to be called by hand, but it can be:

    python benchmarks/children/scheduler_case.py build md   <manifest> [--rebuilds 1]
    python benchmarks/children/scheduler_case.py build cosmos <manifest> --project-dir <dir> --profiles <yml>
    python benchmarks/children/scheduler_case.py build orjson <manifest>
    python benchmarks/children/scheduler_case.py build floor <manifest> --skeleton <json>
    python benchmarks/children/scheduler_case.py skeleton <manifest> <out.json>
    python benchmarks/children/scheduler_case.py parse <dag_file> <dag_id> [<task_id>]
    python benchmarks/children/scheduler_case.py select <manifest> <expr> ...

Times are ``time.perf_counter`` seconds after the imports (``cpu_s``: the process's CPU seconds
over the same window, steadier than wall time on a shared machine); ``rss_mb`` is the process's peak
resident set (``VmHWM``), imports included; ``rss_import_mb`` the peak right after imports.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path


def _rss_mb() -> float:
    """Peak RSS of this process. ``ru_maxrss`` survives ``exec`` on Linux (a child would report
    its parent's peak if higher), so read the per-address-space ``VmHWM`` where there is one."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _emit(result: dict) -> None:
    result["rss_mb"] = round(_rss_mb(), 1)
    print(json.dumps(result), flush=True)


# -- manifest-dag ----------------------------------------------------------------------------------
def build_md(manifest: str, rebuilds: int) -> dict:
    import airflow.sdk  # noqa: F401 - imports are not part of the build time

    import manifest_dag.scheduler.dag as md_dag
    from manifest_dag import DbtDag, ProfileConfig, ProjectConfig

    # what a cold build imports on first use (a warm one never does): imports, not build time,
    # as for cosmos, whose package import loads its graph code up front
    import manifest_dag.scheduler.graph, manifest_dag.scheduler.naming, manifest_dag.core.requirements, manifest_dag.scheduler.selection  # noqa: E401, F401
    import networkx  # noqa: F401

    spent: list[float] = []
    real = md_dag.cached_plan

    def timed_cached_plan(*args, **kwargs):  # the manifest handling part of a build
        t = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - t)

    md_dag.cached_plan = timed_cached_plan
    profile = ProfileConfig(profile_name="bench", profiles_yml_path="/nonexistent/profiles.yml")
    project = ProjectConfig(manifest_path=manifest, project_dir="/nonexistent/project")
    rss_import = _rss_mb()

    def one() -> tuple[float, int]:
        t = time.perf_counter()
        dag = DbtDag(dag_id="bench", schedule=None, project_config=project, profile_config=profile)
        return time.perf_counter() - t, len(dag.task_dict)

    cpu = time.process_time()
    build_s, tasks = one()
    cpu_s = time.process_time() - cpu
    # the first build's peak: re-builds in the same process keep the previous DAGs (cyclic
    # garbage, collected later) and would add their memory to the high-water mark
    out = {"build_s": build_s, "cpu_s": cpu_s, "tasks": tasks, "manifest_s": spent[0], "rss_import_mb": rss_import,
           "rss_first_mb": round(_rss_mb(), 1)}
    if rebuilds:
        times = [one()[0] for _ in range(rebuilds)]
        out["rebuild_s"] = statistics.median(times)
        out["rebuild_manifest_s"] = statistics.median(spent[1:])
    return out


# -- astronomer-cosmos -----------------------------------------------------------------------------
def build_cosmos(manifest: str, project_dir: str, profiles: str, rebuilds: int) -> dict:
    import airflow.sdk  # noqa: F401
    from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, LoadMode

    rss_import = _rss_mb()

    def one() -> tuple[float, int]:
        t = time.perf_counter()
        dag = DbtDag(
            dag_id="bench",
            schedule=None,
            project_config=ProjectConfig(dbt_project_path=project_dir, manifest_path=manifest),
            profile_config=ProfileConfig(profile_name="bench", target_name="dev", profiles_yml_filepath=profiles),
            execution_config=ExecutionConfig(execution_mode=ExecutionMode.VIRTUALENV),
            render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST),
            operator_args={"py_requirements": ["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"]},
        )
        return time.perf_counter() - t, len(dag.task_dict)

    cpu = time.process_time()
    build_s, tasks = one()
    cpu_s = time.process_time() - cpu
    out = {"build_s": build_s, "cpu_s": cpu_s, "tasks": tasks, "rss_import_mb": rss_import}
    if rebuilds:
        out["rebuild_s"] = statistics.median(one()[0] for _ in range(rebuilds))
    return out


# -- floors ----------------------------------------------------------------------------------------
def build_orjson(manifest: str) -> dict:
    import orjson

    rss_import = _rss_mb()
    t, cpu = time.perf_counter(), time.process_time()
    data = orjson.loads(Path(manifest).read_bytes())
    build_s, cpu_s = time.perf_counter() - t, time.process_time() - cpu
    return {"build_s": build_s, "cpu_s": cpu_s, "tasks": len(data.get("nodes", {})), "rss_import_mb": rss_import}


def skeleton(manifest: str, out: str) -> dict:
    """The groups, tasks and edges manifest-dag renders for ``manifest``, as plain JSON."""
    from manifest_dag import ProjectConfig
    from manifest_dag.scheduler.dag import plan_project

    _, plan = plan_project(ProjectConfig(manifest_path=manifest))
    data = {
        "groups": [g.group_id for g in plan.groups],
        "tasks": [[t.task_id, t.group_id, list(t.upstream)] for t in plan.tasks],
    }
    Path(out).write_text(json.dumps(data))
    return {"tasks": len(plan.tasks), "groups": len(plan.groups)}


def build_floor(manifest: str, skeleton_path: str, rebuilds: int, no_gc: bool = False) -> dict:
    """The linear floor: read the manifest with orjson, then the same groups, tasks and edges as
    plain EmptyOperators in TaskGroups, wired straight into the id sets (linear time).

    ``no_gc``: with Python's cyclic GC off, as manifest-dag runs its own bulk work; shown beside
    the plain floor so that a ratio to the floor is not read as a smaller gap than it is."""
    import gc

    import orjson
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, TaskGroup

    skel = json.loads(Path(skeleton_path).read_text())
    rss_import = _rss_mb()
    if no_gc:
        gc.disable()

    def one() -> tuple[float, float, int]:
        t = time.perf_counter()
        data = orjson.loads(Path(manifest).read_bytes())
        del data
        t_tasks = time.perf_counter()
        dag = DAG(dag_id="floor", schedule=None)
        groups = {gid: TaskGroup(group_id=gid, dag=dag) for gid in skel["groups"]}
        tasks = {}
        for tid, gid, _ in skel["tasks"]:
            local = tid.rsplit(".", 1)[-1] if gid else tid
            tasks[tid] = EmptyOperator(task_id=local, task_group=groups[gid] if gid else None, dag=dag)
        for tid, _, ups in skel["tasks"]:
            down = tasks[tid]
            for up in ups:
                tasks[up].downstream_task_ids.add(down.task_id)
                down.upstream_task_ids.add(tasks[up].task_id)
        end = time.perf_counter()
        return end - t, end - t_tasks, len(dag.task_dict)

    cpu = time.process_time()
    build_s, tasks_s, n = one()
    cpu_s = time.process_time() - cpu
    out = {"build_s": build_s, "cpu_s": cpu_s, "tasks_s": tasks_s, "tasks": n, "rss_import_mb": rss_import}
    if rebuilds:
        out["rebuild_s"] = statistics.median(one()[0] for _ in range(rebuilds))
    return out


# -- a DAG file parsed as Airflow's task runner does -----------------------------------------------
def parse(dag_file: str, dag_id: str, task_id: str | None) -> dict:
    """A DagBag load of ``dag_file`` inside the parsing context, after Airflow is imported."""
    import os

    import airflow.sdk.execution_time.task_runner  # noqa: F401 - what the runner has imported
    from manifest_dag.core.airflow_compat import dag_bag_class

    DagBag = dag_bag_class()

    if task_id:
        os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_id
        os.environ["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] = task_id
    rss_import = _rss_mb()
    t, cpu = time.perf_counter(), time.process_time()
    bag = DagBag(dag_folder=dag_file, safe_mode=False, load_op_links=False)
    parse_s, cpu_s = time.perf_counter() - t, time.process_time() - cpu
    if bag.import_errors:
        raise SystemExit(f"import errors: {bag.import_errors}")
    dag = bag.dags[dag_id]
    if task_id and task_id not in dag.task_dict:
        raise SystemExit(f"{task_id} not in the parsed DAG")
    return {"parse_s": parse_s, "cpu_s": cpu_s, "tasks": len(dag.task_dict), "rss_import_mb": rss_import}


# -- selection ---------------------------------------------------------------------------------------
def select(manifest: str, exprs: list[str], repeats: int = 3) -> dict:
    from manifest_dag.scheduler.graph import DbtGraph
    from manifest_dag.scheduler.manifest import load_manifest
    from manifest_dag.scheduler.selection import select_nodes

    t = time.perf_counter()
    m = load_manifest(manifest)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    graph = DbtGraph(m)
    graph_s = time.perf_counter() - t
    rows = []
    for expr in exprs:
        select_, _, exclude = expr.partition(" --exclude ")
        times, count = [], 0
        for _ in range(repeats):
            t = time.perf_counter()
            count = len(select_nodes(m, select=select_.split(), exclude=exclude.split(), graph=graph))
            times.append(time.perf_counter() - t)
        rows.append({"expr": expr, "s": statistics.median(times), "first_s": times[0], "nodes": count})
    return {"load_s": load_s, "graph_s": graph_s, "nodes": len(m.nodes), "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("kind", choices=("md", "cosmos", "orjson", "floor"))
    b.add_argument("manifest")
    b.add_argument("--rebuilds", type=int, default=0)
    b.add_argument("--project-dir")
    b.add_argument("--profiles")
    b.add_argument("--skeleton")
    b.add_argument("--no-gc", action="store_true")
    s = sub.add_parser("skeleton")
    s.add_argument("manifest")
    s.add_argument("out")
    p = sub.add_parser("parse")
    p.add_argument("dag_file")
    p.add_argument("dag_id")
    p.add_argument("task_id", nargs="?")
    q = sub.add_parser("select")
    q.add_argument("manifest")
    q.add_argument("exprs", nargs="+")
    a = ap.parse_args()
    if a.cmd == "build":
        if a.kind == "md":
            out = build_md(a.manifest, a.rebuilds)
        elif a.kind == "cosmos":
            out = build_cosmos(a.manifest, a.project_dir, a.profiles, a.rebuilds)
        elif a.kind == "orjson":
            out = build_orjson(a.manifest)
        else:
            out = build_floor(a.manifest, a.skeleton, a.rebuilds, a.no_gc)
    elif a.cmd == "skeleton":
        out = skeleton(a.manifest, a.out)
    elif a.cmd == "parse":
        out = parse(a.dag_file, a.dag_id, a.task_id)
    else:
        out = select(a.manifest, a.exprs)
    _emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
