"""``make bench``: manifest-dag vs astronomer-cosmos vs the floors, scheduler side.

    python benchmarks/run.py                 # N = 100, 1,000, 5,000, 10,000 + real manifests
    python benchmarks/run.py --quick         # N = 100 and 1,000 only
    python benchmarks/run.py --models 5000 --no-cosmos --no-real   # a slice; merged into the report

Every case runs in a fresh process (``benchmarks/child.py``), ``--runs`` times (default 3); the
report gives medians. Results are kept in ``.bench/results.json`` keyed by case, so a slice run
later adds to (or replaces) what an earlier run measured, and ``docs/performance.md`` is written
from everything measured so far (``--report-only`` rewrites it without measuring).

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
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BENCH = REPO / ".bench"
CHILD = HERE / "child.py"
PY = sys.executable
COSMOS_VENV = BENCH / "cosmos-venv"
COSMOS_PY = COSMOS_VENV / "bin" / "python"
# psycopg2/asyncpg: make bench-worker's real-scheduler case runs cosmos's Airflow on Postgres
COSMOS_REQS = ["astronomer-cosmos==1.15.1", "apache-airflow==3.3.2", "orjson", "psycopg2-binary>=2.9", "asyncpg>=0.29"]
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
VENV_REQS = '["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"]'


# -- plumbing --------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(BENCH / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(BENCH / "dags"),
        PYTHONPATH=str(REPO),
        # Installed packages come with bytecode; a venv made by uv (or a shell with
        # PYTHONDONTWRITEBYTECODE) has none, and every process would compile Airflow from source.
        # Keep compiled bytecode in our own directory instead, warmed before measuring.
        PYTHONPYCACHEPREFIX=str(BENCH / "pycache"),
        # Airflow's default of 30 s kills a DagBag load of cosmos at 10,000 models (a finding in
        # itself, see docs/performance.md); lift it so the load can be measured.
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="3600",
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)  # `make` exports it for the tests; not a real deployment
    env.pop("_AIRFLOW_PARSING_CONTEXT_DAG_ID", None)
    env.pop("_AIRFLOW_PARSING_CONTEXT_TASK_ID", None)
    env.update(extra)
    return env


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


def median_of(runs: list[dict]) -> dict:
    out: dict = {"runs": len(runs)}
    for key in runs[0]:
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if values:
            out[key] = statistics.median(values)
    return out


def code_version() -> str:
    """The manifest-dag commit measured (``+`` when manifest_dag/ has uncommitted changes)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "manifest_dag"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"
    return head + ("+" if dirty else "")


def measure(label: str, n: int, python: Path | str, args: list[str], **env: str) -> dict:
    LOADS.append(os.getloadavg()[0])
    code = code_version()
    runs = []
    for i in range(n):
        t = time.monotonic()
        try:
            runs.append(run_child(python, args, **env))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:  # record it, go on with the others
            log(f"  {label} run {i + 1}/{n} FAILED: {str(exc)[-600:]}")
            return {"error": str(exc).strip().splitlines()[-1][:300]}
        log(f"  {label} run {i + 1}/{n}: {json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in runs[-1].items()})} ({time.monotonic() - t:.1f} s)")
    out = median_of(runs)
    out["code"] = code
    out["load"] = round(LOADS[-1], 1)
    return out


LOADS: list[float] = []  # 1-minute load average before each measured case (the machine is shared)


def load_results() -> dict:
    if RESULTS.exists():
        return json.loads(RESULTS.read_text())
    return {}


def save_results(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True))


# -- setup -----------------------------------------------------------------------------------------
def ensure_cosmos() -> None:
    stamp = COSMOS_VENV / ".installed"
    if stamp.exists() and stamp.read_text() == json.dumps(COSMOS_REQS):
        return
    uv = Path(PY).parent / "uv"
    log(f"installing {' '.join(COSMOS_REQS)} into {COSMOS_VENV} ...")
    if uv.exists():
        if not COSMOS_PY.exists():
            subprocess.run([str(uv), "venv", "-q", "--python", PY, str(COSMOS_VENV)], check=True)
        subprocess.run([str(uv), "pip", "install", "-q", "--python", str(COSMOS_PY), *COSMOS_REQS], check=True)
    else:
        if not COSMOS_PY.exists():
            subprocess.run([PY, "-m", "venv", str(COSMOS_VENV)], check=True)
        subprocess.run([str(COSMOS_PY), "-m", "pip", "install", "-q", *COSMOS_REQS], check=True)
    stamp.write_text(json.dumps(COSMOS_REQS))


def synth_manifest(n: int, seed: int) -> Path:
    version = hashlib.sha256((HERE / "synth.py").read_bytes()).hexdigest()[:8]  # a changed generator: new files
    out = BENCH / "manifests" / f"synth_{n}_s{seed}_{version}.json"
    if not out.exists():
        log(f"generating {out.name} ...")
        subprocess.run([PY, str(HERE / "synth.py"), "--models", str(n), "--seed", str(seed), "-o", str(out)], check=True)
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
    import re

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


def warm_up(args: argparse.Namespace) -> None:
    """One untimed pass over every kind of case on a small manifest: compiles all the bytecode."""
    log("warming the bytecode cache (untimed) ...")
    manifest = synth_manifest(100, args.seed)
    skel, _ = skeleton(manifest, "warmup")
    run_child(PY, ["build", "md", str(manifest)], MANIFEST_DAG_PLAN_CACHE="off")
    run_child(PY, ["build", "floor", str(manifest), "--skeleton", str(skel)])
    run_child(PY, ["select", str(manifest), "tag:daily"])
    dags = BENCH / "dags" / "warmup"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "md_warmup.py").write_text(MD_DAG.format(name="warmup", manifest=str(manifest)))
    run_child(PY, ["parse", str(dags / "md_warmup.py"), "bench_warmup"], MANIFEST_DAG_PLAN_CACHE="off")
    if args.cosmos:
        proj = cosmos_project("warmup", "synth")
        run_child(COSMOS_PY, ["build", "cosmos", str(manifest), "--project-dir", str(proj),
                              "--profiles", str(proj / "profiles.yml")])
        (dags / "cosmos_warmup.py").write_text(COSMOS_DAG.format(
            name="warmup", manifest=str(manifest), project=str(proj), profiles=str(proj / "profiles.yml"), reqs=VENV_REQS))
        run_child(COSMOS_PY, ["parse", str(dags / "cosmos_warmup.py"), "bench_warmup"])


# -- scheduler-side build cases --------------------------------------------------------------------
def bench_build(name: str, manifest: Path, args: argparse.Namespace, models: int | None) -> dict:
    runs = args.runs
    row: dict = {"name": name, "models": models, "mb": round(manifest.stat().st_size / 1e6, 1)}
    log(f"[{name}] {row['mb']} MB")
    skel, info = skeleton(manifest, name)
    row["md_tasks_planned"] = info["tasks"]
    cache = BENCH / "plan-cache" / name
    shutil.rmtree(cache, ignore_errors=True)
    row["md_cold"] = measure("manifest-dag cold", runs, PY, ["build", "md", str(manifest), "--rebuilds", "2"],
                             MANIFEST_DAG_PLAN_CACHE="off")
    run_child(PY, ["build", "md", str(manifest)], MANIFEST_DAG_PLAN_CACHE=str(cache))  # fills the cache
    row["md_warm"] = measure("manifest-dag warm", runs, PY, ["build", "md", str(manifest), "--rebuilds", "2"],
                             MANIFEST_DAG_PLAN_CACHE=str(cache))
    row["orjson"] = measure("orjson", runs, PY, ["build", "orjson", str(manifest)])
    row["floor"] = measure("linear floor", runs, PY, ["build", "floor", str(manifest), "--skeleton", str(skel), "--rebuilds", "1"])
    row["floor_nogc"] = measure("linear floor, GC off", runs, PY, ["build", "floor", str(manifest), "--skeleton", str(skel), "--no-gc"])
    if args.cosmos and (models is None or models <= args.cosmos_max):
        proj = cosmos_project(name, project_name(manifest))
        row["cosmos"] = measure(
            "cosmos", args.cosmos_runs or runs, COSMOS_PY,
            ["build", "cosmos", str(manifest), "--project-dir", str(proj), "--profiles", str(proj / "profiles.yml")],
        )
    return row


# -- task-scoped parse (issue 12) ------------------------------------------------------------------
MD_DAG = '''\
from manifest_dag import DbtDag, ProfileConfig, ProjectConfig

dag = DbtDag(
    dag_id="bench_{name}",
    schedule=None,
    project_config=ProjectConfig(manifest_path={manifest!r}, project_dir="/nonexistent/project"),
    profile_config=ProfileConfig(profile_name="bench", profiles_yml_path="/nonexistent/profiles.yml"),
)
'''
COSMOS_DAG = '''\
from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, LoadMode

dag = DbtDag(
    dag_id="bench_{name}",
    schedule=None,
    project_config=ProjectConfig(dbt_project_path={project!r}, manifest_path={manifest!r}),
    profile_config=ProfileConfig(profile_name="bench", target_name="dev", profiles_yml_filepath={profiles!r}),
    execution_config=ExecutionConfig(execution_mode=ExecutionMode.VIRTUALENV),
    render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST),
    operator_args={{"py_requirements": {reqs}}},
)
'''


def bench_parse(name: str, manifest: Path, args: argparse.Namespace) -> dict:
    runs = args.runs
    skel = json.loads((BENCH / "skeletons" / f"{name}.json").read_text())
    grouped = [t for t in skel["tasks"] if t[1] and t[0].endswith(".run")] or [t for t in skel["tasks"] if t[1]]
    task_id = grouped[len(grouped) // 2][0]  # a model's run task in the middle of the graph
    dags = BENCH / "dags" / name
    dags.mkdir(parents=True, exist_ok=True)
    md_file = dags / f"md_{name}.py"
    md_file.write_text(MD_DAG.format(name=name, manifest=str(manifest)))
    dag_id = f"bench_{name}"
    cache = BENCH / "plan-cache" / f"parse-{name}"
    shutil.rmtree(cache, ignore_errors=True)
    row: dict = {"name": name, "task_id": task_id}
    log(f"[{name}] parse, task {task_id}")
    row["full_cold"] = measure("full, cold", runs, PY, ["parse", str(md_file), dag_id], MANIFEST_DAG_PLAN_CACHE="off")
    run_child(PY, ["parse", str(md_file), dag_id], MANIFEST_DAG_PLAN_CACHE=str(cache))
    row["full_warm"] = measure("full, warm", runs, PY, ["parse", str(md_file), dag_id], MANIFEST_DAG_PLAN_CACHE=str(cache))
    row["task_cold"] = measure("task, cold", runs, PY, ["parse", str(md_file), dag_id, task_id], MANIFEST_DAG_PLAN_CACHE="off")
    row["task_warm"] = measure("task, warm", runs, PY, ["parse", str(md_file), dag_id, task_id], MANIFEST_DAG_PLAN_CACHE=str(cache))
    if args.cosmos and args.parse_cosmos:
        proj = cosmos_project(name, project_name(manifest))
        cdags = BENCH / "dags-cosmos" / name
        cdags.mkdir(parents=True, exist_ok=True)
        c_file = cdags / f"cosmos_{name}.py"
        c_file.write_text(COSMOS_DAG.format(name=name, manifest=str(manifest), project=str(proj),
                                            profiles=str(proj / "profiles.yml"), reqs=VENV_REQS))
        row["cosmos_full"] = measure("cosmos full", args.cosmos_runs or runs, COSMOS_PY, ["parse", str(c_file), dag_id])
    return row


# -- report ----------------------------------------------------------------------------------------
def versions() -> dict:
    def pkg(python: Path | str, name: str) -> str:
        try:
            out = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
                                 capture_output=True, text=True, timeout=60)
            return out.stdout.strip() or "-"
        except OSError:
            return "-"

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), {mem} RAM",
        "python": platform.python_version(),
        "airflow": pkg(PY, "apache-airflow"),
        "manifest-dag": pkg(PY, "manifest-dag"),
        "orjson": pkg(PY, "orjson"),
        "cosmos": pkg(COSMOS_PY, "astronomer-cosmos") if COSMOS_PY.exists() else "-",
        "cosmos airflow": pkg(COSMOS_PY, "apache-airflow") if COSMOS_PY.exists() else "-",
    }


def _s(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}"


def _mb(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}" if a / b < 10 else f"{a / b:.1f}"


def _g(row: dict, case: str, key: str) -> float | None:
    return row.get(case, {}).get(key)


def _order(rows: dict) -> list[dict]:
    synth = sorted((r for r in rows.values() if r.get("models")), key=lambda r: r["models"])
    real = [r for r in rows.values() if not r.get("models")]
    return synth + sorted(real, key=lambda r: r["name"])


def _peak(row: dict, case: str) -> float | None:
    """The first build's peak where the run recorded it (re-builds in the same process would add
    the previous DAGs, garbage not collected yet), else the process's."""
    return _g(row, case, "rss_first_mb") or _g(row, case, "rss_mb")


def build_table(results: dict) -> list[str]:
    head = (
        "| manifest | MB | tasks | (a) cold s | (a) warm s | re-build s | (a) peak MB cold / warm | (b) cosmos s | (b) peak MB "
        "| (c) orjson s | (d) floor s | a/b | a/c | a/d | b/a |"
    )
    lines = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    for r in _order(results.get("build", {})):
        label = f"synth {r['models']:,}" if r.get("models") else r["name"]
        cold, warm = _g(r, "md_cold", "build_s"), _g(r, "md_warm", "build_s")
        cos = _g(r, "cosmos", "build_s")
        orj, floor = _g(r, "orjson", "build_s"), _g(r, "floor", "build_s")
        lines.append(
            "| " + " | ".join([
                label, f"{r['mb']}", f"{int(_g(r, 'md_cold', 'tasks') or 0):,}",
                _s(cold), _s(warm), _s(_g(r, "md_cold", "rebuild_s")), f"{_mb(_peak(r, 'md_cold'))} / {_mb(_peak(r, 'md_warm'))}",
                _s(cos), _mb(_g(r, "cosmos", "rss_mb")), _s(orj), _s(floor),
                f"{_ratio(cold, cos)} / {_ratio(warm, cos)}", f"{_ratio(cold, orj)} / {_ratio(warm, orj)}",
                f"{_ratio(cold, floor)} / {_ratio(warm, floor)}", f"{_ratio(cos, cold)} / {_ratio(cos, warm)}",
            ]) + " |"
        )
    return lines


def detail_table(results: dict) -> list[str]:
    head = ("| manifest | (a) cold: manifest s | re-build: manifest s | re-build ÷ first manifest | (a) warm: manifest s "
            "| (a) after-import MB | (c) orjson peak MB | (d) floor: tasks only s | (d) re-build s | (d) peak MB | (d') floor, GC off s | (a) cold ÷ (d') | (b) cosmos tasks | (b) cosmos after-import MB | manifest-dag commit |")
    lines = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    for r in _order(results.get("build", {})):
        label = f"synth {r['models']:,}" if r.get("models") else r["name"]
        m1, m2 = _g(r, "md_cold", "manifest_s"), _g(r, "md_cold", "rebuild_manifest_s")
        lines.append("| " + " | ".join([
            label, _s(m1), f"{m2 * 1000:.2f} ms" if m2 is not None else "–", f"1/{m1 / m2:,.0f}" if m1 and m2 else "–",
            _s(_g(r, "md_warm", "manifest_s")), _mb(_g(r, "md_cold", "rss_import_mb")), _mb(_g(r, "orjson", "rss_mb")),
            _s(_g(r, "floor", "tasks_s")), _s(_g(r, "floor", "rebuild_s")), _mb(_g(r, "floor", "rss_mb")),
            _s(_g(r, "floor_nogc", "build_s")), _ratio(_g(r, "md_cold", "build_s"), _g(r, "floor_nogc", "build_s")),
            f"{int(_g(r, 'cosmos', 'tasks')):,}" if _g(r, "cosmos", "tasks") else "–", _mb(_g(r, "cosmos", "rss_import_mb")), str(r.get("md_cold", {}).get("code", "–")),
        ]) + " |")
    return lines


def parse_table(results: dict) -> list[str]:
    head = ("| manifest | full, cold s | full, warm s | task-scoped, cold s | task-scoped, warm s | cosmos full s "
            "| scoped warm ÷ full warm | scoped warm ÷ full cold | peak MB full cold / scoped warm | manifest-dag commit |")
    lines = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    for r in _order(results.get("parse", {})):
        label = f"synth {r['models']:,}" if r.get("models") else r["name"]
        fc, fw = _g(r, "full_cold", "parse_s"), _g(r, "full_warm", "parse_s")
        tc, tw = _g(r, "task_cold", "parse_s"), _g(r, "task_warm", "parse_s")
        lines.append("| " + " | ".join([
            label, _s(fc), _s(fw), _s(tc), _s(tw), _s(_g(r, "cosmos_full", "parse_s")),
            _ratio(tw, fw), _ratio(tw, fc), f"{_mb(_g(r, 'full_cold', 'rss_mb'))} / {_mb(_g(r, 'task_warm', 'rss_mb'))}",
            str(r.get("task_warm", {}).get("code", "–")),
        ]) + " |")
    return lines


def cpu_table(results: dict) -> list[str]:
    """The same cases in CPU seconds of the measured process: on a shared 2-core machine a
    process's CPU time moves far less with the load than its wall time does."""
    head = ("| manifest | (a) cold CPU s | (a) warm CPU s | (d) floor CPU s | (d') floor, GC off CPU s "
            "| a cold ÷ d | a warm ÷ d | a cold ÷ d' | full warm parse CPU s | task-scoped warm parse CPU s "
            "| scoped ÷ full warm | scoped ÷ full cold |")
    lines = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    parse = {r["name"]: r for r in results.get("parse", {}).values()}
    for r in _order(results.get("build", {})):
        label = f"synth {r['models']:,}" if r.get("models") else r["name"]
        cold, warm = _g(r, "md_cold", "cpu_s"), _g(r, "md_warm", "cpu_s")
        floor, floor_nogc = _g(r, "floor", "cpu_s"), _g(r, "floor_nogc", "cpu_s")
        p = parse.get(r["name"], {})
        fc, fw, tw = _g(p, "full_cold", "cpu_s"), _g(p, "full_warm", "cpu_s"), _g(p, "task_warm", "cpu_s")
        lines.append("| " + " | ".join([
            label, _s(cold), _s(warm), _s(floor), _s(floor_nogc), _ratio(cold, floor), _ratio(warm, floor),
            _ratio(cold, floor_nogc), _s(fw), _s(tw), _ratio(tw, fw), _ratio(tw, fc),
        ]) + " |")
    return lines


def select_table(results: dict) -> list[str]:
    sel = results.get("select")
    if not sel:
        return []
    lines = [
        f"On `{sel['manifest']}` ({sel['nodes']:,} enabled nodes): `load_manifest` {_s(sel['load_s'])} s, "
        f"`DbtGraph` {_s(sel['graph_s'])} s, then per expression (median of 3 in one process; the first call "
        "also builds the selector's lazy indexes):",
        "",
        "| expression | nodes | first call s | median s |",
        "|---|---|---|---|",
    ]
    for row in sel["rows"]:
        lines.append(f"| `{row['expr']}` | {row['nodes']:,} | {_s(row['first_s'])} | {_s(row['s'])} |")
    return lines


def render_report(results: dict) -> str:
    v = results.get("versions") or versions()
    out = [
        "# Performance",
        "",
        "Measured by `make bench` (`benchmarks/run.py`); this file is written by it. Every case is a",
        "fresh process; times are medians of at least 3 runs, in seconds, measured after imports;",
        "peak MB is the process's peak RSS (imports included; for (a), the peak of its first build,",
        "before the re-builds measured in the same process). Manifests: `benchmarks/synth.py`",
        "(deterministic, seed 1) and the real ones in `../shared/manifests/large/`.",
        "",
        f"- Machine: {v['machine']}",
        f"- Python {v['python']}, Airflow {v['airflow']}, orjson {v['orjson']}, manifest-dag {v['manifest-dag']}",
        f"- astronomer-cosmos {v['cosmos']} (Airflow {v['cosmos airflow']}) in its own venv, `.bench/cosmos-venv`",
        f"- Latest run: {results.get('when', '?')}. The tables merge every run's latest figures per row (see"
        " `--help`); 1-minute load average before each case (min / median / max) per run: "
        + "; ".join(f"{k}: {' / '.join(map(str, v))}" for k, v in sorted(results.get("load", {}).items())),
        "  (2 cores shared with other work: absolute times are noisy, ratios between cases measured",
        "  side by side are the figures to read)",
        "",
        "## Scheduler side: building the DAG",
        "",
        "(a) manifest-dag `DbtDag`, default rendering (a TaskGroup per model: run, then test), *cold*: no",
        "plan cache (`MANIFEST_DAG_PLAN_CACHE=off`), *warm*: the disk plan cache filled by an earlier",
        "process. (b) astronomer-cosmos `DbtDag`, `LoadMode.DBT_MANIFEST`, `ExecutionMode.VIRTUALENV`,",
        "default rendering. (c) `orjson.loads` of the file alone. (d) the linear floor: `orjson.loads`",
        "of the file, then plain `EmptyOperator`s with the same TaskGroups, tasks and edges as (a),",
        "wired straight into the tasks' id sets. *re-build*: building the same DAG again in the same",
        "process (a DAG-processor cycle; in-process plan memo). Ratios are given as cold / warm.",
        "",
        *build_table(results),
        "",
        "Details: the manifest handling part of (a) (`cached_plan`: read, select, plan; or the",
        "cache look-up), and the parts of the floor.",
        "",
        *detail_table(results),
        "",
        "## Worker side: the task runner's parse (issue 12)",
        "",
        "Airflow's task runner loads the task's DAG file with a DagBag before every task, inside a",
        "parsing context naming the DAG and the task, and logs it as `dag_file_parse_ms`. Measured",
        "the same way: a `DagBag` load of the DAG file in a fresh process that has already imported",
        "Airflow; *full*: no parsing context; *task-scoped*: `_AIRFLOW_PARSING_CONTEXT_DAG_ID`/`_TASK_ID`",
        "name one model's run task; *cold*: no plan cache, *warm*: the disk plan cache is filled.",
        "",
        *parse_table(results),
        "",
        "## CPU seconds",
        "",
        "The cases above in CPU seconds of the measured process (same window as the wall times), from",
        "the runs that recorded them. The machine is shared: CPU time moves much less with the load",
        "than wall time, so the ratios to the floor are judged here.",
        "",
        *cpu_table(results),
        "",
        "## Selection",
        "",
        *select_table(results),
        "",
    ]
    notes = results.get("notes_md")
    if notes:
        out += [notes, ""]
    return "\n".join(out)


def print_table(results: dict) -> None:
    print("\n".join(build_table(results)))


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
    results = load_results()
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
                save_results(results)
            if args.parse and n in parse_models:
                if not (BENCH / "skeletons" / f"{name}.json").exists():
                    skeleton(manifest, name)
                row = bench_parse(name, manifest, args)
                row["models"] = n
                results.setdefault("parse", {}).setdefault(name, {}).update(row)
                save_results(results)
        if args.select and not args.quick:
            log("[selection]")
            sel = run_child(PY, ["select", str(SELECT_MANIFEST.resolve()), *SELECT_EXPRS])
            sel["manifest"] = "large/spellbook/hourly_spellbook"
            results["select"] = sel
            save_results(results)
        if LOADS:
            results.setdefault("load", {})[results["when"]] = [round(min(LOADS), 1), round(statistics.median(LOADS), 1), round(max(LOADS), 1)]
            save_results(results)
    notes = HERE / "notes.md"
    if notes.exists():
        results["notes_md"] = notes.read_text().strip()
    DOC.write_text(render_report(results))
    print_table(results)
    log(f"wrote {DOC.relative_to(REPO)}; raw results in {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
