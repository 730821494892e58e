"""``manifest-dag inspect``: what a manifest holds and which tasks a DAG built from it gets.

The everyday command, so it stays the fastest: manifest, selection and plan only, never networkx
or Airflow (``tests/cli/test_import_light.py`` checks it in a fresh interpreter).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from manifest_dag.cli.output import out, table
from manifest_dag.cli.selection_args import describe, plan, render_config
from manifest_dag.core.config import SourceRendering, TestBehavior

if TYPE_CHECKING:
    from manifest_dag.scheduler.manifest import DbtNode


def _no_task_reason(node: DbtNode, include_packages: bool, project: str) -> str:
    if node.resource_type in ("test", "unit_test"):
        return "no task (test not rendered)"
    if node.is_ephemeral:
        return "no task (ephemeral)"
    if not include_packages and node.package_name != project:
        return "no task (package node)"
    if node.resource_type == "source":
        return "no task (source)"
    return f"no task ({node.resource_type})"


def inspect_report(args: argparse.Namespace) -> dict[str, Any]:
    """Everything ``inspect`` shows, as plain data (the ``--json`` output)."""
    manifest, rc, planned, selected = plan(args)
    total = Counter(n.resource_type for n in manifest.nodes.values())
    chosen = Counter(manifest.nodes[u].resource_type for u in selected)
    task_of: dict[str, list[str]] = {}
    for t in planned.tasks:
        for u in t.node_ids:
            task_of.setdefault(u, []).append(t.task_id)
    nodes = []
    for uid in sorted(selected, key=lambda u: (manifest.nodes[u].resource_type, u)):
        node = manifest.nodes[uid]
        nodes.append(
            {
                "unique_id": uid,
                "resource_type": node.resource_type,
                "path": node.original_file_path,
                "tasks": task_of.get(uid, []),
                "note": "" if uid in task_of else _no_task_reason(node, rc.include_packages, manifest.project_name),
            }
        )
    return {
        "manifest": str(manifest.path),
        "project": manifest.project_name,
        "dbt_version": manifest.dbt_version,
        "schema_version": manifest.schema_version,
        "adapter_type": manifest.adapter_type,
        "render_config": {
            "select": list(rc.select),
            "exclude": list(rc.exclude),
            "selector": rc.selector,
            "test_behavior": TestBehavior(rc.test_behavior).value,
            "source_rendering": SourceRendering(rc.source_rendering).value,
            "indirect_selection": rc.indirect_selection,
            "include_packages": rc.include_packages,
        },
        "counts": {rt: {"total": total[rt], "selected": chosen.get(rt, 0)} for rt in sorted(total)},
        "selected": nodes,
        "groups": [{"group_id": g.group_id, "node_id": g.node_id, "parent_id": g.parent_id} for g in planned.groups],
        "tasks": [
            {
                "task_id": t.task_id,
                "group_id": t.group_id,
                "command": t.command,
                "dbt_args": t.dbt_args(),
                "upstream": list(t.upstream),
                "node_ids": list(t.node_ids),
            }
            for t in planned.tasks
        ],
    }


def run(args: argparse.Namespace) -> int:
    report = inspect_report(args)
    if args.json:
        out(json.dumps(report, indent=2))
        return 0
    rc = report["render_config"]
    parts = [
        f"manifest   {report['manifest']}",
        f"project    {report['project']} (dbt {report['dbt_version']}, manifest schema v{report['schema_version']}, "
        f"adapter {report['adapter_type'] or 'unknown'})",
        f"selection  {describe(render_config(args))}; test behaviour {rc['test_behavior']}",
        "",
        "Nodes by resource type:",
        table(
            [(rt, c["total"], c["selected"]) for rt, c in report["counts"].items()]
            + [("total", sum(c["total"] for c in report["counts"].values()), len(report["selected"]))],
            ("resource type", "in manifest", "selected"),
        ),
        "",
        f"Selected nodes ({len(report['selected'])}):",
        table(
            [(n["unique_id"], n["resource_type"], ", ".join(n["tasks"]) or n["note"]) for n in report["selected"]],
            ("node", "type", "task"),
        ),
        "",
        f"Tasks ({len(report['tasks'])}) in {len(report['groups'])} task groups, in dependency order:",
        table(
            [(t["task_id"], "dbt " + " ".join(t["dbt_args"]), ", ".join(t["upstream"])) for t in report["tasks"]],
            ("task", "command", "after"),
        ),
    ]
    out("\n".join(parts))
    return 0
