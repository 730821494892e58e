"""The ``manifest-dag`` command: its parser, and the dispatch to one module per command.

Kept import-light: the parser names each command's handler as ``module:function`` (a module of
``manifest_dag.cli``), imported only when that command runs, so ``--help`` is instant, nothing here
imports Airflow or dbt, and ``inspect`` loads only what it needs. Every error manifest-dag raises
on purpose (``ManifestDagError``) ends the command with ``manifest-dag: error: <message>`` and exit
code 2; argparse's own usage errors use the same prefix and code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from manifest_dag.cli.selection_args import add_selection
from manifest_dag.core.errors import ManifestDagError

PROG = "manifest-dag"
_COMMANDS = "manifest_dag.cli"  # the package the handlers' modules are in


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
    add_selection(p)
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.set_defaults(handler="inspection:run")

    p = sub.add_parser(
        "graph",
        help="draw the task graph (svg, png, dot, mermaid)",
        formatter_class=fmt,
        description="Draw the tasks a DbtDag would create, left to right, each model's task group as a "
        "cluster. Above 150 tasks the picture shows one box per project folder (with its task count) "
        "instead; --collapse none|folder forces either. svg and png need Graphviz's `dot`.",
    )
    add_selection(p)
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
    p.set_defaults(handler="graph:run")

    p = sub.add_parser(
        "check",
        help="what CI runs before deploying: load, select, render; fail on any problem",
        formatter_class=fmt,
        description="Load the manifest, build the graph, select, plan, and render a real Airflow DAG "
        "from it. Exit code 0 if all went well, 2 with a message naming the problem otherwise "
        "(unsupported schema, cycle, bad or empty selection, ...).",
    )
    add_selection(p)
    p.add_argument(
        "--py-requirements",
        nargs="+",
        metavar="REQ",
        help="the venv requirements of your DAG (default: the dbt that wrote the manifest)",
    )
    p.add_argument("--dag-id", default="manifest_dag_check", help=argparse.SUPPRESS)
    p.set_defaults(handler="check:run")

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
    b.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="NAME",
        help="with --dags: only the venvs of tasks routed to this Airflow queue (repeatable; "
        "VenvConfig.queue or the task's queue): what a worker listening on these queues runs",
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
    b.set_defaults(handler="venv_commands:build")

    ls = vsub.add_parser("list", help="cached venvs with size, last use and health")
    cache_arg(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler="venv_commands:list_cached")

    pr = vsub.add_parser(
        "prune",
        help="remove venvs unused for N days, half-built leftovers, and the state of gone or unused projects",
        description="Remove venvs unused for --older-than days and half-built leftovers; then, under "
        "<cache>/.state, the workspace slots, kept partial_parse.msgpack files, dbt deps copies and warm "
        "dbt pools of projects that are gone or unused for as long. Folders a running task holds are "
        "kept and reported.",
    )
    cache_arg(pr)
    pr.add_argument("--older-than", type=float, default=30.0, metavar="DAYS", help="default: 30")
    pr.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    pr.set_defaults(handler="venv_commands:prune")

    prep = sub.add_parser(
        "prepare",
        help="at image build time: venvs, dbt deps, parsed projects and plans for read-only use by tasks",
        description="For pod-per-task executors (Kubernetes): load the DAG files, build every venv their dbt "
        "tasks use (compiled to bytecode), run dbt deps and dbt parse once per project, profile, target, vars "
        "and environment, keeping the partial_parse.msgpack and packages under <cache>/.prepared, and write "
        "the DAGs' plans to the plan cache. Tasks then use the cache read-only (their own state goes under "
        "the temp dir, or MANIFEST_DAG_STATE_DIR). Run it as the user the tasks run as, with the environment "
        "they get (the values dbt's parse reads).",
    )
    prep.add_argument("--dags", required=True, metavar="PATH", help="the DAG files (a file or folder)")
    prep.add_argument(
        "--cache-dir", metavar="DIR", help="the venv cache root the tasks will use (default: as a task finds it)"
    )
    prep.add_argument(
        "--plan-cache",
        metavar="DIR",
        help="where the plans go (default: <cache-dir>/plans); tasks read it from MANIFEST_DAG_PLAN_CACHE",
    )
    prep.add_argument("-q", "--quiet", action="store_true", help="only the summary lines")
    prep.set_defaults(handler="prepare:run")

    pre = sub.add_parser(
        "prestart",
        help="in a pod: start the task's dbt process from the prepared image, then run the task's command",
        description="Put in front of a pod-per-task executor's command (the pod template's command:, the "
        "executor fills args:). Starts, in the background, the warm dbt process the task will use, from the "
        "image `manifest-dag prepare` made, warmed up on its prepared msgpack, then execs COMMAND: dbt's "
        "start-up overlaps Airflow's. Finds the task in Airflow 3's `--json-string` workload or `tasks run DAG "
        "TASK`. Whatever it cannot do, it says on stderr and runs COMMAND anyway. Airflow 3's workload module "
        "on this Python (`python -m airflow.sdk.execution_time.execute_workload ...`) runs in this process "
        "instead, after importing what its task process would import after the fork "
        "(MANIFEST_DAG_PRESTART_IN_PROCESS=off: exec it too).",
    )
    pre.add_argument("--cache-dir", metavar="DIR", help="the prepared venv cache (default: MANIFEST_DAG_VENV_CACHE)")
    pre.add_argument("--dag-id", help="the task's DAG (default: read from COMMAND)")
    pre.add_argument("--task-id", help="the task (default: read from COMMAND)")
    pre.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="the task's command")
    pre.set_defaults(handler="prestart:run")

    demo = sub.add_parser("demo", help="run the bundled shop dbt project end to end on DuckDB through Airflow")
    demo.set_defaults(handler="demo:run")
    return parser


def _handler(name: str) -> Callable[[argparse.Namespace], int]:
    """The function a ``module:function`` name stands for, its module imported now."""
    module, _, function = name.partition(":")
    handler: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(f"{_COMMANDS}.{module}"), function)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(_handler(args.handler)(args) or 0)
    except ManifestDagError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `manifest-dag inspect ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
