"""The ``manifest-dag`` command.

Kept import-light: subcommands import what they need when they run, so ``--help`` is instant and
nothing here imports Airflow or dbt at module level. Every error manifest-dag raises on purpose
(``ManifestDagError``) ends the command with ``manifest-dag: error: <message>`` and exit code 2;
argparse's own usage errors use the same prefix and code.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from manifest_dag.core.dbt import INDIRECT_SELECTION_MODES
from manifest_dag.core.errors import CliError, ManifestDagError

PROG = "manifest-dag"


# -- shared pieces ----------------------------------------------------------------------------------
def _add_selection(p: argparse.ArgumentParser) -> None:
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


def _render_config(args: argparse.Namespace) -> Any:
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


def _plan(args: argparse.Namespace) -> tuple[Any, Any, Any, frozenset[str]]:
    """(manifest, render config, plan, selected node ids), uncached, without importing Airflow."""
    from manifest_dag.scheduler.project import plan_project

    rc = _render_config(args)
    planned = plan_project(args.manifest, rc, describe=_describe)
    return planned.manifest, rc, planned.plan, planned.selected


def _describe(rc: Any) -> str:
    parts = [f"--select {' '.join(rc.select)}"] if rc.select else []
    parts += [f"--exclude {' '.join(rc.exclude)}"] if rc.exclude else []
    parts += [f"--selector {rc.selector}"] if rc.selector else []
    return " ".join(parts) or "the default selection"


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str], indent: str = "  ") -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, r in enumerate(cells):
        lines.append(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
        if n == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


# -- inspect ----------------------------------------------------------------------------------------
def _no_task_reason(node: Any, include_packages: bool, project: str) -> str:
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
    manifest, rc, plan, selected = _plan(args)
    total = Counter(n.resource_type for n in manifest.nodes.values())
    chosen = Counter(manifest.nodes[u].resource_type for u in selected)
    task_of: dict[str, list[str]] = {}
    for t in plan.tasks:
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
            "test_behavior": rc.test_behavior.value,
            "source_rendering": rc.source_rendering.value,
            "indirect_selection": rc.indirect_selection,
            "include_packages": rc.include_packages,
        },
        "counts": {rt: {"total": total[rt], "selected": chosen.get(rt, 0)} for rt in sorted(total)},
        "selected": nodes,
        "groups": [{"group_id": g.group_id, "node_id": g.node_id} for g in plan.groups],
        "tasks": [
            {
                "task_id": t.task_id,
                "group_id": t.group_id,
                "command": t.command,
                "dbt_args": t.dbt_args(),
                "upstream": list(t.upstream),
                "node_ids": list(t.node_ids),
            }
            for t in plan.tasks
        ],
    }


def _inspect(args: argparse.Namespace) -> int:
    report = inspect_report(args)
    if args.json:
        _out(json.dumps(report, indent=2))
        return 0
    rc = report["render_config"]
    parts = [
        f"manifest   {report['manifest']}",
        f"project    {report['project']} (dbt {report['dbt_version']}, manifest schema v{report['schema_version']}, "
        f"adapter {report['adapter_type'] or 'unknown'})",
        f"selection  {_describe(_render_config(args))}; test behaviour {rc['test_behavior']}",
        "",
        "Nodes by resource type:",
        _table(
            [(rt, c["total"], c["selected"]) for rt, c in report["counts"].items()]
            + [("total", sum(c["total"] for c in report["counts"].values()), len(report["selected"]))],
            ("resource type", "in manifest", "selected"),
        ),
        "",
        f"Selected nodes ({len(report['selected'])}):",
        _table(
            [(n["unique_id"], n["resource_type"], ", ".join(n["tasks"]) or n["note"]) for n in report["selected"]],
            ("node", "type", "task"),
        ),
        "",
        f"Tasks ({len(report['tasks'])}) in {len(report['groups'])} task groups, in dependency order:",
        _table(
            [(t["task_id"], "dbt " + " ".join(t["dbt_args"]), ", ".join(t["upstream"])) for t in report["tasks"]],
            ("task", "command", "after"),
        ),
    ]
    _out("\n".join(parts))
    return 0


# -- graph ------------------------------------------------------------------------------------------
def _graph(args: argparse.Namespace) -> int:
    from manifest_dag.cli import draw

    fmt = args.format
    if fmt is None:
        suffix = Path(args.output).suffix.lstrip(".").lower() if args.output else ""
        fmt = {"svg": "svg", "png": "png", "dot": "dot", "gv": "dot", "mmd": "mermaid", "mermaid": "mermaid"}.get(
            suffix, "svg" if args.output else "dot"
        )
    if fmt == "png" and not args.output:
        raise CliError("--format png writes binary data: give an output file with -o FILE.png")
    manifest, rc, plan, _selected = _plan(args)
    title = f"{manifest.project_name}: {len(plan.tasks)} tasks"
    pic = draw.make_picture(plan, manifest, collapse=args.collapse, depth=args.depth, title=title)
    if pic.collapsed:
        pic.title = f"{title} in {len(pic.nodes)} folders"
    data = draw.render(pic, fmt)
    if args.output and args.output != "-":
        Path(args.output).write_bytes(data)
        what = f"{len(pic.nodes)} folders" if pic.collapsed else f"{len(pic.nodes)} tasks"
        print(f"wrote {args.output} ({fmt}, {what}, {len(pic.edges)} edges)", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


# -- check ------------------------------------------------------------------------------------------
def _check(args: argparse.Namespace) -> int:
    started = time.monotonic()
    from manifest_dag.core.config import ProjectConfig, VenvConfig
    from manifest_dag.scheduler.graph import DbtGraph
    from manifest_dag.scheduler.manifest import load_manifest
    from manifest_dag.scheduler.project import selected_by

    def ok(step: str, text: str) -> None:
        _out(f"ok  {step:<9}  {text}")

    manifest = load_manifest(args.manifest)
    ok(
        "manifest",
        f"{manifest.path}: schema v{manifest.schema_version}, dbt {manifest.dbt_version}, "
        f"{len(manifest.nodes)} nodes, project {manifest.project_name!r}",
    )
    graph = DbtGraph(manifest)
    ok("graph", f"{graph.graph.number_of_edges()} dependencies, no cycle")
    rc = _render_config(args)
    selected = selected_by(rc, manifest, graph)
    ok("select", f"{len(selected)} nodes")
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
    ok("plan", f"{len(plan.tasks)} tasks in {len(plan.groups)} task groups")
    if len(dag.task_dict) != len(plan.tasks):
        raise CliError(f"the plan has {len(plan.tasks)} tasks but the DAG got {len(dag.task_dict)}")
    _check_acyclic(dag)
    edges = sum(len(t.downstream_task_ids) for t in dag.tasks)
    ok("render", f"DAG {dag.dag_id!r}: {len(dag.task_dict)} tasks, {edges} edges, acyclic")
    ok("venv", f"workers will build: {', '.join(venv_config.py_requirements)}")
    _out(f"check passed in {time.monotonic() - started:.1f} s")
    return 0


def _check_acyclic(dag: Any) -> None:
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


# -- venv -------------------------------------------------------------------------------------------
def _cache(args: argparse.Namespace, log: Any = None, config: Any = None) -> Any:
    from manifest_dag.worker.venv import VenvCache

    root = args.cache_dir
    if root is None:
        from manifest_dag.core import settings

        # the same lookup as a task: VenvConfig.cache_dir, MANIFEST_DAG_VENV_CACHE, Airflow's
        # [manifest_dag] venv_cache_dir, then ~/.cache/manifest-dag/venvs
        root = settings.venv_cache_dir(config.cache_dir if config else None, airflow_config=True)
    return VenvCache(root, log=log or (lambda line: None))


class _Progress:
    """Step-by-step progress of a venv build on stderr, each line with the elapsed time."""

    STEPS = (("creating venv", "create"), ("installing", "install"), ("verifying:", "verify"))

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.monotonic()
        self.step = 0

    def __call__(self, line: str) -> None:
        for n, (prefix, name) in enumerate(self.STEPS, start=1):
            if line.startswith(prefix) and n > self.step:
                self.step = n
                self._print(f"[{n}/3 {name}] {line}")
                return
        if not self.quiet or not line.startswith("  "):
            self._print(line)

    def _print(self, text: str) -> None:
        print(f"{time.monotonic() - self.started:6.1f}s  {text}", file=sys.stderr, flush=True)


def _configs_from_dags(path: str) -> list[Any]:
    """The distinct VenvConfigs of the dbt tasks in the DAG files at ``path`` (a file or folder)."""
    from manifest_dag.operators import DbtVenvOperator
    from manifest_dag.testing import load_dag_bag

    if not Path(path).exists():
        raise CliError(f"--dags {path}: no such file or folder")
    import logging

    # Airflow's logging setup would print every INFO line of DagBag and virtualenv on stderr,
    # between the progress lines
    for name in ("", "airflow", "virtualenv", "python_discovery"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        bag = load_dag_bag(path)
    except AssertionError as exc:
        raise CliError(f"--dags {path}: {exc}") from None
    found: dict[Any, Any] = {}
    for dag in bag.dags.values():
        for task in dag.tasks:
            if isinstance(task, DbtVenvOperator):
                cfg = task.venv_config
                found.setdefault((cfg.to_spec(), str(cfg.cache_dir or "")), cfg)
    if not found:
        raise CliError(f"--dags {path}: the DAG files there have no dbt tasks ({len(bag.dags)} DAGs loaded)")
    return list(found.values())


def _venv_build(args: argparse.Namespace) -> int:
    import dataclasses

    from manifest_dag.core.config import VenvConfig

    reqs = list(args.requirements)
    if args.manifest:
        from manifest_dag.scheduler.manifest import load_manifest

        m = load_manifest(args.manifest)
        if m.dbt_version in ("", "unknown"):
            raise CliError(f"{m.path}: the manifest does not record its dbt version; name the requirements instead")
        reqs += list(VenvConfig.for_manifest(m.dbt_version, m.adapter_type).py_requirements)
    configs = []
    if reqs:
        configs.append(
            VenvConfig(
                py_requirements=reqs,
                python=args.python,
                index_url=args.index_url,
                extra_index_urls=args.extra_index_url,
                find_links=args.find_links,
                constraints=args.constraints,
                py_system_site_packages=args.system_site_packages,
                pip_args=args.pip_arg,
                cache_dir=args.cache_dir,
            )
        )
    if args.dags:
        configs += _configs_from_dags(args.dags)
    if not configs:
        raise CliError("name the requirements (e.g. dbt-core~=1.11.0 dbt-duckdb~=1.11.0), or give --manifest or --dags")
    for config in configs:
        spec = config.to_spec()
        if args.verify is not None:
            spec = dataclasses.replace(spec, verify_command=tuple(shlex.split(args.verify)))
        progress = _Progress(args.quiet)
        cache = _cache(args, progress, config)
        progress._print(f"venv cache {cache.root}; requirements: {', '.join(spec.requirements)}")
        venv = cache.ensure(spec)
        state = f"built in {time.monotonic() - progress.started:.1f} s" if venv.built else "already built"
        _out(f"venv {venv.key} ready at {venv.path} ({state})")
    return 0


def _venv_list(args: argparse.Namespace) -> int:
    cache = _cache(args)
    infos = cache.list()
    if args.json:
        _out(
            json.dumps(
                [
                    {
                        "key": i.key,
                        "path": str(i.path),
                        "requirements": list(i.requirements),
                        "size_bytes": i.size_bytes,
                        "created": i.created.isoformat() if i.created else None,
                        "last_used": i.last_used.isoformat() if i.last_used else None,
                        "healthy": i.healthy,
                        "problem": i.problem,
                    }
                    for i in infos
                ],
                indent=2,
            )
        )
        return 0
    if not infos:
        _out(f"no venvs in {cache.root}")
        return 0
    fmt = "%Y-%m-%d %H:%M"
    rows = [
        (
            i.key,
            _size(i.size_bytes),
            i.last_used.astimezone().strftime(fmt) if i.last_used else "-",
            "ok" if i.healthy else f"broken: {i.problem}",
            " ".join(i.requirements) or "-",
        )
        for i in infos
    ]
    _out(f"venv cache {cache.root}: {len(infos)} venvs, {_size(sum(i.size_bytes for i in infos))}")
    _out(_table(rows, ("key", "size", "last used", "state", "requirements")))
    return 0


def _venv_prune(args: argparse.Namespace) -> int:
    lines: list[str] = []
    cache = _cache(args, lines.append)
    removed = cache.prune(args.older_than, dry_run=args.dry_run)
    for line in lines:
        _out(line)
    verb = "would remove" if args.dry_run else "removed"
    _out(f"{verb} {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} from {cache.root}")
    return 0


# -- demo -------------------------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    from manifest_dag.cli.demo import main as demo_main

    return demo_main()


# -- parser -----------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # same prefix and exit code as our own errors
        self.print_usage(sys.stderr)
        self.exit(2, f"{PROG}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.HelpFormatter
    parser = _Parser(
        prog=PROG,
        description="Turn a dbt manifest into an Airflow DAG; dbt runs only in worker virtualenvs.",
        epilog="Run `manifest-dag COMMAND --help` for a command's options.",
    )
    from manifest_dag import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "inspect",
        help="what a manifest holds and which tasks a DAG built from it gets",
        formatter_class=fmt,
        description="Counts by resource type, the selected nodes, and the tasks and task groups a DbtDag "
        "would create (in dependency order), as tables; --json for machines.",
    )
    _add_selection(p)
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.set_defaults(func=_inspect)

    p = sub.add_parser(
        "graph",
        help="draw the task graph (svg, png, dot, mermaid)",
        formatter_class=fmt,
        description="Draw the tasks a DbtDag would create, left to right, each model's task group as a "
        "cluster. Above 150 tasks the picture shows one box per project folder (with its task count) "
        "instead; --collapse none|folder forces either. svg and png need Graphviz's `dot`.",
    )
    _add_selection(p)
    p.add_argument(
        "-f",
        "--format",
        choices=("svg", "png", "dot", "mermaid"),
        help="default: from the -o suffix (.svg .png .dot .gv .mmd), else dot",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: standard output)")
    p.add_argument(
        "--collapse",
        default="auto",
        choices=("auto", "none", "folder"),
        help="auto (default): folders above 150 tasks; none: every task; folder: one box per folder",
    )
    p.add_argument(
        "--depth",
        type=int,
        metavar="N",
        help="folder levels kept when collapsing (default: the deepest with at most 40 boxes)",
    )
    p.set_defaults(func=_graph)

    p = sub.add_parser(
        "check",
        help="what CI runs before deploying: load, select, render; fail on any problem",
        formatter_class=fmt,
        description="Load the manifest, build the graph, select, plan, and render a real Airflow DAG "
        "from it. Exit code 0 if all went well, 2 with a message naming the problem otherwise "
        "(unsupported schema, cycle, bad or empty selection, ...).",
    )
    _add_selection(p)
    p.add_argument(
        "--py-requirements",
        nargs="+",
        metavar="REQ",
        help="the venv requirements of your DAG (default: the dbt that wrote the manifest)",
    )
    p.add_argument("--dag-id", default="manifest_dag_check", help=argparse.SUPPRESS)
    p.set_defaults(func=_check)

    venv = sub.add_parser(
        "venv",
        help="pre-build, list and prune the worker venv cache",
        description="Manage the venv cache that tasks use on this machine. The cache root is --cache-dir, "
        "else MANIFEST_DAG_VENV_CACHE, else Airflow's [manifest_dag] venv_cache_dir, else "
        "~/.cache/manifest-dag/venvs: the same lookup as a task.",
    )
    vsub = venv.add_subparsers(dest="venv_command", required=True, metavar="ACTION", parser_class=_Parser)

    def cache_arg(q: argparse.ArgumentParser) -> None:
        q.add_argument("--cache-dir", metavar="DIR", help="the venv cache root (default: as a task finds it)")

    b = vsub.add_parser(
        "build",
        help="build (or confirm) the venv for these requirements, e.g. at deploy time",
        description="Build the venv a task with these settings would use, so the first task does not "
        "wait for it. The options mirror VenvConfig; the venv's key only matches a task's when they "
        "are the same. --dags reads the settings from your DAG files instead.",
    )
    b.add_argument("requirements", nargs="*", metavar="REQ", help="VenvConfig.py_requirements")
    b.add_argument(
        "--manifest",
        metavar="MANIFEST",
        help="add the requirements DbtDag uses without venv_config (the dbt that wrote it)",
    )
    b.add_argument(
        "--dags",
        metavar="PATH",
        help="also build every distinct venv the dbt tasks of these DAG files (a file or "
        "folder) use, with their own settings: the surest way to match the tasks' keys",
    )
    b.add_argument("--python", help="VenvConfig.python")
    b.add_argument("--index-url", help="VenvConfig.index_url")
    b.add_argument("--extra-index-url", action="append", default=[], metavar="URL")
    b.add_argument("--find-links", action="append", default=[], metavar="DIR_OR_URL", help="a wheelhouse (repeatable)")
    b.add_argument("--constraints", metavar="FILE")
    b.add_argument("--system-site-packages", action="store_true")
    b.add_argument(
        "--pip-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one installer argument (repeatable; write --pip-arg=--flag)",
    )
    b.add_argument("--verify", metavar="COMMAND", help="the check run in the new venv (default: dbt --version)")
    b.add_argument("-q", "--quiet", action="store_true", help="show the steps, not the installer's output")
    cache_arg(b)
    b.set_defaults(func=_venv_build)

    ls = vsub.add_parser("list", help="cached venvs with size, last use and health")
    cache_arg(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_venv_list)

    pr = vsub.add_parser("prune", help="remove venvs unused for N days, and half-built leftovers")
    cache_arg(pr)
    pr.add_argument("--older-than", type=float, default=30.0, metavar="DAYS", help="default: 30")
    pr.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    pr.set_defaults(func=_venv_prune)

    demo = sub.add_parser("demo", help="run the bundled shop dbt project end to end on DuckDB through Airflow")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ManifestDagError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `manifest-dag inspect ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
