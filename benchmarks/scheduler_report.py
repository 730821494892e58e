"""``docs/performance.md``: the scheduler-side report, from ``.bench/results.json``.

Written from everything measured so far, so a slice run (one size, no cosmos...) updates its rows
and keeps the others; each table row is one manifest.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.provenance import versions
from benchmarks.report import fmt_mb, fmt_s, load_line, ratio, table


def _g(row: dict, case: str, key: str) -> float | None:
    return row.get(case, {}).get(key)


def _label(row: dict) -> str:
    return f"synth {row['models']:,}" if row.get("models") else row["name"]


def _order(rows: dict) -> list[dict]:
    synth = sorted((r for r in rows.values() if r.get("models")), key=lambda r: r["models"])
    real = [r for r in rows.values() if not r.get("models")]
    return synth + sorted(real, key=lambda r: r["name"])


def _peak(row: dict, case: str) -> float | None:
    """The first build's peak where the run recorded it (re-builds in the same process would add
    the previous DAGs, garbage not collected yet), else the process's."""
    return _g(row, case, "rss_first_mb") or _g(row, case, "rss_mb")


def _manifest_table(head: str, rows: list[dict], cells: Callable[[dict], list[str]]) -> list[str]:
    """A table with one row per manifest: its label, then ``cells(row)``; ``head``: the column
    names as the markdown header reads them (joined by `` | ``)."""
    return table(head.split(" | "), ([_label(r), *cells(r)] for r in rows))


def build_table(results: dict) -> list[str]:
    def cells(r: dict) -> list[str]:
        cold, warm = _g(r, "md_cold", "build_s"), _g(r, "md_warm", "build_s")
        cos = _g(r, "cosmos", "build_s")
        orj, floor = _g(r, "orjson", "build_s"), _g(r, "floor", "build_s")
        return [
            f"{r['mb']}",
            f"{int(_g(r, 'md_cold', 'tasks') or 0):,}",
            fmt_s(cold),
            fmt_s(warm),
            fmt_s(_g(r, "md_cold", "rebuild_s")),
            f"{fmt_mb(_peak(r, 'md_cold'))} / {fmt_mb(_peak(r, 'md_warm'))}",
            fmt_s(cos),
            fmt_mb(_g(r, "cosmos", "rss_mb")),
            fmt_s(orj),
            fmt_s(floor),
            f"{ratio(cold, cos)} / {ratio(warm, cos)}",
            f"{ratio(cold, orj)} / {ratio(warm, orj)}",
            f"{ratio(cold, floor)} / {ratio(warm, floor)}",
            f"{ratio(cos, cold)} / {ratio(cos, warm)}",
        ]

    return _manifest_table(
        "manifest | MB | tasks | (a) cold s | (a) warm s | re-build s | (a) peak MB cold / warm | "
        "(b) cosmos s | (b) peak MB | (c) orjson s | (d) floor s | a/b | a/c | a/d | b/a",
        _order(results.get("build", {})),
        cells,
    )


def detail_table(results: dict) -> list[str]:
    def cells(r: dict) -> list[str]:
        m1, m2 = _g(r, "md_cold", "manifest_s"), _g(r, "md_cold", "rebuild_manifest_s")
        return [
            fmt_s(m1),
            f"{m2 * 1000:.2f} ms" if m2 is not None else "–",
            f"1/{m1 / m2:,.0f}" if m1 and m2 else "–",
            fmt_s(_g(r, "md_warm", "manifest_s")),
            fmt_mb(_g(r, "md_cold", "rss_import_mb")),
            fmt_mb(_g(r, "orjson", "rss_mb")),
            fmt_s(_g(r, "floor", "tasks_s")),
            fmt_s(_g(r, "floor", "rebuild_s")),
            fmt_mb(_g(r, "floor", "rss_mb")),
            fmt_s(_g(r, "floor_nogc", "build_s")),
            ratio(_g(r, "md_cold", "build_s"), _g(r, "floor_nogc", "build_s")),
            f"{int(_g(r, 'cosmos', 'tasks')):,}" if _g(r, "cosmos", "tasks") else "–",
            fmt_mb(_g(r, "cosmos", "rss_import_mb")),
            str(r.get("md_cold", {}).get("code", "–")),
        ]

    return _manifest_table(
        "manifest | (a) cold: manifest s | re-build: manifest s | re-build ÷ first manifest | "
        "(a) warm: manifest s | (a) after-import MB | (c) orjson peak MB | (d) floor: tasks only s | "
        "(d) re-build s | (d) peak MB | (d') floor, GC off s | (a) cold ÷ (d') | (b) cosmos tasks | "
        "(b) cosmos after-import MB | manifest-dag commit",
        _order(results.get("build", {})),
        cells,
    )


def parse_table(results: dict) -> list[str]:
    def cells(r: dict) -> list[str]:
        fc, fw = _g(r, "full_cold", "parse_s"), _g(r, "full_warm", "parse_s")
        tc, tw = _g(r, "task_cold", "parse_s"), _g(r, "task_warm", "parse_s")
        return [
            *map(fmt_s, (fc, fw, tc, tw, _g(r, "cosmos_full", "parse_s"))),
            ratio(tw, fw),
            ratio(tw, fc),
            f"{fmt_mb(_g(r, 'full_cold', 'rss_mb'))} / {fmt_mb(_g(r, 'task_warm', 'rss_mb'))}",
            str(r.get("task_warm", {}).get("code", "–")),
        ]

    return _manifest_table(
        "manifest | full, cold s | full, warm s | task-scoped, cold s | task-scoped, warm s | "
        "cosmos full s | scoped warm ÷ full warm | scoped warm ÷ full cold | "
        "peak MB full cold / scoped warm | manifest-dag commit",
        _order(results.get("parse", {})),
        cells,
    )


def cpu_table(results: dict) -> list[str]:
    """The same cases in CPU seconds of the measured process: on a shared 2-core machine a
    process's CPU time moves far less with the load than its wall time does."""
    parse = {r["name"]: r for r in results.get("parse", {}).values()}

    def cells(r: dict) -> list[str]:
        cold, warm = _g(r, "md_cold", "cpu_s"), _g(r, "md_warm", "cpu_s")
        floor, floor_nogc = _g(r, "floor", "cpu_s"), _g(r, "floor_nogc", "cpu_s")
        p = parse.get(r["name"], {})
        fc, fw, tw = _g(p, "full_cold", "cpu_s"), _g(p, "full_warm", "cpu_s"), _g(p, "task_warm", "cpu_s")
        return [
            *map(fmt_s, (cold, warm, floor, floor_nogc)),
            ratio(cold, floor),
            ratio(warm, floor),
            ratio(cold, floor_nogc),
            fmt_s(fw),
            fmt_s(tw),
            ratio(tw, fw),
            ratio(tw, fc),
        ]

    return _manifest_table(
        "manifest | (a) cold CPU s | (a) warm CPU s | (d) floor CPU s | (d') floor, GC off CPU s | "
        "a cold ÷ d | a warm ÷ d | a cold ÷ d' | full warm parse CPU s | "
        "task-scoped warm parse CPU s | scoped ÷ full warm | scoped ÷ full cold",
        _order(results.get("build", {})),
        cells,
    )


def select_table(results: dict) -> list[str]:
    sel = results.get("select")
    if not sel:
        return []
    return [
        f"On `{sel['manifest']}` ({sel['nodes']:,} enabled nodes): `load_manifest` {fmt_s(sel['load_s'])} s, "
        f"`DbtGraph` {fmt_s(sel['graph_s'])} s, then per expression (median of 3 in one process; the first call "
        "also builds the selector's lazy indexes):",
        "",
        *table(
            ["expression", "nodes", "first call s", "median s"],
            ([f"`{row['expr']}`", f"{row['nodes']:,}", fmt_s(row["first_s"]), fmt_s(row["s"])] for row in sel["rows"]),
        ),
    ]


def render_report(results: dict) -> str:
    v = results.get("versions") or versions()
    out = [
        "# Performance",
        "",
        "Measured by `make bench` (`python -m benchmarks.scheduler`); this file is written by it. Every",
        "case is a fresh process; times are medians of at least 3 runs, in seconds, measured after imports;",
        "peak MB is the process's peak RSS (imports included; for (a), the peak of its first build,",
        "before the re-builds measured in the same process). Manifests: `benchmarks/synth.py`",
        "(deterministic, seed 1) and the real ones in `../shared/manifests/large/`.",
        "",
        f"- Machine: {v['machine']}",
        f"- Python {v['python']}, Airflow {v['airflow']}, orjson {v['orjson']}, manifest-dag {v['manifest-dag']}",
        f"- astronomer-cosmos {v['cosmos']} (Airflow {v['cosmos airflow']}) in its own venv, `.bench/cosmos-venv`",
        f"- Latest run: {results.get('when', '?')}. The tables merge every run's latest figures per row (see"
        " `--help`); 1-minute load average before each case (min / median / max) per run: "
        + load_line(results.get("load", {})),
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
