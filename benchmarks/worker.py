"""``make bench-worker``: manifest-dag vs astronomer-cosmos on the worker side, with real dbt.

    python -m benchmarks.worker                 # every case (long: cosmos runs dbt ~50 times per DAG run)
    python -m benchmarks.worker --quick         # development: a small selection, one model, 200-model parse
    python -m benchmarks.worker --cases dag --select +dim_products --tools md-warm md-cold cosmos-novenvdir
    python -m benchmarks.worker --report-only   # rewrite docs/performance-worker.md from .bench/worker/results.json
    python -m benchmarks.worker --cases scale --scale-sizes 20,500 --quick   # the scale case, a slice

Results are kept in ``.bench/worker/results.json`` keyed by case, so a slice run later adds to
(or replaces) what an earlier run measured; ``docs/performance-worker.md`` is written from
everything measured so far (``benchmarks/worker_report.py``). Caches live under ``.bench/worker/``
(git-ignored). Run from the repository root.

Cases, on the demo dbt project (``fixtures/shop``, DuckDB; the DAG ``make demo`` runs), dbt
pinned to ``dbt-core~=1.11.0`` + ``dbt-duckdb~=1.11.0``:

1. **dag**: the whole DAG through ``dag.test()``, each run in a fresh child process with a fresh
   DuckDB file and a fresh Airflow home (a copy of a once-migrated metadata DB):
   ``md-warm`` manifest-dag default (warm dbt processes), ``md-cold`` manifest-dag with
   ``MANIFEST_DAG_WARM_PROCESSES=0`` (a fresh dbt process per task), ``cosmos-venvdir``
   astronomer-cosmos ``ExecutionMode.VIRTUALENV`` with ``virtualenv_dir``, ``cosmos-novenvdir``
   without it; each with a cold venv cache (empty directory), then a warm one (the second run
   reusing it). cosmos runs with its own Airflow from ``.bench/cosmos-venv``.
2. **one**: one model's task: manifest-dag's worker path (``run_dbt``, what the operator's
   ``execute`` calls) with a warm venv, cold subprocess path and warm-process path, vs
   ``<venv>/bin/dbt run --select <model>`` as a fresh process in the same venv.
3. **sched**: the whole DAG through a real Airflow scheduler with the LocalExecutor (parallelism
   4, Postgres metadata DB): ``md-cold``, ``md-warm`` and ``cosmos-venvdir``, a cold-cache and a
   warm-cache run each (``benchmarks/worker_sched.py``).
4. **parse**: ``dbt parse`` on a synthetic 2,000-model project, with and without a reused
   ``partial_parse.msgpack``; and manifest-dag's workspace copy at a new path (relocated msgpack).
5. **scale** (issue 18): one model's task on generated projects of 20 to 5,000 models: md-warm,
   md-cold, a plain cold ``dbt run`` and cosmos with ``virtualenv_dir``; warm RSS; one DAG of the
   500-model project through a real scheduler (``benchmarks/worker_scale.py``). The longest case:
   it prints its estimate first.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import provenance, worker_scale, worker_sched
from benchmarks.cosmos_venv import COSMOS_PY, ensure_cosmos
from benchmarks.report import fmt_s
from benchmarks.runtime import CHILDREN, PY, REPO, load_results, log, save_results
from benchmarks.task_times import node_times, summarize_run
from benchmarks.worker_report import dag_table, one_table, parse_table, scale_table, write_doc
from benchmarks.worker_setup import (
    DOC,
    LOADS,
    REQS,
    RESULTS,
    SCHED_TOOLS,
    SHOP_MANIFEST,
    SYNTH_PROFILE,
    TOOLS,
    WB,
    airflow_template,
    base_env,
    load_now,
    md_venv,
    project_copy,
    shop_dag,
    stop_warm,
    uv_bin_dir,
)

if TYPE_CHECKING:
    from manifest_dag.worker.venv import Venv

CHILD = CHILDREN / "dag_test.py"
MARK = "BENCH_RESULT "  # children/dag_test.py's result line


# -- case 1: the whole DAG -------------------------------------------------------------------------
def dag_run(tool: str, cache_state: str, select: list[str], args: argparse.Namespace) -> dict:
    sel_key = " ".join(select) or "all"
    slug = "".join(c if c.isalnum() else "_" for c in sel_key)[:40]
    run_dir = WB / "runs" / f"{tool}-{cache_state}-{slug}"
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "dags").mkdir(parents=True)
    (run_dir / "airflow").mkdir()
    (run_dir / "rr").mkdir()
    cosmos = tool.startswith("cosmos")
    python = COSMOS_PY if cosmos else Path(PY)
    shutil.copy2(airflow_template(python, "cosmos" if cosmos else "md"), run_dir / "airflow" / "airflow.db")
    (run_dir / "dags" / "shop_bench.py").write_text(shop_dag(cosmos, select, {}))
    cache = WB / "caches" / tool
    if cache_state == "cold":
        if cache.exists():
            stop_warm(cache) if not cosmos else None
            shutil.rmtree(cache)
        cache.mkdir(parents=True)
    env = base_env(
        AIRFLOW_HOME=str(run_dir / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(run_dir / "dags"),
        BENCH_RR_DIR=str(run_dir / "rr"),
        BENCH_DUCKDB=str(run_dir / "shop.duckdb"),
        BENCH_VENV_CACHE=str(cache),
    )
    if tool == "md-cold":
        env["MANIFEST_DAG_WARM_PROCESSES"] = "0"
    if tool == "cosmos-venvdir":
        env["BENCH_COSMOS_VENV_DIR"] = str(cache / "venv")
    if cosmos and args.cosmos_uv:
        env["PATH"] = f"{uv_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
    load = load_now()
    code = provenance.code_version()
    log(f"[dag {sel_key}] {tool}, {cache_state} venv cache (load {load}) ...")
    t = time.monotonic()
    try:
        with (run_dir / "dag_test.log").open("w") as out:
            proc = subprocess.run(
                [str(python), str(CHILD), str(run_dir / "dags"), "shop"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=args.timeout,
            )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout} s", "load": load, "code": code}
    finally:
        if not cosmos:
            stopped = stop_warm(cache)
            if stopped:
                log(f"  stopped {stopped} warm dbt process(es)")
    wall = time.monotonic() - t
    text = (run_dir / "dag_test.log").read_text(errors="replace")
    lines = [ln[len(MARK) :] for ln in text.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        tail = text[-1500:]
        log(f"  FAILED ({proc.returncode}): {tail}")
        return {"error": f"exit code {proc.returncode}", "load": load, "code": code}
    child = json.loads(lines[-1])
    rr = {p.stem: json.loads(p.read_text()) for p in (run_dir / "rr").glob("*.json")}
    times = node_times(rr, child.get("xcom") or {})
    row = summarize_run(child, times)
    row.update(load=load, load_end=round(os.getloadavg()[0], 2), code=code, process_s=round(wall, 1))
    row["node_seconds"] = "run_results.json (callback)" if cosmos else "XCom node_seconds"
    row["per_task"] = {tid: [t.get("state"), t.get("duration"), times.get(tid)] for tid, t in child["tasks"].items()}
    log(
        f"  {row['state']}: dag {fmt_s(row['dag_s'])} s, {row['ok']}/{row['tasks']} ok, task median "
        f"{fmt_s(row['task_median_s'])} s, overhead median {fmt_s(row['overhead_median_s'])} s ({wall:.0f} s in all)"
    )
    if not args.keep:
        for p in run_dir.glob("shop.duckdb*"):
            p.unlink()
    if cosmos and tool == "cosmos-novenvdir":
        shutil.rmtree(cache, ignore_errors=True)
    return row


def bench_dag(results: dict, args: argparse.Namespace) -> None:
    sel_key = " ".join(args.select) or "all"
    for tool in args.tools:
        for cache_state in ("cold", "warm"):
            if args.warm_only and cache_state == "cold":
                continue
            if tool == "cosmos-novenvdir" and cache_state == "warm":
                continue  # no venv is kept: a second run would measure the same thing again
            row = dag_run(tool, cache_state, args.select, args)
            case = f"{tool}/{cache_state}"
            old = (results.get("dag") or {}).get(sel_key, {}).get(case)
            if old and "error" not in old:  # the table shows the latest; the earlier ones are listed below it
                old = {k: v for k, v in old.items() if k != "per_task"}
                results.setdefault("dag_earlier", {}).setdefault(sel_key, {}).setdefault(case, []).append(old)
            results.setdefault("dag", {}).setdefault(sel_key, {})[case] = row
            save_results(RESULTS, results)
            write_doc(results)


# -- cases 2 and 3: dbt run directly, and through manifest-dag's worker path -------------------------
def direct_dbt(venv: Venv, project: Path, env: dict[str, str], *args: str) -> float:
    """``<venv>/bin/dbt <args>`` as a fresh process on ``project`` (its profiles.yml inside); its seconds."""
    t = time.monotonic()
    subprocess.run(
        [
            str(venv.executable("dbt")),
            *args,
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--no-use-colors",
        ],
        cwd=project,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.monotonic() - t


def md_task(cache: Path, profile: str, project: Path, log_line: Callable[[str], None], **fields: object) -> float:
    """One dbt call through ``run_dbt`` (what ``DbtVenvOperator.execute`` calls), in the venv for
    ``REQS`` kept in ``cache``, with ``project``'s profiles.yml; its seconds."""
    from manifest_dag import ProfileConfig
    from manifest_dag.core.specs import DbtInvocation, VenvSpec
    from manifest_dag.worker.run import run_dbt

    invocation = DbtInvocation(
        project_dir=project,
        venv_spec=VenvSpec(requirements=tuple(REQS)),
        profile_config=ProfileConfig(
            profile_name=profile, target_name="dev", profiles_yml_path=project / "profiles.yml"
        ),
        cache_dir=cache,
        **fields,
    )
    t = time.monotonic()
    run_dbt(invocation, log=log_line)
    return time.monotonic() - t


@contextmanager
def scratch(prefix: str) -> Iterator[tuple[Path, Venv, Path]]:
    """The cache and the venv cases 2 and 3 share, and a temporary directory named ``prefix...``;
    afterwards, the warm dbt processes stopped and the directory removed."""
    cache = WB / "caches" / "one"
    venv = md_venv(cache)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield cache, venv, work
    finally:
        stop_warm(cache)
        shutil.rmtree(work, ignore_errors=True)


# -- case 2: one model's task ----------------------------------------------------------------------
def bench_one(results: dict, args: argparse.Namespace) -> None:
    model = args.model
    with scratch("bench-worker-one-") as (cache, venv, work):
        db = work / "shop.duckdb"
        direct_proj = work / "direct"
        shutil.copytree(project_copy(), direct_proj, ignore=shutil.ignore_patterns("target", ".bench-source"))
        env = venv.environ()
        env.update(DBT_SEND_ANONYMOUS_USAGE_STATS="false", SHOP_DUCKDB_PATH=str(db))
        dbt = functools.partial(direct_dbt, venv, direct_proj, env)

        log(f"[one] preparing: dbt deps, seed, parse, `run --select +{model}` in {direct_proj}")
        dbt("deps")
        dbt("seed")
        dbt("run", "--select", f"+{model}")
        dbt("run", "--select", model)  # leaves target/partial_parse.msgpack of this path

        def md(warm: int) -> float:
            return md_task(
                cache,
                "shop",
                project_copy(),
                lambda s: None,
                command_args=("run", "--select", model),
                manifest_path=SHOP_MANIFEST,
                env={"SHOP_DUCKDB_PATH": str(db)},
                install_deps=True,
                warm_processes=warm,
            )

        md(0)  # untimed: deps once for this worker, the slot's msgpack
        md(2)  # untimed: starts the warm process
        load = load_now()
        code = provenance.code_version()
        direct, cold, warm = [], [], []
        for i in range(args.one_runs):
            direct.append(dbt("run", "--select", model))
            cold.append(md(0))
            warm.append(md(2))
            log(
                f"  run {i + 1}/{args.one_runs}: direct {direct[-1]:.2f} s, md cold {cold[-1]:.2f} s, md warm {warm[-1]:.2f} s"
            )
        results["one"] = {
            "model": model,
            "runs": args.one_runs,
            "load": load,
            "code": code,
            "direct_s": statistics.median(direct),
            "md_cold_s": statistics.median(cold),
            "md_warm_s": statistics.median(warm),
            "direct_all": direct,
            "md_cold_all": cold,
            "md_warm_all": warm,
        }
        save_results(RESULTS, results)
        write_doc(results)


# -- case 3: dbt parse on a large project ----------------------------------------------------------


def bench_parse(results: dict, args: argparse.Namespace) -> None:
    from tests.support.synth_project import generate_project

    n = args.parse_models
    with scratch("bench-worker-parse-") as (cache, venv, work):
        proj = work / "synth"
        generate_project(proj, n)
        (proj / "profiles.yml").write_text(SYNTH_PROFILE)
        env = venv.environ()
        env.update(DBT_SEND_ANONYMOUS_USAGE_STATS="false", SYNTH_DUCKDB=str(work / "synth.duckdb"))
        parse = functools.partial(direct_dbt, venv, proj, env, "parse")

        log(f"[parse] {n} models in {proj}")
        parse()  # untimed: writes target/manifest.json and partial_parse.msgpack
        load = load_now()
        code = provenance.code_version()
        full = [parse("--no-partial-parse") for _ in range(3)]
        log(f"  full: {[round(x, 2) for x in full]}")
        parse()  # the --no-partial-parse runs rewrote the msgpack? make sure the reused one is fresh
        reuse = [parse() for _ in range(3)]
        log(f"  reuse: {[round(x, 2) for x in reuse]}")
        # the workspace: a copy of the project at another path, the manifest (and msgpack) from proj
        moved = work / "moved" / "synth"
        shutil.copytree(proj, moved, ignore=shutil.ignore_patterns("target", "logs"))
        ws_times, notes = [], {}
        for i in range(4):
            lines: list[str] = []
            ws_times.append(
                md_task(
                    cache,
                    "synth",
                    moved,
                    lines.append,
                    command_args=("parse",),
                    manifest_path=proj / "target" / "manifest.json",
                    env={"SYNTH_DUCKDB": str(work / "synth.duckdb")},
                    warm_processes=0,
                )
            )
            keep = [
                ln
                for ln in lines
                if ln.startswith(("partial parse:", "dbt parse:")) or "Unable to do partial parsing" in ln
            ]
            notes["first task (relocated)" if i == 0 else f"task {i + 1} (slot copy)"] = keep[:4]
            log(f"  workspace {i + 1}: {ws_times[-1]:.2f} s; {keep[:3]}")
        results["parse"] = {
            "models": n,
            "load": load,
            "code": code,
            "full_s": statistics.median(full),
            "reuse_s": statistics.median(reuse),
            "ws_first_s": ws_times[0],
            "ws_next_s": statistics.median(ws_times[1:]),
            "full_all": full,
            "reuse_all": reuse,
            "ws_all": ws_times,
            "ws_notes": notes,
        }
        save_results(RESULTS, results)
        write_doc(results)


# -- versions and main -----------------------------------------------------------------------------
def versions() -> dict:
    v = provenance.versions()
    try:
        venv = md_venv(WB / "caches" / "one")
        for info in venv.path.glob("lib/python*/site-packages/dbt_core-*.dist-info"):
            v["dbt"] = info.name[len("dbt_core-") : -len(".dist-info")]
    except Exception as exc:  # noqa: BLE001 - the report says "?"
        log(f"dbt version unknown: {exc}")
    return v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="manifest-dag vs cosmos, worker side (real dbt)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="development: --select +dim_products, manifest-dag only, 200-model parse, 2 one-model runs",
    )
    ap.add_argument(
        "--cases",
        nargs="*",
        default=["one", "parse", "dag", "sched", "scale"],
        choices=("dag", "one", "parse", "sched", "scale"),
    )
    ap.add_argument(
        "--sched-tools", nargs="*", choices=SCHED_TOOLS, help="tools for the real-scheduler case (default: all three)"
    )
    ap.add_argument("--tools", nargs="*", choices=TOOLS, help="tools for the dag case (default: all four)")
    ap.add_argument(
        "--select", nargs="*", default=[], help="a dbt selection for BOTH tools in the dag case (default: all)"
    )
    ap.add_argument("--warm-only", action="store_true", help="dag case: skip the cold-cache runs (reuse the caches)")
    ap.add_argument("--model", default="stg_orders")
    ap.add_argument("--one-runs", type=int, default=5)
    ap.add_argument("--parse-models", type=int, default=2000)
    ap.add_argument("--timeout", type=float, default=5400)
    ap.add_argument(
        "--no-cosmos-uv",
        dest="cosmos_uv",
        action="store_false",
        help="do not put uv on cosmos's PATH (Airflow then builds its venvs with pip)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the runs' DuckDB files")
    scale = ap.add_argument_group("scale case (issue 18)")
    scale.add_argument(
        "--scale-sizes",
        type=worker_scale.parse_sizes,
        help="project sizes, comma-separated (default 20,500,2000,5000; --quick: 20,500)",
    )
    scale.add_argument("--scale-tools", nargs="*", choices=worker_scale.SCALE_TOOLS, help="tools (default: all four)")
    scale.add_argument(
        "--scale-tasks", type=int, help="one-model tasks per size and tool, the first a warm-up (default 9; --quick: 4)"
    )
    scale.add_argument(
        "--scale-cosmos-sizes",
        type=worker_scale.parse_sizes,
        help="the sizes cosmos runs at (default 20,2000; --quick: none)",
    )
    scale.add_argument(
        "--scale-sched-models",
        type=int,
        help="the project size of the real-scheduler DAG, 0: none (default 500; --quick: 0)",
    )
    scale.add_argument(
        "--no-scale-paired",
        dest="scale_paired",
        action="store_false",
        help="skip the interleaved md-warm run over all sizes (the one the size ratios are read from)",
    )
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.cases = [c for c in args.cases if c != "sched"]
        args.select = args.select or ["+dim_products"]
        args.tools = args.tools or ["md-warm", "md-cold"]
        args.parse_models = 200
        args.one_runs = 2
    worker_scale.default_args(args)
    args.tools = args.tools or list(TOOLS)
    results = load_results(RESULTS)
    if not args.report_only:
        WB.mkdir(parents=True, exist_ok=True)
        if (any(t.startswith("cosmos") for t in args.tools) and "dag" in args.cases) or "sched" in args.cases:
            ensure_cosmos()
        results["versions"] = versions()
        results["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        results["cosmos_uv"] = args.cosmos_uv
        if "one" in args.cases:
            bench_one(results, args)
        if "parse" in args.cases:
            bench_parse(results, args)
        if "dag" in args.cases:
            bench_dag(results, args)
        if "sched" in args.cases:
            worker_sched.bench_sched(results, args)
        if "scale" in args.cases:
            if "cosmos-venvdir" in (args.scale_tools or worker_scale.SCALE_TOOLS) and args.scale_cosmos_sizes:
                ensure_cosmos()
            worker_scale.bench_scale(results, args)
        if LOADS:
            results.setdefault("load", {})[results["when"]] = LOADS.summary(2)
            save_results(RESULTS, results)
    write_doc(results)
    print(
        "\n".join(dag_table(results) + one_table(results) + [""] + parse_table(results) + [""] + scale_table(results))
    )
    log(f"wrote {DOC.relative_to(REPO)}; raw results in {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
