"""``make bench``: manifest-dag vs astronomer-cosmos vs the floors, scheduler side.

    python -m benchmarks.scheduler            # N = 100, 1,000, 5,000, 10,000 + real manifests
    python -m benchmarks.scheduler --quick    # N = 100 and 1,000 only
    python -m benchmarks.scheduler --models 5000 --no-cosmos --no-real   # a slice; merged into the report

Every case runs in a fresh process (``benchmarks/children/scheduler_case.py``), ``--runs`` times
(default 3); the report gives medians (``benchmarks/scheduler_report.py``). Results are kept in
``.bench/results.json`` keyed by case, so a slice run later adds to (or replaces) what an earlier
run measured, and ``docs/performance.md`` is written from everything measured so far
(``--report-only`` rewrites it without measuring). Run from the repository root.

Cases, each on the same manifest file:

- **(a) manifest-dag**: ``DbtDag`` with default rendering, plan cache off (``cold``:
  ``MANIFEST_DAG_PLAN_CACHE=off``) and with a warm disk cache (``warm``); plus re-building in
  the same process (what a DAG processor does each cycle);
- **(b) cosmos**: astronomer-cosmos 1.15.1 in its own venv (``.bench/cosmos-venv``),
  ``LoadMode.DBT_MANIFEST``, ``ExecutionMode.VIRTUALENV``, default rendering;
- **(c) orjson**: ``orjson.loads`` of the file, nothing else;
- **(d) linear floor**: ``orjson.loads`` of the file, then plain EmptyOperators with the same
  TaskGroups, tasks and edges manifest-dag renders, wired into the id sets in linear time;
- **task-scoped parse** (issue 12): a ``DagBag`` load of a DAG file, in a process that has
  imported Airflow, with and without the parsing context naming one task;
- **selection**: typical expressions on the largest real manifest.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import dag_files
from benchmarks.cosmos_venv import COSMOS_PY, ensure_cosmos
from benchmarks.provenance import code_version, versions
from benchmarks.report import LoadLog, medians
from benchmarks.runtime import BENCH, CHILDREN, HERE, PY, REPO, load_results, log, process_env, save_results
from benchmarks.scheduler_report import build_table, render_report

CHILD = CHILDREN / "scheduler_case.py"
RESULTS = BENCH / "results.json"
DOC = REPO / "docs" / "performance.md"
SHARED = REPO / ".." / "shared" / "manifests"
REAL = {
    "tuva": SHARED / "large" / "tuva" / "manifest.json.gz",
    "spellbook_daily": SHARED / "large" / "spellbook" / "daily_spellbook" / "manifest.json.gz",
}
SELECT_MANIFEST = SHARED / "large" / "spellbook" / "hourly_spellbook" / "manifest.json.gz"
SELECT_EXPRS = [
    "tag:lending",
    "aave_celo_flashloans",
    "+aave_celo_flashloans+",
    "2+aave_celo_flashloans+2",
    "@tag:bridges",
    "path:models/_sector",
    "config.materialized:incremental",
    "tag:ethereum,config.materialized:view",
    "source:*+",
    "path:models/_project --exclude tag:arbitrum",
    "fqn:*",
]
VENV_REQS = ["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"]
LOADS = LoadLog()


# -- plumbing --------------------------------------------------------------------------------------
def child_env(**extra: str) -> dict[str, str]:
    return process_env(
        AIRFLOW_HOME=str(BENCH / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(BENCH / "dags"),
        # Installed packages come with bytecode; a venv made by uv (or a shell with
        # PYTHONDONTWRITEBYTECODE) has none, and every process would compile Airflow from source.
        # Keep compiled bytecode in our own directory instead, warmed before measuring.
        PYTHONPYCACHEPREFIX=str(BENCH / "pycache"),
        # Airflow's default of 30 s kills a DagBag load of cosmos at 10,000 models (a finding in
        # itself, see docs/performance.md); lift it so the load can be measured.
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="3600",
        **extra,
    )


def run_child(python: Path | str, args: list[str], timeout: float = 1800, **env: str) -> dict:
    proc = subprocess.run(
        [str(python), str(CHILD), *args],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}{proc.stdout[-2000:]}")
    return json.loads(lines[-1])


def measure(label: str, n: int, python: Path | str, args: list[str], **env: str) -> dict:
    load = LOADS.read()
    code = code_version()
    runs = []
    for i in range(n):
        t = time.monotonic()
        try:
            runs.append(run_child(python, args, **env))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:  # record it, go on with the others
            log(f"  {label} run {i + 1}/{n} FAILED: {str(exc)[-600:]}")
            return {"error": str(exc).strip().splitlines()[-1][:300]}
        log(
            f"  {label} run {i + 1}/{n}: {json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in runs[-1].items()})} ({time.monotonic() - t:.1f} s)"
        )
    out = medians(runs, runs[0])
    out["code"] = code
    out["load"] = round(load, 1)
    return out


# -- setup -----------------------------------------------------------------------------------------
def synth_manifest(n: int, seed: int) -> Path:
    version = hashlib.sha256((HERE / "synth.py").read_bytes()).hexdigest()[:8]  # a changed generator: new files
    out = BENCH / "manifests" / f"synth_{n}_s{seed}_{version}.json"
    if not out.exists():
        log(f"generating {out.name} ...")
        subprocess.run(
            [PY, "-m", "benchmarks.synth", "--models", str(n), "--seed", str(seed), "-o", str(out)],
            cwd=REPO,
            check=True,
        )
    return out


def plain_manifest(src: Path, name: str) -> Path:
    """cosmos reads only plain JSON: a decompressed copy outside the repo, read by every case."""
    if src.suffix != ".gz":
        return src.resolve()
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "manifest-dag-bench" / f"{name}.json"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        with gzip.open(src, "rb") as fin, tmp.open("wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)  # streamed: keeps this process small (see project_name)
        tmp.replace(out)
    return out


def project_name(manifest: Path) -> str:
    """From the metadata at the head of the file (loading it here would grow this process, and
    with it the peak RSS Linux reports for every child started after)."""
    with manifest.open("rb") as fh:
        head = fh.read(65536).decode("utf-8", "replace")
    match = re.search(r'"project_name"\s*:\s*"([^"]+)"', head)
    return match.group(1) if match else "bench"


def cosmos_project(name: str, project: str) -> Path:
    """A stub dbt project dir: cosmos checks for dbt_project.yml and models/ even with a manifest."""
    d = BENCH / "cosmos-projects" / name
    (d / "models").mkdir(parents=True, exist_ok=True)
    (d / "dbt_project.yml").write_text(f'name: {project}\nversion: "1.0"\nconfig-version: 2\nprofile: bench\n')
    (d / "profiles.yml").write_text(
        "bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: /tmp/bench.duckdb\n"
    )
    return d


def skeleton(manifest: Path, name: str) -> tuple[Path, dict]:
    out = BENCH / "skeletons" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    info = run_child(PY, ["skeleton", str(manifest), str(out)], MANIFEST_DAG_PLAN_CACHE="off")
    return out, info


def md_dag_file(path: Path, name: str, manifest: Path) -> Path:
    """manifest-dag's DAG file for the parse cases (templates/bench_md.py.tmpl)."""
    return dag_files.write(path, "bench_md.py.tmpl", dag_id=f"bench_{name}", manifest=str(manifest))


def cosmos_dag_file(path: Path, name: str, manifest: Path, project: Path) -> Path:
    """cosmos's DAG file for the parse cases (templates/bench_cosmos.py.tmpl)."""
    return dag_files.write(
        path,
        "bench_cosmos.py.tmpl",
        dag_id=f"bench_{name}",
        manifest=str(manifest),
        project=str(project),
        profiles=str(project / "profiles.yml"),
        reqs=VENV_REQS,
    )


def warm_up(args: argparse.Namespace) -> None:
    """One untimed pass over every kind of case on a small manifest: compiles all the bytecode."""
    log("warming the bytecode cache (untimed) ...")
    manifest = synth_manifest(100, args.seed)
    skel, _ = skeleton(manifest, "warmup")
    run_child(PY, ["build", "md", str(manifest)], MANIFEST_DAG_PLAN_CACHE="off")
    run_child(PY, ["build", "floor", str(manifest), "--skeleton", str(skel)])
    run_child(PY, ["select", str(manifest), "tag:daily"])
    dags = BENCH / "dags" / "warmup"
    md_file = md_dag_file(dags / "md_warmup.py", "warmup", manifest)
    run_child(PY, ["parse", str(md_file), "bench_warmup"], MANIFEST_DAG_PLAN_CACHE="off")
    if args.cosmos:
        proj = cosmos_project("warmup", "synth")
        run_child(
            COSMOS_PY,
            ["build", "cosmos", str(manifest), "--project-dir", str(proj), "--profiles", str(proj / "profiles.yml")],
        )
        c_file = cosmos_dag_file(dags / "cosmos_warmup.py", "warmup", manifest, proj)
        run_child(COSMOS_PY, ["parse", str(c_file), "bench_warmup"])


# -- scheduler-side build cases --------------------------------------------------------------------
def bench_build(name: str, manifest: Path, args: argparse.Namespace, models: int | None) -> dict:
    runs = args.runs
    row: dict = {"name": name, "models": models, "mb": round(manifest.stat().st_size / 1e6, 1)}
    log(f"[{name}] {row['mb']} MB")
    skel, info = skeleton(manifest, name)
    row["md_tasks_planned"] = info["tasks"]
    cache = BENCH / "plan-cache" / name
    shutil.rmtree(cache, ignore_errors=True)
    row["md_cold"] = measure(
        "manifest-dag cold", runs, PY, ["build", "md", str(manifest), "--rebuilds", "2"], MANIFEST_DAG_PLAN_CACHE="off"
    )
    run_child(PY, ["build", "md", str(manifest)], MANIFEST_DAG_PLAN_CACHE=str(cache))  # fills the cache
    row["md_warm"] = measure(
        "manifest-dag warm",
        runs,
        PY,
        ["build", "md", str(manifest), "--rebuilds", "2"],
        MANIFEST_DAG_PLAN_CACHE=str(cache),
    )
    row["orjson"] = measure("orjson", runs, PY, ["build", "orjson", str(manifest)])
    row["floor"] = measure(
        "linear floor", runs, PY, ["build", "floor", str(manifest), "--skeleton", str(skel), "--rebuilds", "1"]
    )
    row["floor_nogc"] = measure(
        "linear floor, GC off", runs, PY, ["build", "floor", str(manifest), "--skeleton", str(skel), "--no-gc"]
    )
    if args.cosmos and (models is None or models <= args.cosmos_max):
        proj = cosmos_project(name, project_name(manifest))
        row["cosmos"] = measure(
            "cosmos",
            args.cosmos_runs or runs,
            COSMOS_PY,
            ["build", "cosmos", str(manifest), "--project-dir", str(proj), "--profiles", str(proj / "profiles.yml")],
        )
    return row


# -- task-scoped parse (issue 12) ------------------------------------------------------------------
def bench_parse(name: str, manifest: Path, args: argparse.Namespace) -> dict:
    runs = args.runs
    skel = json.loads((BENCH / "skeletons" / f"{name}.json").read_text())
    grouped = [t for t in skel["tasks"] if t[1] and t[0].endswith(".run")] or [t for t in skel["tasks"] if t[1]]
    task_id = grouped[len(grouped) // 2][0]  # a model's run task in the middle of the graph
    md_file = md_dag_file(BENCH / "dags" / name / f"md_{name}.py", name, manifest)
    dag_id = f"bench_{name}"
    cache = BENCH / "plan-cache" / f"parse-{name}"
    shutil.rmtree(cache, ignore_errors=True)
    row: dict = {"name": name, "task_id": task_id}
    log(f"[{name}] parse, task {task_id}")
    row["full_cold"] = measure("full, cold", runs, PY, ["parse", str(md_file), dag_id], MANIFEST_DAG_PLAN_CACHE="off")
    run_child(PY, ["parse", str(md_file), dag_id], MANIFEST_DAG_PLAN_CACHE=str(cache))
    row["full_warm"] = measure(
        "full, warm", runs, PY, ["parse", str(md_file), dag_id], MANIFEST_DAG_PLAN_CACHE=str(cache)
    )
    row["task_cold"] = measure(
        "task, cold", runs, PY, ["parse", str(md_file), dag_id, task_id], MANIFEST_DAG_PLAN_CACHE="off"
    )
    row["task_warm"] = measure(
        "task, warm", runs, PY, ["parse", str(md_file), dag_id, task_id], MANIFEST_DAG_PLAN_CACHE=str(cache)
    )
    if args.cosmos and args.parse_cosmos:
        proj = cosmos_project(name, project_name(manifest))
        c_file = cosmos_dag_file(BENCH / "dags-cosmos" / name / f"cosmos_{name}.py", name, manifest, proj)
        row["cosmos_full"] = measure("cosmos full", args.cosmos_runs or runs, COSMOS_PY, ["parse", str(c_file), dag_id])
    return row


# -- main ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="manifest-dag scheduler-side benchmarks")
    ap.add_argument("--quick", action="store_true", help="N = 100 and 1,000 only, no real manifests")
    ap.add_argument("--models", type=int, nargs="*", help="synthetic sizes (default 100 1000 5000 10000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cosmos-runs", type=int, default=0, help="runs for cosmos cases (default: --runs)")
    ap.add_argument("--cosmos-max", type=int, default=10_000, help="skip cosmos above this many models")
    ap.add_argument("--no-cosmos", dest="cosmos", action="store_false")
    ap.add_argument("--no-real", dest="real", action="store_false")
    ap.add_argument("--no-parse", dest="parse", action="store_false")
    ap.add_argument("--no-parse-cosmos", dest="parse_cosmos", action="store_false")
    ap.add_argument("--no-select", dest="select", action="store_false")
    ap.add_argument("--no-build", dest="build", action="store_false")
    ap.add_argument("--parse-models", type=int, nargs="*", help="sizes for the parse cases (default 1000 5000 10000)")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    models = args.models if args.models is not None else ([100, 1000] if args.quick else [100, 1000, 5000, 10000])
    parse_models = args.parse_models if args.parse_models is not None else [m for m in models if m >= 1000]
    if args.quick:
        args.real = False
    results = load_results(RESULTS)
    if not args.report_only:
        if args.cosmos:
            ensure_cosmos()
        warm_up(args)
        results["versions"] = versions()
        results["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        cases: list[tuple[str, Path, int | None]] = [(f"synth_{n}", synth_manifest(n, args.seed), n) for n in models]
        if args.real:
            cases += [(name, plain_manifest(src, name), None) for name, src in REAL.items()]
        for name, manifest, n in cases:
            if args.build:
                row = bench_build(name, manifest, args, n)
                results.setdefault("build", {}).setdefault(name, {}).update(row)  # keeps cases not re-run
                save_results(RESULTS, results)
            if args.parse and n in parse_models:
                if not (BENCH / "skeletons" / f"{name}.json").exists():
                    skeleton(manifest, name)
                row = bench_parse(name, manifest, args)
                row["models"] = n
                results.setdefault("parse", {}).setdefault(name, {}).update(row)
                save_results(RESULTS, results)
        if args.select and not args.quick:
            log("[selection]")
            sel = run_child(PY, ["select", str(SELECT_MANIFEST.resolve()), *SELECT_EXPRS])
            sel["manifest"] = "large/spellbook/hourly_spellbook"
            results["select"] = sel
            save_results(RESULTS, results)
        if LOADS:
            results.setdefault("load", {})[results["when"]] = LOADS.summary(1)
            save_results(RESULTS, results)
    notes = HERE / "notes.md"
    if notes.exists():
        results["notes_md"] = notes.read_text().strip()
    DOC.write_text(render_report(results))
    print("\n".join(build_table(results)))
    log(f"wrote {DOC.relative_to(REPO)}; raw results in {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
