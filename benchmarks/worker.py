"""``make bench-worker``: manifest-dag vs astronomer-cosmos on the worker side, with real dbt.

    python benchmarks/worker.py                       # every case (long: cosmos runs dbt ~50 times per DAG run)
    python benchmarks/worker.py --quick               # development: a small selection, one model, 200-model parse
    python benchmarks/worker.py --cases dag --select +dim_products --tools md-warm md-cold cosmos-novenvdir
    python benchmarks/worker.py --report-only         # rewrite docs/performance-worker.md from .bench/worker/results.json

Results are kept in ``.bench/worker/results.json`` keyed by case, so a slice run later adds to
(or replaces) what an earlier run measured; ``docs/performance-worker.md`` is written from
everything measured so far. Caches live under ``.bench/worker/`` (git-ignored).

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
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench_run  # noqa: E402 - benchmarks/run.py: ensure_cosmos, versions, code_version

REPO = HERE.parent
WB = bench_run.BENCH / "worker"
RESULTS = WB / "results.json"
DOC = REPO / "docs" / "performance-worker.md"
PY = sys.executable
COSMOS_PY = bench_run.COSMOS_PY
CHILD = HERE / "worker_child.py"
MARK = "BENCH_RESULT "  # worker_child.py's result line
SHOP = REPO / "fixtures" / "shop"
SHOP_MANIFEST = REPO / "fixtures" / "manifests" / "shop" / "manifest.json"
REQS = ["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"]
TOOLS = ("md-warm", "md-cold", "cosmos-venvdir", "cosmos-novenvdir")
TOOL_LABEL = {
    "md-warm": "manifest-dag, warm dbt processes (default)",
    "md-cold": "manifest-dag, fresh dbt process per task",
    "cosmos-venvdir": "cosmos VIRTUALENV, with virtualenv_dir",
    "cosmos-novenvdir": "cosmos VIRTUALENV, no virtualenv_dir",
}
LOADS: list[float] = []


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_now() -> float:
    value = round(os.getloadavg()[0], 2)
    LOADS.append(value)
    return value


# -- pure parts (tests/benchmarks/test_bench_worker.py) -------------------------------------------------------
def node_seconds(run_results: Mapping) -> float:
    """The sum of the nodes' ``execution_time`` in one ``run_results.json``."""
    return float(sum(float(r.get("execution_time") or 0.0) for r in run_results.get("results") or []))


def task_overhead(duration: float | None, node_s: float | None) -> float | None:
    """What a task spent outside dbt's node execution: its duration minus the nodes' time."""
    if duration is None or node_s is None:
        return None
    return duration - node_s


def node_times(run_results: Mapping[str, Mapping], xcoms: Mapping[str, object]) -> dict[str, float]:
    """Each task's node seconds: from the ``run_results.json`` a callback kept (cosmos), else
    from the ``node_seconds`` a manifest-dag task returns (XCom). manifest-dag's tasks get no
    callback: one makes dbt write every artifact, which its warm path otherwise skips."""
    out = {tid: node_seconds(r) for tid, r in run_results.items()}
    for tid, value in xcoms.items():
        if tid not in out and isinstance(value, Mapping) and value.get("node_seconds") is not None:
            out[tid] = float(value["node_seconds"])
    return out


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0..100), None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    k = (len(xs) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize_run(child: Mapping, node_time: Mapping[str, float]) -> dict:
    """One DAG run → the table's figures. ``node_time``: task id → its nodes' seconds (``node_times``)."""
    tasks = child.get("tasks") or {}
    ran = {tid: t for tid, t in tasks.items() if t.get("duration") is not None and t.get("state") in ("success", "failed")}
    durations = [t["duration"] for t in ran.values()]
    overheads = [o for tid, t in ran.items() if (o := task_overhead(t["duration"], node_time.get(tid))) is not None]
    nodes = [node_time[tid] for tid in ran if tid in node_time]
    return {
        "state": child.get("state"),
        "dag_s": child.get("dag_s"),
        "tasks": len(tasks),
        "ok": sum(1 for t in tasks.values() if t.get("state") == "success"),
        "task_median_s": statistics.median(durations) if durations else None,
        "task_p90_s": percentile(durations, 90),
        "task_sum_s": sum(durations),
        "overhead_median_s": statistics.median(overheads) if overheads else None,
        "overhead_p90_s": percentile(overheads, 90),
        "with_results": len(overheads),
        "node_sum_s": sum(nodes),
    }


def fmt_s(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    """a ÷ b, as ``N.N×``."""
    if a is None or b is None or b <= 0:
        return "–"
    r = a / b
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×"


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def dag_table(results: Mapping) -> list[str]:
    """Case 1: one table per selection; rows per tool and cache state."""
    out: list[str] = []
    for sel, by_case in sorted((results.get("dag") or {}).items(), key=lambda kv: (kv[0] != "all", kv[0])):
        ref = {
            cache: {t: (by_case.get(f"{t}/{cache}") or {}).get("dag_s") for t in ("cosmos-venvdir", "cosmos-novenvdir")}
            for cache in ("cold", "warm")
        }
        # without virtualenv_dir cosmos keeps no venv: its one run is the reference for both states
        ref["warm"]["cosmos-novenvdir"] = ref["warm"]["cosmos-novenvdir"] or ref["cold"]["cosmos-novenvdir"]
        rows = []
        for tool in TOOLS:
            for cache in ("cold", "warm"):
                r = by_case.get(f"{tool}/{cache}")
                if not r:
                    continue
                if "error" in r:
                    rows.append([TOOL_LABEL[tool], cache, "failed: " + r["error"][:80]] + ["–"] * 9)
                    continue
                shown = "none kept (a new venv per task)" if tool == "cosmos-novenvdir" else cache
                rows.append([
                    TOOL_LABEL[tool], shown, fmt_s(r.get("dag_s")), f"{r.get('ok', 0)}/{r.get('tasks', 0)}",
                    fmt_s(r.get("task_median_s")), fmt_s(r.get("task_p90_s")), fmt_s(r.get("overhead_median_s")),
                    fmt_ratio(ref[cache]["cosmos-venvdir"], r.get("dag_s")),
                    fmt_ratio(ref[cache]["cosmos-novenvdir"], r.get("dag_s")),
                    str(r.get("load", "–")) + (f" → {r['load_end']}" if r.get("load_end") is not None else ""),
                    str(r.get("code", "–")),
                ])
        if not rows:
            continue
        label = "the whole demo DAG" if sel == "all" else f"`--select {sel}` (both tools, the same dbt selection)"
        out += [f"**{label}**", ""]
        out += table(
            ["tool", "venv cache", "DAG wall s", "tasks ok", "task median s", "task p90 s", "dbt overhead median s",
             "cosmos w/ venv_dir ÷ this", "cosmos no venv_dir ÷ this", "load 1 min (start → end)", "commit"],
            rows,
        )
        out.append("")
        out += earlier_runs_line((results.get("dag_earlier") or {}).get(sel) or {}, "DAG wall s")
    default = results.get("cosmos_default") or {}
    if default:
        out.append("cosmos with its default test rendering (`should_detach_multiple_parents_tests=False`), the "
                   "whole DAG, before the benchmark set that option: " + "; ".join(
                       f"{case}: {r.get('state')}, {r.get('ok')}/{r.get('tasks')} tasks ok, DAG wall {fmt_s(r.get('dag_s'))} s, "
                       f"load {r.get('load')}" for case, r in sorted(default.items())) + ". A test with several parents "
                   "runs right after one of them, before the others are built, and fails; the tasks after it do not run.")
        out.append("")
    return out


def one_table(results: Mapping) -> list[str]:
    one = results.get("one")
    if not one:
        return []
    direct = one.get("direct_s")
    rows = [["`dbt run --select " + one["model"] + "`, fresh process, same venv (direct)", fmt_s(direct), "–", "–"]]
    for key, label in (("md_cold_s", "manifest-dag `run_dbt`, fresh dbt process (warm_processes=0)"),
                       ("md_warm_s", "manifest-dag `run_dbt`, warm dbt process (default)")):
        v = one.get(key)
        over = f"{(v / direct - 1) * 100:+.0f} %" if v is not None and direct else "–"
        rows.append([label, fmt_s(v), over, fmt_s(v - direct if v is not None and direct else None)])
    return table(["path", "median s", "vs direct", "difference s"], rows)


def parse_table(results: Mapping) -> list[str]:
    p = results.get("parse")
    if not p:
        return []
    rows = [
        ["`dbt parse --no-partial-parse` (full parse)", fmt_s(p.get("full_s")), "–"],
        ["`dbt parse`, partial_parse.msgpack of the same path reused", fmt_s(p.get("reuse_s")),
         fmt_ratio(p.get("full_s"), p.get("reuse_s"))],
        ["manifest-dag workspace, new path, msgpack beside the manifest relocated (first task)",
         fmt_s(p.get("ws_first_s")), fmt_ratio(p.get("full_s"), p.get("ws_first_s"))],
        ["manifest-dag workspace, the slot's own copy (next tasks)", fmt_s(p.get("ws_next_s")),
         fmt_ratio(p.get("full_s"), p.get("ws_next_s"))],
    ]
    return table(["dbt parse of " + f"{p.get('models', 0):,} models", "median s", "full ÷ this"], rows)


def median_of_runs(latest: Mapping | None, earlier: list[Mapping] | None) -> Mapping | None:
    """The medians of ``dag_s`` and ``overhead_median_s`` over a row's successful runs (the
    latest and the earlier ones; one run: that run), with ``runs`` = how many."""
    runs = [r for r in [*(earlier or []), latest] if r and "error" not in r and r.get("state") == "success"]
    if not runs:
        return None
    out: dict = {"runs": len(runs)}
    for key in ("dag_s", "overhead_median_s"):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    return out


def earlier_runs_line(earlier: Mapping[str, list[Mapping]], wall: str) -> list[str]:
    """The paragraph under a table listing its rows' earlier runs (``earlier``: case → runs)."""
    if not earlier:
        return []
    return ["Earlier runs of the same rows (" + wall + ", tasks ok, overhead median s, load, commit): " + "; ".join(
        f"{TOOL_LABEL[case.split('/')[0]]}, {case.split('/')[1]}: "
        + ", ".join(f"{fmt_s(r.get('dag_s'))} s, {r.get('ok')}/{r.get('tasks')}, {fmt_s(r.get('overhead_median_s'))} s, "
                    f"load {r.get('load')}, {r.get('code')}" for r in rows)
        for case, rows in sorted(earlier.items())
    ) + ".", ""]


def _merged(results: Mapping, sel: str, case: str) -> Mapping | None:
    return median_of_runs(((results.get("dag") or {}).get(sel) or {}).get(case),
                          ((results.get("dag_earlier") or {}).get(sel) or {}).get(case))


def _dag(results: Mapping, case: str) -> tuple[str, Mapping] | None:
    """A dag-case row (medians over its runs), from the whole DAG if measured there, else from a selection."""
    dag = results.get("dag") or {}
    for sel in ["all", *sorted(k for k in dag if k != "all")]:
        row = _merged(results, sel, case)
        if row:
            return sel, row
    return None


def _same_sel(results: Mapping, a: str, b: str) -> tuple[str, Mapping, Mapping] | None:
    """Rows ``a`` and ``b`` (medians over their runs) measured on the same selection (the whole DAG first)."""
    dag = results.get("dag") or {}
    for sel in ["all", *sorted(k for k in dag if k != "all")]:
        ra, rb = _merged(results, sel, a), _merged(results, sel, b)
        if ra and rb:
            return sel, ra, rb
    return None


def _n(row: Mapping) -> str:
    return "" if row.get("runs", 1) == 1 else f", median of {row['runs']} runs"


def targets_table(results: Mapping) -> list[str]:
    """Each target, judged from the figures measured (never from a constant figure)."""
    rows: list[list[str]] = []

    def where(sel: str) -> str:
        return "whole DAG" if sel == "all" else f"`--select {sel}` only"

    found = _dag(results, "md-warm/warm")
    if found:
        sel, r = found
        v = r.get("overhead_median_s")
        rows.append(["warm per-task dbt overhead ≤ 0.5 s (median)", f"{fmt_s(v)} s ({where(sel)}{_n(r)})",
                     "met" if v is not None and v <= 0.5 else "missed"])
    for need, issue in ((2.0, "6"), (5.0, "11")):
        same = _same_sel(results, "md-warm/warm", "cosmos-venvdir/warm")
        if same:
            sel, md, co = same
            ratio = co["dag_s"] / md["dag_s"]
            rows.append([f"warm venv cache: DAG ≥ {need:.0f}× faster than cosmos with virtualenv_dir (issue {issue})",
                         f"{fmt_ratio(co['dag_s'], md['dag_s'])} ({fmt_s(co['dag_s'])} s{_n(co)} vs {fmt_s(md['dag_s'])} s{_n(md)}, {where(sel)})",
                         "met" if ratio >= need else "missed"])
    same = _same_sel(results, "md-warm/cold", "cosmos-novenvdir/cold")
    if same:
        sel, md, co = same
        ratio = co["dag_s"] / md["dag_s"]
        rows.append(["cold venv cache: DAG ≥ 5× faster than cosmos without virtualenv_dir",
                     f"{fmt_ratio(co['dag_s'], md['dag_s'])} ({fmt_s(co['dag_s'])} s{_n(co)} vs {fmt_s(md['dag_s'])} s{_n(md)}, {where(sel)})",
                     "met" if ratio >= 5 else "missed"])
    one = results.get("one") or {}
    if one.get("direct_s") and one.get("md_cold_s") is not None:
        pct = (one["md_cold_s"] / one["direct_s"] - 1) * 100
        rows.append(["one model, fresh dbt process: ≤ 15 % over `dbt run` run directly",
                     f"{pct:+.0f} % ({fmt_s(one['md_cold_s'])} s vs {fmt_s(one['direct_s'])} s)", "met" if pct <= 15 else "missed"])
    p = results.get("parse") or {}
    if p.get("ws_notes"):
        bad = [k for k, notes in p["ws_notes"].items() if any("Unable to do partial parsing" in n for n in notes)]
        skipped = [k for k, notes in p["ws_notes"].items() if any("skipping parsing" in n for n in notes)]
        rows.append(["workspace copy reuses partial parsing (no \"Unable to do partial parsing\")",
                     f"{len(skipped)} of {len(p['ws_notes'])} workspace runs skipped parsing; {len(bad)} re-parsed",
                     "met" if not bad and len(skipped) == len(p["ws_notes"]) else "missed"])
    import worker_sched

    rows += worker_sched.targets(results)
    if not rows:
        return ["(nothing measured yet)"]
    return table(["target", "measured", "verdict"], rows)


def _sched_section(results: Mapping) -> list[str]:
    import worker_sched

    return [*worker_sched.SECTION_INTRO, *worker_sched.sched_table(results)]


def render_report(results: Mapping) -> str:
    v = results.get("versions") or {}
    loads = results.get("load") or {}
    load_txt = "; ".join(f"{k}: {' / '.join(map(str, x))}" for k, x in sorted(loads.items()))
    one = results.get("one") or {}
    p = results.get("parse") or {}
    ws_notes = p.get("ws_notes") or {}
    out = [
        "# Performance: worker side",
        "",
        "Measured by `make bench-worker` (`benchmarks/worker.py`); this file is written by it (the",
        "scheduler side is in [performance.md](performance.md)). Every figure is a real run on the",
        "machine below; nothing is extrapolated.",
        "",
        f"- Machine: {v.get('machine', '?')}, shared with other work while measuring",
        f"- Python {v.get('python', '?')}, Airflow {v.get('airflow', '?')}, manifest-dag {v.get('manifest-dag', '?')}",
        f"- astronomer-cosmos {v.get('cosmos', '?')} (Airflow {v.get('cosmos airflow', '?')}) in its own venv, `.bench/cosmos-venv`",
        f"- dbt in every worker venv: `{' '.join(REQS)}` (dbt-core {v.get('dbt', '?')})",
        f"- Latest run: {results.get('when', '?')}; 1-minute load average before each case, per run (min / median / max): {load_txt or '–'}",
        "  (2 cores shared with other engineers' tests: absolute times are noisy; each row also gives",
        "  its own load average and the manifest-dag commit it measured)",
        "",
        "## 1. The demo DAG through `dag.test()`",
        "",
        "The `shop` project (`fixtures/shop`: 7 seeds, a snapshot, staging, intermediate and mart models",
        "with their tests, on DuckDB), rendered by each tool with its default test behaviour (a run",
        "task then a test task per model); cosmos with `should_detach_multiple_parents_tests=True`, so",
        "that, as in manifest-dag, a test with several parents runs in its own task after all of them",
        "(without it cosmos's DAG fails on this project: see below the table). cosmos reads the same",
        "`manifest.json` (`LoadMode.DBT_MANIFEST`). Each run: a fresh child process, a fresh DuckDB file and a",
        "fresh Airflow home; *cold* venv cache: an empty cache directory (manifest-dag's",
        "`VenvConfig.cache_dir`, cosmos's `virtualenv_dir`), *warm*: the second run, reusing it. The",
        "warm dbt processes a run starts are stopped after it, so a warm-cache run starts its own.",
        "cosmos without `virtualenv_dir` keeps no venv (each task builds one in a temporary directory",
        "and deletes it), so it is run once, and that run is the reference for both cache states.",
        "",
        "- *DAG wall s*: `dag.test()` alone (tasks run one at a time), after imports and the DagBag load.",
        "- *task median / p90*: Airflow's task durations (`end_date - start_date`).",
        "- *dbt overhead*: a task's duration minus the sum of `execution_time` over the nodes in the",
        "  `run_results.json` that task's dbt call wrote: what the task spent on anything but running",
        "  the nodes' SQL (Airflow's task start, venv, project copy, dbt start-up, parse, deps, result",
        "  handling). cosmos hands over the run's target folder after dbt ends (its `callback`",
        "  operator argument): the benchmark's callback copies `run_results.json` out, keyed by task id.",
        "  A manifest-dag task returns that sum in its XCom value (`node_seconds`), read after the run.",
        "  Rows measured before that (rows without `node_seconds` in `results.json`: the earlier runs",
        "  listed below the table) gave manifest-dag an `artifacts_callback` instead, which makes dbt",
        "  write every artifact, `manifest.json` too, a cost of about 0.35 s per task that the warm path",
        "  otherwise skips: those rows are conservative. The median is over the tasks that ran dbt.",
        "- *cosmos ÷ this*: the cosmos DAG wall time over this row's, same selection and cache state.",
        "- cosmos's venvs: Airflow's `prepare_virtualenv` uses `uv` when it finds it on `PATH`"
        + (" (here it does: the benchmark puts the repo's `uv` on cosmos's `PATH`, as Airflow's images have it)"
           if results.get("cosmos_uv") else " (here it does not: pip)") + ";",
        "  manifest-dag uses `uv` beside its Python. Both keep their installers' download caches",
        "  between runs, so *cold* means an empty venv directory, not an empty wheel cache.",
        "",
        *dag_table(results),
        "## 2. The demo DAG through a real scheduler (LocalExecutor)",
        "",
        *_sched_section(results),
        "## 3. One model's task",
        "",
    ]
    if one:
        out += [
            f"Model `{one['model']}` on a seeded DuckDB file, venv already built, {one.get('runs', '?')} runs of",
            "each, interleaved, medians. *direct*: `<venv>/bin/dbt run --select <model>` as a fresh process in",
            "a prepared copy of the project (its own `partial_parse.msgpack` in place, `dbt deps` done).",
            "manifest-dag: `manifest_dag.worker.runner.run_dbt`, the path `DbtVenvOperator.execute` takes (venv",
            "look-up, workspace copy, msgpack placement, profile, DuckDB lock, dbt, `run_results.json`),",
            "without Airflow's own task start-up. Warm path: the pool's process already started by an",
            f"untimed first call. Load average before: {one.get('load', '–')}; commit {one.get('code', '–')}.",
            "",
            *one_table(results),
            "",
            "Every run, in order (s): direct " + ", ".join(fmt_s(x) for x in one.get("direct_all", []))
            + "; fresh process " + ", ".join(fmt_s(x) for x in one.get("md_cold_all", []))
            + "; warm process " + ", ".join(fmt_s(x) for x in one.get("md_warm_all", [])) + ".",
            "",
        ]
    out += ["## 4. `dbt parse` with and without a reused `partial_parse.msgpack`", ""]
    if p:
        out += [
            f"`tests/support/synth_project.generate_project` with {p.get('models', 0):,} models (DuckDB profile), dbt from",
            "the same venv, median of 3 fresh `dbt parse` processes each. The workspace rows run",
            "`run_dbt(('parse',))` on a copy of the project at another path, with the manifest (and its",
            "msgpack) from the original path: the first call relocates that msgpack into its slot, the",
            f"later ones reuse the slot's own copy. Load average before: {p.get('load', '–')}; commit {p.get('code', '–')}.",
            "",
            *parse_table(results),
            "",
            "Every run (s): full " + ", ".join(fmt_s(x) for x in p.get("full_all", []))
            + "; reused " + ", ".join(fmt_s(x) for x in p.get("reuse_all", []))
            + "; workspace " + ", ".join(fmt_s(x) for x in p.get("ws_all", [])) + ".",
            "",
            "What dbt's log said in the workspace runs (\"Unable to do partial parsing\" means dbt",
            "re-parsed everything):",
            "",
        ]
        for k, notes in ws_notes.items():
            out.append(f"- {k}: " + ("; ".join(f"`{n}`" for n in notes) if notes else "no parse notes"))
        out.append("")
    out += ["## Targets (issues 6 and 11)", "",
            "Judged from the figures above; where a row was run more than once, from the median of its runs.", "",
            *targets_table(results), ""]
    out += [
        "## Notes on the method",
        "",
        "- `dag.test()` runs the tasks one after another in one process, so the DAG wall time is close",
        "  to the sum of the task durations; a deployment with parallel workers would overlap them.",
        "  The first task of every run also carries `dag.test()`'s own start-up (its in-process",
        "  execution API), the same for both tools.",
        "- Each run writes a fresh DuckDB file at a new path, and the profile reads that path from",
        "  `SHOP_DUCKDB_PATH`; dbt hashes the rendered profile into its partial-parse check, so the",
        "  first dbt call of a run finds the msgpack of an earlier run (or the one `make golden` wrote)",
        "  \"changed\" and parses the whole project once; the later tasks reuse the msgpack that first",
        "  call wrote. cosmos likewise keeps the latest msgpack in its own cache (`/tmp/cosmos/<dag>`),",
        "  which survives between runs.",
        "- cosmos runs `dbt deps` before every task (its default `install_deps=True`, the project has",
        "  a local package); manifest-dag runs it once per worker and links the result.",
        "- The warm-process rows start their pool's process inside the first task that needs it; the",
        "  process is stopped after each run, so no run inherits a warm process from an earlier one.",
        "- Load average: the machine's other users ran test suites during these runs; compare rows",
        "  measured at similar load, and prefer the ratios of rows measured back to back.",
    ]
    return "\n".join(out)


# -- plumbing --------------------------------------------------------------------------------------
def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def save_results(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True))


def base_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("AIRFLOW__CORE__UNIT_TEST_MODE", "PYTHONDONTWRITEBYTECODE", "_AIRFLOW_PARSING_CONTEXT_DAG_ID",
              "_AIRFLOW_PARSING_CONTEXT_TASK_ID", "MANIFEST_DAG_WARM_PROCESSES", "VIRTUAL_ENV"):
        env.pop(k, None)
    env.update(
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__COLORED_CONSOLE_LOG="False",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def project_copy() -> Path:
    """The shop project both tools read: fixtures/shop without dbt's outputs, plus the msgpack
    `make golden` wrote beside the manifest in target/ (where cosmos looks for one)."""
    dest = WB / "shop"
    stamp = dest / ".bench-source"
    if not stamp.exists():
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(SHOP, dest, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb", "*.wal"))
        (dest / "target").mkdir()
        shutil.copy2(SHOP_MANIFEST.parent / "partial_parse.msgpack", dest / "target" / "partial_parse.msgpack")
        stamp.write_text("fixtures/shop\n")
    return dest


def airflow_template(python: Path | str, name: str) -> Path:
    """A once-migrated Airflow home per Airflow install; each run gets a copy of its DB."""
    home = WB / "airflow-template" / name
    db = home / "airflow.db"
    if not db.exists():
        home.mkdir(parents=True, exist_ok=True)
        log(f"migrating an Airflow metadata DB for {name} (once) ...")
        subprocess.run([str(python), "-m", "airflow", "db", "migrate"], env=base_env(AIRFLOW_HOME=str(home)),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return db


#: the top of both DAG files: their settings, written into the file by the real-scheduler case
#: (benchmarks/worker_sched.py), read from the environment by the dag.test() case (one file, one run)
DAG_SETTINGS = '''
BENCH = {bench!r}


def setting(name):
    return BENCH.get(name) or os.environ["BENCH_" + name.upper()]
'''

MD_DAG = '''\
"""The demo's shop DAG (examples/dags/shop_dag.py); each task's XCom says its nodes' seconds (an Airflow DAG)."""
import os
from pathlib import Path

import pendulum

from manifest_dag import DbtDag, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig

PROJECT = Path({project!r})
''' + DAG_SETTINGS + '''

dag = DbtDag(
    dag_id=BENCH.get("dag_id", "shop"),
    project_config=ProjectConfig(
        manifest_path={manifest!r},
        project_dir=PROJECT,
        env_vars={{"SHOP_DUCKDB_PATH": setting("duckdb")}},
        install_deps=True,
    ),
    profile_config=ProfileConfig(profile_name="shop", target_name="dev", profiles_yml_path=PROJECT / "profiles.yml"),
    venv_config=VenvConfig(py_requirements={reqs!r}, cache_dir=setting("venv_cache"),
                           warm_processes=BENCH.get("warm_processes")),
    render_config=RenderConfig(select={select!r}),
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
)
'''

COSMOS_DAG = '''\
"""The shop DAG as astronomer-cosmos renders it (an Airflow DAG): LoadMode.DBT_MANIFEST, ExecutionMode.VIRTUALENV."""
import os
import shutil
from pathlib import Path

import pendulum
from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, LoadMode

PROJECT = Path({project!r})
''' + DAG_SETTINGS + '''
VENV_DIR = BENCH.get("cosmos_venv_dir") or os.environ.get("BENCH_COSMOS_VENV_DIR") or None


def keep_results(project_dir, **kwargs):
    src = Path(project_dir) / "target" / "run_results.json"
    if src.is_file():
        shutil.copy2(src, Path(setting("rr_dir")) / (kwargs["context"]["ti"].task_id + ".json"))


dag = DbtDag(
    dag_id=BENCH.get("dag_id", "shop"),
    project_config=ProjectConfig(
        dbt_project_path=PROJECT,
        manifest_path={manifest!r},
        env_vars={{"SHOP_DUCKDB_PATH": setting("duckdb")}},
    ),
    profile_config=ProfileConfig(profile_name="shop", target_name="dev", profiles_yml_filepath=PROJECT / "profiles.yml"),
    execution_config=ExecutionConfig(
        execution_mode=ExecutionMode.VIRTUALENV,
        virtualenv_dir=Path(VENV_DIR) if VENV_DIR else None,
    ),
    # tests with several parents in a task of their own, after all of them (as manifest-dag does);
    # with cosmos's default they run after one parent only and fail on the shop project
    render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, select={select!r},
                               should_detach_multiple_parents_tests=True),
    operator_args={{"py_requirements": {reqs!r}, "callback": keep_results}},
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
)
'''


def uv_bin_dir() -> Path:
    """A directory holding only the repo's ``uv``, for cosmos's ``PATH`` (Airflow's
    ``prepare_virtualenv`` uses uv when it finds it, as on Airflow's images)."""
    uv_dir = WB / "uv-bin"
    uv_dir.mkdir(parents=True, exist_ok=True)
    link = uv_dir / "uv"
    if not link.exists():
        link.symlink_to(Path(PY).parent / "uv")
    return uv_dir


def stop_warm(cache: Path) -> int:
    from manifest_dag.worker.warm import stop_pools

    return stop_pools(cache / ".state")


# -- case 1: the whole DAG -------------------------------------------------------------------------
def dag_run(tool: str, cache_state: str, select: list[str], args: argparse.Namespace) -> dict:
    sel_key = " ".join(select) or "all"
    slug = "".join(c if c.isalnum() else "_" for c in sel_key)[:40]
    run_dir = WB / "runs" / f"{tool}-{cache_state}-{slug}"
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "dags").mkdir(parents=True)
    (run_dir / "airflow").mkdir()
    (run_dir / "rr").mkdir()
    project = project_copy()
    cosmos = tool.startswith("cosmos")
    python = COSMOS_PY if cosmos else Path(PY)
    shutil.copy2(airflow_template(python, "cosmos" if cosmos else "md"), run_dir / "airflow" / "airflow.db")
    template = COSMOS_DAG if cosmos else MD_DAG
    (run_dir / "dags" / "shop_bench.py").write_text(
        template.format(project=str(project), manifest=str(SHOP_MANIFEST), reqs=REQS,
                        select=list(select) if cosmos else (select or None), bench={})
    )
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
    code = bench_run.code_version()
    log(f"[dag {sel_key}] {tool}, {cache_state} venv cache (load {load}) ...")
    t = time.monotonic()
    try:
        with (run_dir / "dag_test.log").open("w") as out:
            proc = subprocess.run([str(python), str(CHILD), str(run_dir / "dags"), "shop"], env=env,
                                  stdout=out, stderr=subprocess.STDOUT, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout} s", "load": load, "code": code}
    finally:
        if not cosmos:
            stopped = stop_warm(cache)
            if stopped:
                log(f"  stopped {stopped} warm dbt process(es)")
    wall = time.monotonic() - t
    text = (run_dir / "dag_test.log").read_text(errors="replace")
    lines = [ln[len(MARK):] for ln in text.splitlines() if ln.startswith(MARK)]
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
    log(f"  {row['state']}: dag {fmt_s(row['dag_s'])} s, {row['ok']}/{row['tasks']} ok, task median "
        f"{fmt_s(row['task_median_s'])} s, overhead median {fmt_s(row['overhead_median_s'])} s ({wall:.0f} s in all)")
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
            save_results(results)
            write_doc(results)


# -- case 2: one model's task ----------------------------------------------------------------------
def md_venv(cache: Path):
    from manifest_dag.worker.venv import VenvCache, VenvSpec

    return VenvCache(cache, log=lambda s: None).ensure(VenvSpec(requirements=tuple(REQS)))


def bench_one(results: dict, args: argparse.Namespace) -> None:
    from manifest_dag import ProfileConfig
    from manifest_dag.worker.runner import DbtInvocation, run_dbt
    from manifest_dag.worker.venv import VenvSpec

    model = args.model
    cache = WB / "caches" / "one"
    venv = md_venv(cache)
    work = Path(tempfile.mkdtemp(prefix="bench-worker-one-"))
    try:
        db = work / "shop.duckdb"
        direct_proj = work / "direct"
        shutil.copytree(project_copy(), direct_proj, ignore=shutil.ignore_patterns("target", ".bench-source"))
        env = venv.environ()
        env.update(DBT_SEND_ANONYMOUS_USAGE_STATS="false", SHOP_DUCKDB_PATH=str(db))

        def dbt(*a: str) -> float:
            t = time.monotonic()
            subprocess.run([str(venv.executable("dbt")), *a, "--project-dir", str(direct_proj),
                            "--profiles-dir", str(direct_proj), "--no-use-colors"],
                           cwd=direct_proj, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return time.monotonic() - t

        log(f"[one] preparing: dbt deps, seed, parse, `run --select +{model}` in {direct_proj}")
        dbt("deps")
        dbt("seed")
        dbt("run", "--select", f"+{model}")
        dbt("run", "--select", model)  # leaves target/partial_parse.msgpack of this path

        def md(warm: int) -> float:
            t = time.monotonic()
            run_dbt(
                DbtInvocation(
                    command_args=("run", "--select", model),
                    project_dir=project_copy(),
                    venv_spec=VenvSpec(requirements=tuple(REQS)),
                    profile_config=ProfileConfig(profile_name="shop", target_name="dev",
                                                 profiles_yml_path=project_copy() / "profiles.yml"),
                    manifest_path=SHOP_MANIFEST,
                    cache_dir=cache,
                    env={"SHOP_DUCKDB_PATH": str(db)},
                    install_deps=True,
                    warm_processes=warm,
                ),
                log=lambda s: None,
            )
            return time.monotonic() - t

        md(0)  # untimed: deps once for this worker, the slot's msgpack
        md(2)  # untimed: starts the warm process
        load = load_now()
        code = bench_run.code_version()
        direct, cold, warm = [], [], []
        for i in range(args.one_runs):
            direct.append(dbt("run", "--select", model))
            cold.append(md(0))
            warm.append(md(2))
            log(f"  run {i + 1}/{args.one_runs}: direct {direct[-1]:.2f} s, md cold {cold[-1]:.2f} s, md warm {warm[-1]:.2f} s")
        results["one"] = {
            "model": model, "runs": args.one_runs, "load": load, "code": code,
            "direct_s": statistics.median(direct), "md_cold_s": statistics.median(cold), "md_warm_s": statistics.median(warm),
            "direct_all": direct, "md_cold_all": cold, "md_warm_all": warm,
        }
        save_results(results)
        write_doc(results)
    finally:
        stop_warm(cache)
        shutil.rmtree(work, ignore_errors=True)


# -- case 3: dbt parse on a large project ----------------------------------------------------------
SYNTH_PROFILE = "synth:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: \"{{ env_var('SYNTH_DUCKDB', 'synth.duckdb') }}\"\n      threads: 1\n"


def bench_parse(results: dict, args: argparse.Namespace) -> None:
    sys.path.insert(0, str(REPO))
    from manifest_dag import ProfileConfig
    from manifest_dag.worker.runner import DbtInvocation, run_dbt
    from manifest_dag.worker.venv import VenvSpec
    from tests.support.synth_project import generate_project

    n = args.parse_models
    cache = WB / "caches" / "one"
    venv = md_venv(cache)
    work = Path(tempfile.mkdtemp(prefix="bench-worker-parse-"))
    try:
        proj = work / "synth"
        generate_project(proj, n)
        (proj / "profiles.yml").write_text(SYNTH_PROFILE)
        env = venv.environ()
        env.update(DBT_SEND_ANONYMOUS_USAGE_STATS="false", SYNTH_DUCKDB=str(work / "synth.duckdb"))

        def parse(*extra: str) -> float:
            t = time.monotonic()
            subprocess.run([str(venv.executable("dbt")), "parse", *extra, "--project-dir", str(proj),
                            "--profiles-dir", str(proj), "--no-use-colors"],
                           cwd=proj, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return time.monotonic() - t

        log(f"[parse] {n} models in {proj}")
        parse()  # untimed: writes target/manifest.json and partial_parse.msgpack
        load = load_now()
        code = bench_run.code_version()
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
            t = time.monotonic()
            run_dbt(
                DbtInvocation(
                    command_args=("parse",),
                    project_dir=moved,
                    venv_spec=VenvSpec(requirements=tuple(REQS)),
                    profile_config=ProfileConfig(profile_name="synth", target_name="dev", profiles_yml_path=moved / "profiles.yml"),
                    manifest_path=proj / "target" / "manifest.json",
                    cache_dir=cache,
                    env={"SYNTH_DUCKDB": str(work / "synth.duckdb")},
                    warm_processes=0,
                ),
                log=lines.append,
            )
            ws_times.append(time.monotonic() - t)
            keep = [ln for ln in lines if ln.startswith(("partial parse:", "dbt parse:")) or "Unable to do partial parsing" in ln]
            notes["first task (relocated)" if i == 0 else f"task {i + 1} (slot copy)"] = keep[:4]
            log(f"  workspace {i + 1}: {ws_times[-1]:.2f} s; {keep[:3]}")
        results["parse"] = {
            "models": n, "load": load, "code": code,
            "full_s": statistics.median(full), "reuse_s": statistics.median(reuse),
            "ws_first_s": ws_times[0], "ws_next_s": statistics.median(ws_times[1:]),
            "full_all": full, "reuse_all": reuse, "ws_all": ws_times, "ws_notes": notes,
        }
        save_results(results)
        write_doc(results)
    finally:
        stop_warm(cache)
        shutil.rmtree(work, ignore_errors=True)


# -- report ----------------------------------------------------------------------------------------
def write_doc(results: dict) -> None:
    DOC.write_text(render_report(results))


def versions() -> dict:
    v = bench_run.versions()
    try:
        venv = md_venv(WB / "caches" / "one")
        for info in venv.path.glob("lib/python*/site-packages/dbt_core-*.dist-info"):
            v["dbt"] = info.name[len("dbt_core-"):-len(".dist-info")]
    except Exception as exc:  # noqa: BLE001 - the report says "?"
        log(f"dbt version unknown: {exc}")
    return v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="manifest-dag vs cosmos, worker side (real dbt)")
    ap.add_argument("--quick", action="store_true",
                    help="development: --select +dim_products, manifest-dag only, 200-model parse, 2 one-model runs")
    ap.add_argument("--cases", nargs="*", default=["one", "parse", "dag", "sched"], choices=("dag", "one", "parse", "sched"))
    ap.add_argument("--sched-tools", nargs="*", choices=("md-cold", "md-warm", "cosmos-venvdir"),
                    help="tools for the real-scheduler case (default: all three)")
    ap.add_argument("--tools", nargs="*", choices=TOOLS, help="tools for the dag case (default: all four)")
    ap.add_argument("--select", nargs="*", default=[], help="a dbt selection for BOTH tools in the dag case (default: all)")
    ap.add_argument("--warm-only", action="store_true", help="dag case: skip the cold-cache runs (reuse the caches)")
    ap.add_argument("--model", default="stg_orders")
    ap.add_argument("--one-runs", type=int, default=5)
    ap.add_argument("--parse-models", type=int, default=2000)
    ap.add_argument("--timeout", type=float, default=5400)
    ap.add_argument("--no-cosmos-uv", dest="cosmos_uv", action="store_false",
                    help="do not put uv on cosmos's PATH (Airflow then builds its venvs with pip)")
    ap.add_argument("--keep", action="store_true", help="keep the runs' DuckDB files")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.cases = [c for c in args.cases if c != "sched"]
        args.select = args.select or ["+dim_products"]
        args.tools = args.tools or ["md-warm", "md-cold"]
        args.parse_models = 200
        args.one_runs = 2
    args.tools = args.tools or list(TOOLS)
    results = load_results()
    if not args.report_only:
        WB.mkdir(parents=True, exist_ok=True)
        if (any(t.startswith("cosmos") for t in args.tools) and "dag" in args.cases) or "sched" in args.cases:
            bench_run.ensure_cosmos()
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
            import worker_sched

            worker_sched.bench_sched(results, args)
        if LOADS:
            results.setdefault("load", {})[results["when"]] = [min(LOADS), round(statistics.median(LOADS), 2), max(LOADS)]
            save_results(results)
    write_doc(results)
    print("\n".join(dag_table(results) + one_table(results) + [""] + parse_table(results)))
    log(f"wrote {DOC.relative_to(REPO)}; raw results in {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
