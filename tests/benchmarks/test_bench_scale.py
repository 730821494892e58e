"""``make bench-worker``'s scale case (issue 18), its pure parts: which models the tasks run, the
medians after the warm-up task, the estimate, the table, the targets as ratios, and the report
keeping the sections a run did not measure.

Offline and fast: no dbt, no Airflow; the case itself is run by the benchmark, not here.
"""

from __future__ import annotations

import argparse
import ast

import pytest

from benchmarks import worker_scale as sc
from benchmarks.worker_report import keep_unmeasured, paired_table, render_report, scale_table, scale_targets
from benchmarks.worker_setup import synth_dag


def manifest(parents: dict[str, list[str]]) -> dict:
    """A manifest.json of models with these parents (plus a test node, which is no model)."""
    nodes = {
        f"model.synth.{m}": {
            "name": m,
            "resource_type": "model",
            "depends_on": {"nodes": [f"model.synth.{p}" for p in ps]},
        }
        for m, ps in parents.items()
    }
    nodes["test.synth.not_null_a"] = {"name": "not_null_a", "resource_type": "test", "depends_on": {"nodes": []}}
    return {"nodes": nodes}


GRAPH = {"a": [], "b": [], "c": ["a"], "d": ["c", "b"], "e": ["d"], "f": ["a"]}


def test_parse_sizes() -> None:
    assert sc.parse_sizes("20,500,2_000") == [20, 500, 2000]
    assert sc.parse_sizes("") == []
    with pytest.raises(argparse.ArgumentTypeError):
        sc.parse_sizes("20,0")


def test_tasks_run_root_models_when_there_are_enough() -> None:
    parents = sc.model_parents(manifest(GRAPH))
    assert parents["d"] == ["c", "b"] and "not_null_a" not in parents
    assert sc.task_models(parents, 2) == ["a", "b"]  # roots: no parents to build first
    assert sc.task_models(parents, 3) == ["a", "b", "c"]  # fewer roots than tasks: the first models


def test_the_scheduler_dag_is_one_models_upstream_closure() -> None:
    parents = sc.model_parents(manifest(GRAPH))
    assert sc.upstream(parents, "e") == {"a", "b", "c", "d", "e"}
    assert sc.closure_select(parents, 3, 4) == ("d", 4)
    assert sc.closure_select(parents, 9, 9) == ("e", 5)  # none big enough: the largest under the cap
    assert sc.closure_select(parents, 9, 4) == ("d", 4)
    assert sc.closure_select(parents, 1, 0) == ("", 0)  # nothing that small


def test_medians_leave_out_the_warm_up_task_and_failed_ones() -> None:
    tasks = [
        {"model": "a", "wall_s": 30.0, "node_s": 0.5, "state": "success"},  # warm-up: starts the process
        {"model": "b", "wall_s": 1.0, "node_s": 0.25, "state": "success"},
        {"model": "c", "wall_s": 2.0, "node_s": 0.5, "state": "success"},
        {"model": "d", "wall_s": 9.0, "node_s": None, "state": "failed"},
        {"model": "e", "wall_s": 4.0, "node_s": 1.0, "state": "success"},
    ]
    row = sc.summarize_tasks(tasks)
    assert row["measured"] == 3 and row["ok"] == 4
    assert row["task_median_s"] == 2.0
    assert row["overhead_median_s"] == pytest.approx(1.5)  # 0.75, 1.5, 3.0
    assert row["node_median_s"] == 0.5
    assert row["first_s"] == 30.0
    assert sc.summarize_tasks([])["task_median_s"] is None


def test_the_estimate_uses_what_was_measured_at_that_size() -> None:
    measured = {"sizes": {"20": {"md-warm": {"task_median_s": 1.0, "first_s": 10.0}, "md-cold": {"task_median_s": 2.0},
                                 "dbt-cold": {"task_median_s": 3.0, "first_s": 3.0}}},
                "sched": {"dag_s": 200.0}}
    md_cold_first = sc._guess_task_s("md-cold", 20, first=True)  # not measured: guessed
    est = sc.estimate([20], [], 9, 500, measured, parsed=[20])
    # the setup run (dbt-cold), then per tool its first task and 8 more
    assert est["n20"] == pytest.approx(3.0 + (10.0 + 8 * 1.0) + (md_cold_first + 8 * 2.0) + (3.0 + 8 * 3.0))
    assert est["sched"] == pytest.approx(150.0 + 200.0)
    only_warm = sc.estimate([20], [20], 9, 0, measured, parsed=[20], tools=["md-warm"])
    assert only_warm == {"n20": pytest.approx(3.0 + 10.0 + 8 * 1.0)}
    guessed = sc.estimate([20, 5000], [20], 9, 500)
    assert set(guessed) == {"n20", "n5000", "sched"}
    assert guessed["n5000"] > guessed["n20"] > 8 * sc._guess_task_s("cosmos-venvdir", 20)
    assert sc._guess_task_s("md-warm", 2000, first=True) > 10 * sc._guess_task_s("md-warm", 2000)


def test_default_args_full_and_quick() -> None:
    full = argparse.Namespace(quick=False, scale_sizes=None, scale_tasks=None, scale_cosmos_sizes=None,
                              scale_sched_models=None)
    sc.default_args(full)
    assert (full.scale_sizes, full.scale_tasks, full.scale_cosmos_sizes, full.scale_sched_models) == (
        [20, 500, 2000, 5000], 9, [20, 2000], 500)
    quick = argparse.Namespace(quick=True, scale_sizes=[20], scale_tasks=None, scale_cosmos_sizes=None,
                               scale_sched_models=None)
    sc.default_args(quick)
    assert (quick.scale_sizes, quick.scale_tasks, quick.scale_cosmos_sizes, quick.scale_sched_models) == (
        [20], 4, [], 0)


@pytest.mark.parametrize("cosmos", [False, True])
def test_the_synth_dag_files_are_python(tmp_path, cosmos: bool) -> None:
    text = synth_dag(cosmos, tmp_path / "project", ["+m0100"], {"dag_id": "synth_x", "duckdb": "/x.duckdb"})
    ast.parse(text)
    assert repr(str(tmp_path / "project" / "target" / "manifest.json")) in text
    assert "['+m0100']" in text and "'synth_x'" in text and "SYNTH_DUCKDB" in text


# -- the report ----------------------------------------------------------------------------------------
def row(task: float, over: float, when: str = "2026-12-01 10:00 UTC", measured: int = 8, **more: object) -> dict:
    return {"task_median_s": task, "overhead_median_s": over, "node_median_s": task - over, "first_s": 20.0,
            "measured": measured, "ok": measured + 1, "tasks": [{}] * (measured + 1), "when": when, "load": 1.0,
            "load_end": 1.1, "code": "abc1234", **more}


def scale_results() -> dict:
    return {"scale": {"sizes": {
        "20": {"md-warm": row(0.35, 0.3, rss_mb=[170.0]), "dbt-cold": row(4.0, 3.9)},
        "2000": {"md-warm": row(0.55, 0.4, rss_mb=[300.0, 310.0]), "dbt-cold": row(20.0, 19.9),
                 "cosmos-venvdir": row(30.0, 29.8, when="2026-12-01 11:00 UTC")},
        "5000": {"md-warm": row(1.6, 1.5, measured=3), "dbt-cold": {"error": "timed out after 5400 s"}},
    }}}


def test_scale_table_rows_and_the_cold_ratio() -> None:
    text = "\n".join(scale_table(scale_results()))
    warm = next(ln for ln in text.splitlines() if ln.startswith("| 2,000 | manifest-dag `run_dbt`, warm"))
    assert "| 0.550 | 0.400 |" in warm and "| 36.4× |" in warm and "| 300, 310 |" in warm  # 20 / 0.55
    assert "| 8 of 9 |" in warm
    assert "failed: timed out" in text
    assert scale_table({}) == ["(not measured yet: `python -m benchmarks.worker --cases scale`)", ""]


def test_scale_targets_are_ratios_of_the_rows() -> None:
    verdicts = {r[0]: (r[1], r[2]) for r in scale_targets(scale_results())}
    assert verdicts["warm per-task dbt overhead at 2,000 models ≤ 0.5 s (median)"] == ("0.400 s", "met")
    at5k = verdicts["warm per-task dbt overhead at 5,000 models ≤ 1.0 s (median)"]
    assert at5k == ("1.50 s (3 tasks measured, not 8)", "not met")
    growth = verdicts["warm overhead at 2,000 models ≤ 1.5× the 20-model figure"]
    assert growth == ("1.33× (0.400 s vs 0.300 s)", "met")
    assert verdicts["2,000 models: a warm task ≥ 10× faster than one cold `dbt run --select <model>`"][1] == "met"
    assert verdicts["20 models: a warm task ≥ 10× faster than one cold `dbt run --select <model>`"] == (
        "11.4× (4.00 s vs 0.350 s)", "met")
    results = scale_results()
    results["scale"]["sizes"]["20"]["md-warm"] = row(0.35, 0.2, when="2026-11-30 09:00 UTC")
    growth = {r[0]: r for r in scale_targets(results)}["warm overhead at 2,000 models ≤ 1.5× the 20-model figure"]
    assert growth[1].startswith("2.00×") and "rows from different runs" in growth[1] and growth[2] == "not met"
    empty = scale_targets({})
    assert len(empty) == 4 and all(r[2] == "–" for r in empty)  # every target listed, none judged


def test_cpu_delta_counts_a_process_started_in_between_from_zero() -> None:
    assert sc.cpu_delta({1: 2.0, 2: 5.0}, {1: 2.5, 2: 5.0, 3: 0.75}) == pytest.approx(1.25)
    assert sc.cpu_delta({1: 2.0}, {}) == 0  # a retired process: nothing of it is in the interval


def test_paired_medians_leave_out_the_warm_up_and_failed_tasks() -> None:
    tasks = [
        {"wall_s": 9.0, "node_s": 0.1, "cpu_s": 5.0},
        {"wall_s": 0.5, "node_s": 0.1, "cpu_s": 0.3},
        {"wall_s": 0.7, "node_s": 0.1, "cpu_s": 0.5},
        {"wall_s": 0.6, "node_s": None, "cpu_s": 9.0, "state": "failed"},
        {"wall_s": 0.9, "node_s": 0.1, "cpu_s": 0.4},
    ]
    row = sc.summarize_paired(tasks)
    assert row["cpu_median_s"] == pytest.approx(0.4)
    assert row["overhead_median_s"] == pytest.approx(0.6)
    assert row["measured"] == 3


def paired(o20: float, o2000: float, cpu20: float, cpu2000: float) -> dict:
    def size(o: float, cpu: float) -> dict:
        return {"overhead_median_s": o, "cpu_median_s": cpu, "task_median_s": o + 0.05, "measured": 8,
                "tasks": [{}] * 9}

    return {"sizes": {"20": size(o20, cpu20), "2000": size(o2000, cpu2000)}, "load": 6.5, "load_end": 6.1,
            "code": "abc1234", "when": "2026-12-07 09:00 UTC"}


def test_the_overhead_targets_come_from_the_interleaved_run_when_there_is_one() -> None:
    results = scale_results()  # per-size rows: 20 -> 0.3 s, 2,000 -> 0.4 s
    results["scale"]["paired"] = paired(0.2, 0.45, 0.12, 0.15)
    verdicts = {r[0]: (r[1], r[2]) for r in scale_targets(results)}
    assert verdicts["warm per-task dbt overhead at 2,000 models ≤ 0.5 s (median)"] == ("0.450 s (CPU 0.150 s)", "met")
    growth = verdicts["warm overhead at 2,000 models ≤ 1.5× the 20-model figure"]
    assert growth == ("2.25× (0.450 s vs 0.200 s)", "not met")
    # a size the interleaved run did not measure falls back to its own row
    assert verdicts["warm per-task dbt overhead at 5,000 models ≤ 1.0 s (median)"][0].startswith("1.50 s")
    text = "\n".join(paired_table(results))
    line = next(ln for ln in text.splitlines() if ln.startswith("| 2,000 |"))
    assert "| 0.450 | 2.25× |" in line and "| 0.150 | 1.25× |" in line
    assert "Load (1 min) 6.5 → 6.1; commit abc1234" in text
    assert paired_table({})[0].startswith("(not measured yet")


def test_report_has_the_scale_section() -> None:
    text = render_report(scale_results())
    assert "## 5. Scale: one model's task as the project grows (issue 18)" in text
    assert "(not measured yet: `python -m benchmarks.worker --cases scale --scale-sched-models 500`)" in text
    sched = {"dag_s": 80.0, "tasks": 27, "ok": 27, "peak_concurrent": 4, "task_median_s": 2.0, "task_p90_s": 3.0,
             "overhead_median_s": 1.5, "warm_use": {"reused": 23, "started": 4, "cold": 0}, "project_models": 500,
             "select": "+m0100", "selected": 27, "load": 1.0, "code": "abc1234", "state": "success"}
    results = scale_results()
    results["scale"]["sched"] = sched
    text = render_report(results)
    assert "`--select +m0100` of the 500-model project (27 models)" in text and "| 23 / 4 / 0 |" in text


OLD = """# Performance: worker side

- Latest run: 2026-11-25 20:56 UTC; 1-minute load average before each case, per run (min / median / max): 2026-11-25 17:06 UTC: 3.19 / 4.17 / 5.16

## 1. The demo DAG through `dag.test()`

| tool | DAG wall s |
|---|---|
| manifest-dag, warm | 33.4 |

## 3. One model's task

one model: 0.240 s

## Targets (issues 6 and 11)

| target | measured | verdict |
|---|---|---|
| warm per-task dbt overhead ≤ 0.5 s (median) | 0.430 s | met |
| one model, fresh dbt process: ≤ 15 % over `dbt run` run directly | -1 % | met |
"""


def test_a_run_keeps_the_sections_it_did_not_measure() -> None:
    new = """# Performance: worker side

- Latest run: 2026-12-02 01:14 UTC; 1-minute load average before each case, per run (min / median / max): 2026-12-02 01:14 UTC: 2.55 / 3.46 / 4.83

## 1. The demo DAG through `dag.test()`

(intro only)

## 3. One model's task

one model: 0.199 s

## 5. Scale: one model's task as the project grows (issue 18)

scale table

## Targets (issues 6 and 11)

| target | measured | verdict |
|---|---|---|
| one model, fresh dbt process: ≤ 15 % over `dbt run` run directly | +2 % | met |
"""
    results = {"versions": {"python": "3.11"}, "one": {"md_warm_s": 0.199}, "scale": {"sizes": {}}}
    text = keep_unmeasured(new, OLD, results)
    assert "| manifest-dag, warm | 33.4 |" in text and "(intro only)" not in text  # no dag results: kept
    assert "one model: 0.199 s" in text and "0.240" not in text  # measured now: the new figures
    assert "scale table" in text
    assert "| one model, fresh dbt process: ≤ 15 % over `dbt run` run directly | +2 % | met |" in text
    assert "| -1 % |" not in text
    assert "| warm per-task dbt overhead ≤ 0.5 s (median) | 0.430 s | met |" in text  # no new row replaces it
    assert "2026-11-25 17:06 UTC: 3.19 / 4.17 / 5.16; 2026-12-02 01:14 UTC: 2.55 / 3.46 / 4.83" in text
    assert "Latest run: 2026-12-02 01:14 UTC" in text
    assert keep_unmeasured(new, "", results) == new
    assert "Latest run: 2026-11-25" in keep_unmeasured(new, OLD, {"one": {}})  # no versions: the old head
