"""The selection options ``inspect``, ``graph`` and ``check`` share, and the plan they lead to.

One definition of the options (as in ``RenderConfig`` and ``dbt ls``) and one way from them to a
``RenderConfig`` and a plan, so the three commands select exactly alike. Light at import: the
parser is built for every command, so the scheduler is imported only when a plan is made.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from manifest_dag.core.dbt import INDIRECT_SELECTION_MODES

if TYPE_CHECKING:
    from manifest_dag.core.config import RenderConfig
    from manifest_dag.scheduler.manifest import Manifest
    from manifest_dag.scheduler.plan import RenderPlan


def add_selection(p: argparse.ArgumentParser) -> None:
    """The ``MANIFEST`` argument and the selection option group."""
    p.add_argument("manifest", metavar="MANIFEST", help="path to manifest.json (or manifest.json.gz)")
    g = p.add_argument_group("selection (as in RenderConfig and dbt ls)")
    g.add_argument(
        "-s",
        "--select",
        action="extend",
        nargs="+",
        default=[],
        metavar="EXPR",
        help="dbt --select expressions (repeatable)",
    )
    g.add_argument(
        "--exclude",
        action="extend",
        nargs="+",
        default=[],
        metavar="EXPR",
        help="dbt --exclude expressions",
    )
    g.add_argument("--selector", metavar="NAME", help="a YAML selector stored in the manifest")
    g.add_argument(
        "--test-behavior",
        default="after_each",
        choices=("after_each", "after_all", "build", "none"),
        help="where dbt tests run (default: after_each)",
    )
    g.add_argument(
        "--source-rendering",
        default="none",
        choices=("none", "freshness"),
        help="'freshness': a source freshness task per source that defines freshness",
    )
    g.add_argument(
        "--indirect-selection",
        default="eager",
        choices=INDIRECT_SELECTION_MODES,
        help="dbt's indirect selection of tests (default: eager)",
    )
    g.add_argument(
        "--no-packages",
        dest="include_packages",
        action="store_false",
        help="give nodes of installed dbt packages no tasks (they still order the graph)",
    )


def render_config(args: argparse.Namespace) -> RenderConfig:
    """The ``RenderConfig`` the selection options describe."""
    from manifest_dag.core.config import RenderConfig

    return RenderConfig(
        select=args.select,
        exclude=args.exclude,
        selector=args.selector,
        test_behavior=args.test_behavior,
        source_rendering=args.source_rendering,
        indirect_selection=args.indirect_selection,
        include_packages=args.include_packages,
    )


def plan(args: argparse.Namespace) -> tuple[Manifest, RenderConfig, RenderPlan, frozenset[str]]:
    """(manifest, render config, plan, selected node ids), uncached, without importing Airflow."""
    from manifest_dag.scheduler.project import plan_project

    rc = render_config(args)
    planned = plan_project(args.manifest, rc, describe=describe)
    return planned.manifest, rc, planned.plan, planned.selected


def describe(rc: RenderConfig) -> str:
    """The selection in the words of the command line (``--select ... --exclude ...``)."""
    parts = [f"--select {' '.join(rc.select)}"] if rc.select else []
    parts += [f"--exclude {' '.join(rc.exclude)}"] if rc.exclude else []
    parts += [f"--selector {rc.selector}"] if rc.selector else []
    return " ".join(parts) or "the default selection"
