"""From one DAG run's task durations and dbt's ``run_results.json`` to the figures the worker
report shows: per-task dbt overhead, medians and percentiles.

A task's *dbt overhead* is what it spent on anything but running its nodes' SQL: its duration
minus the nodes' ``execution_time``. The same figures come from a ``dag.test()`` run and from a
run through a real scheduler, so both cases summarize here. Pure: tested offline.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping


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
    ran = {
        tid: t for tid, t in tasks.items() if t.get("duration") is not None and t.get("state") in ("success", "failed")
    }
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
