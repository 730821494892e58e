"""``make bench-worker``, case *scale* (issue 18): what one model's task costs as the project grows.

Every other worker case runs the 19-model demo project, where a warm task costs a fraction of a
second; real projects have thousands of models, and a task's dbt start-up work (decoding the
msgpack, linking and cycle-checking the graph, copying the project) grows with them. This case
measures that growth:

- projects from ``tests/support/synth_project.generate_project`` (DuckDB) of 20, 500, 2,000 and
  5,000 models (``--scale-sizes``), each parsed once with dbt for its ``manifest.json`` (setup,
  not measured; kept in ``.bench/worker/scale/n<N>/`` between runs, remade when the generator or
  the dbt pins change);
- per size, per tool, ``--scale-tasks`` (9) tasks of one model each, a different model each; the
  first warms up (it starts the warm process, and it is the run's first dbt call on a fresh
  DuckDB path, which dbt's partial parsing treats as a changed profile) and the figures are
  medians over the others: the task's wall time, and its *dbt overhead*, that time minus the
  nodes' ``execution_time`` in the ``run_results.json`` the task's dbt call wrote;
- tools: ``md-warm``, manifest-dag's worker path (``run_dbt``, what ``DbtVenvOperator.execute``
  calls, as in the ``one`` case) through the warm pool; ``md-cold``, the same with
  ``warm_processes=0`` (a fresh dbt process per task); ``dbt-cold``, ``<venv>/bin/dbt run
  --select <model>`` as a fresh process in a copy of the project with its own
  ``partial_parse.msgpack`` in place (the "one cold dbt run" issue 18 compares a warm task with);
  and ``cosmos-venvdir`` at 20 and 2,000 models (``--scale-cosmos-sizes``): cosmos runs a task
  only inside an Airflow DAG, so the same models are one cosmos DAG (``ExecutionMode.VIRTUALENV``
  with ``virtualenv_dir``) through ``dag.test()`` in a child process with cosmos's Airflow, and
  each task's time is Airflow's duration, taken in the order the tasks started;
- the warm processes' RSS after the md-warm tasks, from the pool's ping (``pool_status``);
- one DAG of the 500-model project (``--scale-sched-models``) through a real scheduler, md-warm
  only (``worker_sched.synth_run``): the upstream closure of one model, 20-50 models.

The models are the project's root models (views over ``generate_series``, no parents), so each
task builds one view and nothing else; a project with fewer roots than tasks takes its first
models, and the setup builds their parents. The tools run one after another, each its tasks in a
row (not interleaved), as the tasks of one DAG run follow each other: a warm process's kept state
and a workspace slot's msgpack are then what that tool's own earlier task left. The warm
processes are stopped after md-warm's tasks, before the cold tools run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import provenance, worker_sched
from benchmarks.cosmos_venv import COSMOS_PY
from benchmarks.report import fmt_s
from benchmarks.runtime import CHILDREN, REPO, log, save_results
from benchmarks.task_times import node_seconds
from benchmarks.worker_report import write_doc
from benchmarks.worker_setup import (
    REQS,
    RESULTS,
    SYNTH_PROFILE,
    WB,
    airflow_template,
    base_env,
    load_now,
    md_venv,
    stop_warm,
    synth_dag,
    uv_bin_dir,
)

if TYPE_CHECKING:
    from manifest_dag.worker.venv import Venv

SIZES = (20, 500, 2000, 5000)
COSMOS_SIZES = (20, 2000)
TASKS = 9
SCALE_TOOLS = ("md-warm", "md-cold", "dbt-cold", "cosmos-venvdir")
SCALE = WB / "scale"  # the generated projects, parsed once (git-ignored)
CACHE = WB / "caches" / "scale"  # the scale case's own venv cache: stopping its warm pools touches no other case
COSMOS_CACHE = WB / "caches" / "scale-cosmos"
SCHED_MODELS = 500
SCHED_SELECT = (20, 50)  # how many models the real-scheduler DAG has: at least, at most
GENERATOR = REPO / "tests" / "support" / "synth_project.py"
MARK = "BENCH_RESULT "  # children/dag_test.py's result line
DBT_TIMEOUT = 1800.0  # seconds one plain dbt call may take (setup parse of 5,000 models included)


# -- pure parts (tested offline) -------------------------------------------------------------------
def parse_sizes(text: str) -> list[int]:
    """``"20,500,2000"`` → ``[20, 500, 2000]`` (``--scale-sizes``; empty: none)."""
    sizes = [int(x.replace("_", "")) for x in text.split(",") if x.strip()]
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be positive model counts, got {text!r}")
    return sizes


def model_parents(manifest: Mapping) -> dict[str, list[str]]:
    """Each model's name → its parent models' names, in the manifest's order."""
    nodes = manifest.get("nodes") or {}
    names = {uid: n["name"] for uid, n in nodes.items() if n.get("resource_type") == "model"}
    return {
        names[uid]: [names[p] for p in (nodes[uid].get("depends_on") or {}).get("nodes") or [] if p in names]
        for uid in names
    }


def task_models(parents: Mapping[str, Sequence[str]], k: int) -> list[str]:
    """The ``k`` models the tasks run: root models (no parents) where there are enough, else the
    first ``k`` models by name (the setup then builds their parents)."""
    roots = sorted(m for m, ps in parents.items() if not ps)
    return roots[:k] if len(roots) >= k else sorted(parents)[:k]


def upstream(parents: Mapping[str, Sequence[str]], model: str) -> set[str]:
    """``model`` and every model it reads, directly or not (dbt's ``+model``)."""
    seen = {model}
    todo = [model]
    while todo:
        for p in parents.get(todo.pop(), ()):
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return seen


def closure_select(parents: Mapping[str, Sequence[str]], least: int, most: int) -> tuple[str, int]:
    """A model whose upstream closure (``+model``) has ``least``..``most`` models, the first by name;
    else the one with the largest closure under ``most``: the real-scheduler DAG's selection."""
    best = ("", 0)
    for model in sorted(parents):
        size = len(upstream(parents, model))
        if least <= size <= most:
            return model, size
        if best[1] < size <= most:
            best = (model, size)
    return best


def summarize_tasks(tasks: Sequence[Mapping]) -> dict:
    """One tool's tasks at one size, in the order run (``wall_s``, ``node_s``, ``state``): the
    first warms up; the medians are over the others that succeeded."""
    rest = [t for t in tasks[1:] if t.get("state", "success") == "success" and t.get("wall_s") is not None]
    walls = [t["wall_s"] for t in rest]
    overheads = [t["wall_s"] - t["node_s"] for t in rest if t.get("node_s") is not None]
    nodes = [t["node_s"] for t in rest if t.get("node_s") is not None]
    first = tasks[0] if tasks else {}
    return {
        "tasks": [dict(t) for t in tasks],
        "measured": len(walls),
        "ok": sum(1 for t in tasks if t.get("state", "success") == "success"),
        "task_median_s": statistics.median(walls) if walls else None,
        "overhead_median_s": statistics.median(overheads) if overheads else None,
        "node_median_s": statistics.median(nodes) if nodes else None,
        "first_s": first.get("wall_s"),
    }


def _guess_task_s(tool: str, n: int, first: bool = False) -> float:
    """A task's seconds at ``n`` models before anything was measured there (``first``: the
    warm-up task), fitted to this machine's runs of 2026-12-02 at load 2-6 (20 to 2,000 models)."""
    if tool == "md-warm":
        return 5.0 + 0.016 * n if first else 0.4 + 0.0002 * n  # the first starts and loads the process
    if tool == "cosmos-venvdir":
        return 80.0 + 0.012 * n if first else 10.0 + 0.012 * n  # the first checks or builds the venv
    return 5.0 + 0.012 * n  # md-cold, dbt-cold: a fresh dbt process reading the msgpack


def estimate(
    sizes: Sequence[int],
    cosmos_sizes: Sequence[int],
    tasks: int,
    sched_models: int,
    measured: Mapping | None = None,
    parsed: Sequence[int] = (),
    tools: Sequence[str] = SCALE_TOOLS,
) -> dict[str, float]:
    """Seconds each part of a run should take: per size (``"n<N>"``) and the real-scheduler DAG
    (``"sched"``), from what was measured before at that size where there is something (a tool's
    first task and its median), else from ``_guess_task_s``; ``parsed``: sizes whose project is
    already generated and parsed; ``tools``: the tools run (cosmos only at ``cosmos_sizes``)."""
    measured = measured or {}
    out: dict[str, float] = {}
    for n in sizes:
        rows = (measured.get("sizes") or {}).get(str(n)) or {}

        def task_s(tool: str, first: bool = False, _rows: Mapping = rows, _n: int = n) -> float:
            got = (_rows.get(tool) or {}).get("first_s" if first else "task_median_s")
            return float(got) if isinstance(got, (int, float)) else _guess_task_s(tool, _n, first)

        def tool_s(tool: str) -> float:
            return task_s(tool, first=True) + (tasks - 1) * task_s(tool) if tasks else 0.0

        parse = 0.0 if n in parsed else 10.0 + 0.03 * n  # a full parse, once
        part = parse + task_s("dbt-cold") + sum(tool_s(t) for t in ("md-warm", "md-cold", "dbt-cold") if t in tools)
        if n in cosmos_sizes and "cosmos-venvdir" in tools:
            part += 20.0 + 0.01 * n + tool_s("cosmos-venvdir")  # + the DagBag load of cosmos's DAG
        out[f"n{n}"] = part
    if sched_models:
        dag = (measured.get("sched") or {}).get("dag_s")
        out["sched"] = 150.0 + (float(dag) if isinstance(dag, (int, float)) else 0.5 * sched_models)  # + start
    return out


def default_args(args: argparse.Namespace) -> None:
    """Fill the ``--scale-*`` options left unset: the full run's, or with ``--quick`` a slice
    (20 and 500 models, 4 tasks, no cosmos, no real-scheduler DAG)."""
    defaults = {
        "scale_sizes": [20, 500] if args.quick else list(SIZES),
        "scale_tasks": 4 if args.quick else TASKS,
        "scale_cosmos_sizes": [] if args.quick else list(COSMOS_SIZES),
        "scale_sched_models": 0 if args.quick else SCHED_MODELS,
    }
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)


# -- setup -----------------------------------------------------------------------------------------
def _dbt(venv: Venv, project: Path, env: Mapping[str, str], log_file: Path, *args: str) -> float:
    """``<venv>/bin/dbt <args>`` as a fresh process on ``project`` (its profiles.yml inside),
    output appended to ``log_file``; its seconds. A call over ``DBT_TIMEOUT`` is stopped: a
    failed task, not a run that never ends."""
    t = time.monotonic()
    with log_file.open("a") as out:
        try:
            proc = subprocess.run(  # noqa: S603 - an argv list
                [str(venv.executable("dbt")), *args, "--project-dir", str(project), "--profiles-dir", str(project)]
                + ["--no-use-colors"],
                cwd=project,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=DBT_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"`dbt {' '.join(args)}` timed out after {DBT_TIMEOUT:.0f} s in {project}") from None
    wall = time.monotonic() - t
    if proc.returncode != 0:
        raise RuntimeError(f"`dbt {' '.join(args)}` failed (exit {proc.returncode}) in {project}; see {log_file}")
    return wall


def _stamp(n: int) -> dict:
    digest = hashlib.sha256(GENERATOR.read_bytes()).hexdigest()[:12]
    return {"models": n, "reqs": REQS, "generator": digest}


def parsed_sizes(sizes: Sequence[int]) -> list[int]:
    """The sizes whose project is generated and parsed already (for the estimate)."""
    out = []
    for n in sizes:
        stamp = SCALE / f"n{n}" / "stamp.json"
        try:
            if {k: v for k, v in json.loads(stamp.read_text()).items() if k != "parse_s"} == _stamp(n):
                out.append(n)
        except (OSError, ValueError):
            pass
    return out


def prepare(n: int, venv: Venv) -> tuple[Path, dict]:
    """The ``n``-model project, generated and parsed once (``target/manifest.json``); its folder
    and what the stamp says (the setup parse's seconds)."""
    from tests.support.synth_project import generate_project

    home = SCALE / f"n{n}"
    project = home / "project"
    want = _stamp(n)
    if n in parsed_sizes([n]):
        return project, json.loads((home / "stamp.json").read_text())
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    log(f"[scale {n}] generating and parsing the project in {project} (setup, not measured) ...")
    generate_project(project, n)
    (project / "profiles.yml").write_text(SYNTH_PROFILE)
    env = venv.environ()
    env.update(DBT_SEND_ANONYMOUS_USAGE_STATS="false", SYNTH_DUCKDB=str(home / "parse.duckdb"))
    want["parse_s"] = round(_dbt(venv, project, env, home / "setup.log", "parse"), 2)
    (home / "stamp.json").write_text(json.dumps(want))
    log(f"  parsed in {want['parse_s']} s")
    return project, want


# -- the tools ---------------------------------------------------------------------------------------
def md_task(project: Path, model: str, db: Path, warm: int) -> dict:
    """One model's task through ``run_dbt`` (``DbtVenvOperator.execute``'s path, without Airflow's
    task start-up), warm pool of ``warm`` processes (0: a fresh dbt process)."""
    from manifest_dag import ProfileConfig
    from manifest_dag.core.specs import DbtInvocation, VenvSpec
    from manifest_dag.worker.run import run_dbt

    inv = DbtInvocation(
        command_args=("run", "--select", model),
        project_dir=project,
        venv_spec=VenvSpec(requirements=tuple(REQS)),
        profile_config=ProfileConfig(
            profile_name="synth", target_name="dev", profiles_yml_path=project / "profiles.yml"
        ),
        manifest_path=project / "target" / "manifest.json",
        cache_dir=CACHE,
        env={"SYNTH_DUCKDB": str(db)},
        warm_processes=warm,
    )
    lines: list[str] = []
    t = time.monotonic()
    try:
        outcome = run_dbt(inv, log=lines.append)
    except Exception as exc:  # noqa: BLE001 - a failed task is a row of the table, with dbt's reason
        log(f"  {model}: FAILED: {str(exc)[:400]}")
        return {"model": model, "wall_s": time.monotonic() - t, "node_s": None, "state": "failed"}
    wall = time.monotonic() - t
    row = {
        "model": model,
        "wall_s": wall,
        "node_s": outcome.summary.node_seconds if outcome.summary is not None else None,
        "state": "success",
    }
    if warm:
        row["warm"] = worker_sched.warm_use({model: "\n".join(lines)})
    return row


def dbt_cold_task(venv: Venv, direct: Path, env: Mapping[str, str], log_file: Path, model: str) -> dict:
    """``dbt run --select <model>`` as a fresh process in the direct copy; its wall time and the
    nodes' seconds from the ``run_results.json`` it wrote."""
    results = direct / "target" / "run_results.json"
    results.unlink(missing_ok=True)
    try:
        wall = _dbt(venv, direct, env, log_file, "run", "--select", model)
    except RuntimeError as exc:
        log(f"  {model}: FAILED: {exc}")
        return {"model": model, "wall_s": None, "node_s": None, "state": "failed"}
    node = node_seconds(json.loads(results.read_text())) if results.is_file() else None
    return {"model": model, "wall_s": wall, "node_s": node, "state": "success"}


def warm_rss(project: Path, venv: Venv) -> list[float]:
    """The RSS (MB) of each idle warm process of ``project``'s pool, from its ping reply."""
    from manifest_dag.worker.invokers import warm_pool_dir
    from manifest_dag.worker.warm import pool_status

    pool = warm_pool_dir(CACHE, venv.key, project)
    return [round(float(e["rss_mb"]), 1) for e in pool_status(pool, timeout=5.0) if e.get("rss_mb") is not None]


def cosmos_tasks(n: int, project: Path, models: Sequence[str], db: Path, args: argparse.Namespace) -> dict:
    """The models as one cosmos DAG through ``dag.test()`` (a child process with cosmos's Airflow);
    per task, in the order they started: Airflow's duration and the nodes' seconds from the
    ``run_results.json`` cosmos's callback kept."""
    run_dir = WB / "runs" / f"scale-cosmos-{n}"
    shutil.rmtree(run_dir, ignore_errors=True)
    for sub in ("dags", "airflow", "rr"):
        (run_dir / sub).mkdir(parents=True)
    shutil.copy2(airflow_template(COSMOS_PY, "cosmos"), run_dir / "airflow" / "airflow.db")
    dag = f"synth_cosmos_{n}"
    bench = {
        "dag_id": dag,
        "rr_dir": str(run_dir / "rr"),
        "duckdb": str(db),
        "cosmos_venv_dir": str(COSMOS_CACHE / "venv"),
    }
    (run_dir / "dags" / f"{dag}.py").write_text(synth_dag(True, project, models, bench))
    env = base_env(
        AIRFLOW_HOME=str(run_dir / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(run_dir / "dags"),
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="1800",  # cosmos renders a large manifest in the DagBag load
        AIRFLOW__COSMOS__ENABLE_TELEMETRY="False",  # no usage metrics sent after each DAG run
    )
    if args.cosmos_uv:
        env["PATH"] = f"{uv_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
    COSMOS_CACHE.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    try:
        with (run_dir / "dag_test.log").open("w") as out:
            proc = subprocess.run(  # noqa: S603 - an argv list
                [str(COSMOS_PY), str(CHILDREN / "dag_test.py"), str(run_dir / "dags"), dag],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=args.timeout,
            )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout} s"}
    text = (run_dir / "dag_test.log").read_text(errors="replace")
    lines = [ln[len(MARK) :] for ln in text.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        log(f"  cosmos FAILED ({proc.returncode}): {text[-1500:]}")
        return {"error": f"exit code {proc.returncode}; see {run_dir / 'dag_test.log'}"}
    child = json.loads(lines[-1])
    rr = {p.stem: json.loads(p.read_text()) for p in (run_dir / "rr").glob("*.json")}
    ran = sorted(child["tasks"].items(), key=lambda kv: (kv[1].get("start") is None, kv[1].get("start") or 0.0))
    tasks = [
        {
            "model": tid,
            "wall_s": t_.get("duration"),
            "node_s": node_seconds(rr[tid]) if tid in rr else None,
            "state": t_.get("state"),
        }
        for tid, t_ in ran
    ]
    row = summarize_tasks(tasks)
    row.update(
        how="one cosmos DAG of these models through dag.test(); Airflow's task durations",
        dag_s=child.get("dag_s"),
        load_s=child.get("load_s"),
        process_s=round(time.monotonic() - t, 1),
    )
    return row


# -- warm tasks of every size, interleaved ---------------------------------------------------------------
def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (``/proc/<pid>/stat``), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pool_cpu_s(pool: Path) -> dict[int, float]:
    """CPU seconds so far of each warm process of a pool, by pid (from the pool's pid files)."""
    out: dict[int, float] = {}
    for pid_file in pool.glob("*.pid"):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        out[pid] = _proc_cpu_s(pid)
    return out


def cpu_delta(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds the pool's processes spent between two readings; a process that started in
    between counts from zero (its whole life is inside the interval)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def summarize_paired(tasks: Sequence[Mapping]) -> dict:
    """One size's interleaved warm tasks (the first warms up): medians of wall time, dbt overhead
    and CPU seconds (our process + the warm dbt process) over the rest that succeeded."""
    row = summarize_tasks(tasks)
    rest = [t for t in tasks[1:] if t.get("state", "success") == "success" and t.get("cpu_s") is not None]
    cpus = [t["cpu_s"] for t in rest]
    row["cpu_median_s"] = statistics.median(cpus) if cpus else None
    return row


def paired_warm(sizes: Sequence[int], venv: Venv, args: argparse.Namespace, when: str) -> dict:
    """md-warm tasks at every size in turn (size A's task i, size B's task i, ...), one warm pool
    per project, so that every size sees the same machine load and the ratios between sizes do
    not depend on what else ran while one size was measured. Each task also reports the CPU
    seconds it cost (this process's, plus the warm dbt process's from ``/proc``), which load does
    not inflate the way it inflates wall time."""
    from manifest_dag.worker.invokers import warm_pool_dir

    plan: dict[int, tuple[Path, list[str], Path]] = {}
    for n in sizes:
        project, _ = prepare(n, venv)
        parents = model_parents(json.loads((project / "target" / "manifest.json").read_text()))
        db = SCALE / f"n{n}" / "paired.duckdb"
        for p in db.parent.glob("paired.duckdb*"):
            p.unlink()
        plan[n] = (project, task_models(parents, args.scale_tasks), db)
    load = load_now()
    log(f"[scale paired] md-warm at {sizes} interleaved, {args.scale_tasks} tasks each (load {load}) ...")
    tasks: dict[int, list[dict]] = {n: [] for n in sizes}
    for i in range(args.scale_tasks):
        for n in sizes:
            project, models, db = plan[n]
            model = models[i % len(models)]
            pool = warm_pool_dir(CACHE, venv.key, project)
            cpu0, ours0 = _pool_cpu_s(pool), time.process_time()
            t = md_task(project, model, db, 2)
            t["cpu_s"] = round(cpu_delta(cpu0, _pool_cpu_s(pool)) + time.process_time() - ours0, 4)
            tasks[n].append(t)
            over = t["wall_s"] - t["node_s"] if t["wall_s"] is not None and t["node_s"] is not None else None
            log(f"    {i + 1}/{args.scale_tasks} n{n} {model}: {fmt_s(t['wall_s'])} s, overhead {fmt_s(over)} s, CPU {fmt_s(t['cpu_s'])} s")
    stop_warm(CACHE)
    out = {
        "sizes": {str(n): summarize_paired(tasks[n]) for n in sizes},
        "load": load,
        "load_end": round(os.getloadavg()[0], 2),
        "code": provenance.code_version(),
        "when": when,
    }
    for n in sizes:
        r = out["sizes"][str(n)]
        log(
            f"  n{n}: overhead median {fmt_s(r['overhead_median_s'])} s, CPU median {fmt_s(r['cpu_median_s'])} s "
            f"over {r['measured']} tasks"
        )
        for p in (SCALE / f"n{n}").glob("paired.duckdb*"):
            p.unlink()
    return out


# -- one size ------------------------------------------------------------------------------------------
def _row(tasks: list[dict], load: float, when: str) -> dict:
    row = summarize_tasks(tasks)
    row.update(load=load, load_end=round(os.getloadavg()[0], 2), code=provenance.code_version(), when=when)
    return row


def _said(tool: str, row: Mapping) -> None:
    if "error" in row:
        log(f"  {tool}: FAILED: {row['error']}")
        return
    log(
        f"  {tool}: task median {fmt_s(row.get('task_median_s'))} s, dbt overhead median "
        f"{fmt_s(row.get('overhead_median_s'))} s over {row.get('measured')} tasks (first {fmt_s(row.get('first_s'))} s)"
        + (f", warm RSS {row['rss_mb']} MB" if row.get("rss_mb") else "")
    )


def bench_size(n: int, venv: Venv, tools: Sequence[str], args: argparse.Namespace, when: str) -> dict[str, dict]:
    """Every tool's tasks on the ``n``-model project; {tool: row}."""
    project, stamp = prepare(n, venv)
    parents = model_parents(json.loads((project / "target" / "manifest.json").read_text()))
    models = task_models(parents, args.scale_tasks)
    home = SCALE / f"n{n}"
    db = home / "run.duckdb"
    for p in home.glob("run.duckdb*"):
        p.unlink()
    direct = home / "direct"  # dbt-cold's copy: its own msgpack, written by the setup run below
    if not direct.exists():
        shutil.copytree(project, direct, ignore=shutil.ignore_patterns("target", "logs"))
    env = venv.environ()
    env.update(DBT_SEND_ANONYMOUS_USAGE_STATS="false", SYNTH_DUCKDB=str(db))
    log_file = home / "dbt-cold.log"
    log_file.unlink(missing_ok=True)
    log(f"[scale {n}] setup: `dbt run --select +<each task's model>` in {direct} (builds their parents) ...")
    _dbt(venv, direct, env, log_file, "run", "--select", *(f"+{m}" for m in models))
    rows: dict[str, dict] = {}
    for tool in tools:
        if tool == "cosmos-venvdir":
            if n not in args.scale_cosmos_sizes:
                continue
            load = load_now()
            log(f"[scale {n}] {tool}: a cosmos DAG of {len(models)} models through dag.test() (load {load}) ...")
            row = cosmos_tasks(n, project, models, db, args)
            row.update(load=load, load_end=round(os.getloadavg()[0], 2), code=provenance.code_version(), when=when)
            rows[tool] = row
            _said(tool, row)
            continue
        load = load_now()
        log(f"[scale {n}] {tool}: {len(models)} one-model tasks (load {load}) ...")
        tasks = []
        for i, model in enumerate(models):
            if tool == "dbt-cold":
                tasks.append(dbt_cold_task(venv, direct, env, log_file, model))
            else:
                tasks.append(md_task(project, model, db, 2 if tool == "md-warm" else 0))
            t = tasks[-1]
            over = t["wall_s"] - t["node_s"] if t["wall_s"] is not None and t["node_s"] is not None else None
            log(f"    {i + 1}/{len(models)} {model}: {fmt_s(t['wall_s'])} s, overhead {fmt_s(over)} s")
        row = _row(tasks, load, when)
        if tool == "md-warm":
            row["rss_mb"] = warm_rss(project, venv)
            row["warm_use"] = {
                k: sum((t.get("warm") or {}).get(k, 0) for t in tasks) for k in ("reused", "started", "cold")
            }
            stopped = stop_warm(CACHE)
            log(f"  stopped {stopped} warm dbt process(es)")
        rows[tool] = row
        _said(tool, row)
    for p in home.glob("run.duckdb*"):
        p.unlink()
    return rows


# -- the case ------------------------------------------------------------------------------------------
def bench_scale(results: dict, args: argparse.Namespace) -> None:
    sizes = list(args.scale_sizes)
    tools = [t for t in SCALE_TOOLS if t in (args.scale_tools or SCALE_TOOLS)]
    if "cosmos-venvdir" not in tools:
        args.scale_cosmos_sizes = []
    est = estimate(
        sizes,
        [n for n in args.scale_cosmos_sizes if n in sizes],
        args.scale_tasks,
        args.scale_sched_models,
        results.get("scale"),
        parsed_sizes(sizes),
        tools,
    )
    log(
        f"[scale] sizes {sizes}, tools {tools}, {args.scale_tasks} tasks each, cosmos at "
        f"{[n for n in args.scale_cosmos_sizes if n in sizes] or 'none'}, real-scheduler DAG at "
        f"{args.scale_sched_models or 'none'}: estimated {sum(est.values()) / 60:.0f} min ("
        + ", ".join(f"{k} {v / 60:.1f}" for k, v in est.items())
        + ")"
    )
    scale = results.setdefault("scale", {})
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    venv = md_venv(CACHE)
    try:
        for n in sizes:
            t = time.monotonic()
            rows = bench_size(n, venv, tools, args, when)
            scale.setdefault("sizes", {}).setdefault(str(n), {}).update(rows)
            scale.setdefault("setup", {})[str(n)] = {
                "parse_s": json.loads((SCALE / f"n{n}" / "stamp.json").read_text())["parse_s"]
            }
            save_results(RESULTS, results)
            write_doc(results)
            log(f"[scale {n}] done in {(time.monotonic() - t) / 60:.1f} min (estimated {est[f'n{n}'] / 60:.1f})")
        if getattr(args, "scale_paired", True) and "md-warm" in tools and len(sizes) > 1:
            scale["paired"] = paired_warm(sizes, venv, args, when)
            save_results(RESULTS, results)
            write_doc(results)
        if args.scale_sched_models:
            scale["sched"] = sched_dag(venv, args, when)
            save_results(RESULTS, results)
            write_doc(results)
    finally:
        stop_warm(CACHE)


def sched_dag(venv: Venv, args: argparse.Namespace, when: str) -> dict:
    """One DAG of the ``--scale-sched-models`` project through a real scheduler, md-warm only."""
    n = args.scale_sched_models
    project, _ = prepare(n, venv)
    parents = model_parents(json.loads((project / "target" / "manifest.json").read_text()))
    model, size = closure_select(parents, *SCHED_SELECT)
    try:
        row = worker_sched.synth_run(project, [f"+{model}"], CACHE, args)
    except Exception as exc:  # noqa: BLE001 - the report says the run failed and why
        log(f"[scale sched] failed: {exc}")
        row = {"error": str(exc)[:300]}
    row.update(project_models=n, select=f"+{model}", selected=size, when=when)
    return row
