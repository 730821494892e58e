"""``manifest-dag check``: what CI runs before deploying, load, select, plan and render a real DAG.

Each step prints one ``ok`` line; any problem ends the command with a message naming it (exit 2).
Unlike ``inspect`` it imports Airflow and networkx: it renders the DAG the scheduler would.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from manifest_dag.cli.output import out
from manifest_dag.cli.selection_args import render_config
from manifest_dag.core.errors import CliError, ManifestDagError

if TYPE_CHECKING:
    from manifest_dag.scheduler.dag import DbtDag
    from manifest_dag.scheduler.graph import DbtGraph
    from manifest_dag.scheduler.manifest import Manifest


def _ok(step: str, text: str) -> None:
    out(f"ok  {step:<9}  {text}")


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    from manifest_dag.core.config import ProjectConfig, VenvConfig
    from manifest_dag.scheduler.graph import DbtGraph
    from manifest_dag.scheduler.manifest import load_manifest
    from manifest_dag.scheduler.project import selected_by

    manifest = load_manifest(args.manifest)
    _ok(
        "manifest",
        f"{manifest.path}: schema v{manifest.schema_version}, dbt {manifest.dbt_version}, "
        f"{len(manifest.nodes)} nodes, project {manifest.project_name!r}",
    )
    graph = DbtGraph(manifest)
    _ok("graph", f"{graph.graph.number_of_edges()} dependencies, no cycle")
    rc = render_config(args)
    selected = selected_by(rc, manifest, graph)
    _ok("select", f"{len(selected)} nodes")
    _check_runnable(manifest, graph, selected)
    if args.py_requirements:
        venv_config = VenvConfig(py_requirements=args.py_requirements)
    elif manifest.dbt_version and manifest.dbt_version != "unknown":
        venv_config = VenvConfig.for_manifest(manifest.dbt_version, manifest.adapter_type)
    else:
        raise CliError(
            f"{manifest.path}: the manifest does not record its dbt version, so a DbtDag without "
            "venv_config would fail; give the requirements your DAG uses with --py-requirements"
        )
    from manifest_dag.scheduler.dag import DbtDag

    try:
        dag = DbtDag(
            dag_id=args.dag_id,
            schedule=None,
            project_config=ProjectConfig(manifest_path=args.manifest, plan_cache_dir=False),
            venv_config=venv_config,
            render_config=rc,
        )
        plan = dag.dbt_plan
    except ManifestDagError:
        raise
    except Exception as exc:  # an Airflow error while creating tasks: report it like ours
        raise CliError(f"rendering the DAG failed: {type(exc).__name__}: {exc}") from exc
    _ok("plan", f"{len(plan.tasks)} tasks in {len(plan.groups)} task groups")
    if len(dag.task_dict) != len(plan.tasks):
        raise CliError(f"the plan has {len(plan.tasks)} tasks but the DAG got {len(dag.task_dict)}")
    _check_acyclic(dag)
    edges = sum(len(t.downstream_task_ids) for t in dag.tasks)
    _ok("render", f"DAG {dag.dag_id!r}: {len(dag.task_dict)} tasks, {edges} edges, acyclic")
    _ok("venv", f"workers will build: {', '.join(venv_config.py_requirements)}")
    out(f"check passed in {time.monotonic() - started:.1f} s")
    return 0


def _check_runnable(manifest: Manifest, graph: DbtGraph, selected: frozenset[str]) -> None:
    """Fail on a node of a resource type no task can run, that the selection needs."""
    from manifest_dag.scheduler.plan import unrunnable_nodes

    bad = unrunnable_nodes(graph, selected)
    if not bad:
        return
    shown = "; ".join(f"{n.unique_id} (resource type {n.resource_type!r})" for n in bad[:10])
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    raise CliError(
        f"{manifest.path}: cannot run {shown}{more}: manifest-dag knows no command for this resource "
        f"type (the manifest was written by dbt {manifest.dbt_version}), and the selected nodes are or "
        "read it, so the DAG would not do what `dbt build` does. Exclude it (and what reads it) "
        "from the selection, or use a manifest-dag release that supports it."
    )


def _check_acyclic(dag: DbtDag) -> None:
    import networkx as nx

    g = nx.DiGraph()
    for task in dag.tasks:
        g.add_node(task.task_id)
        g.add_edges_from((task.task_id, d) for d in task.downstream_task_ids)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return
    raise CliError("the rendered DAG has a cycle: " + " → ".join(a for a, _ in cycle) + f" → {cycle[0][0]}")
