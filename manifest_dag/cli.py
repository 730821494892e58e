"""The ``manifest-dag`` command.

Kept import-light: subcommands import what they need when they run, so ``--help`` is instant and
nothing here imports Airflow or dbt at module level.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from manifest_dag.demo import main as demo_main

    return demo_main()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="manifest-dag",
        description="Turn a dbt manifest into an Airflow DAG; dbt runs only in worker virtualenvs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the bundled shop dbt project end to end on DuckDB through Airflow")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from manifest_dag.errors import ManifestDagError

    try:
        return int(args.func(args) or 0)
    except ManifestDagError as exc:
        print(f"manifest-dag: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
