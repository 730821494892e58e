"""What both benchmark entry points share at run time: where their files go, the progress log,
the environment of the processes they measure, and the results file each keeps.

Every case runs in a fresh process; the parent only starts them, so that what it imports or
allocates never shows in a measured figure.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BENCH = REPO / ".bench"  # git-ignored: results, caches, venvs, DAG folders
CHILDREN = HERE / "children"  # scripts run by path, in another process (and maybe another venv)
PY = sys.executable

#: never carried into a measured process: `make` exports the first for the tests (not a real
#: deployment); without bytecode every process would compile Airflow from source; a parsing
#: context left over would scope the DAG file load
DROPPED = (
    "AIRFLOW__CORE__UNIT_TEST_MODE",
    "PYTHONDONTWRITEBYTECODE",
    "_AIRFLOW_PARSING_CONTEXT_DAG_ID",
    "_AIRFLOW_PARSING_CONTEXT_TASK_ID",
)


def log(msg: str) -> None:
    """Progress, on stderr (stdout carries the tables)."""
    print(msg, file=sys.stderr, flush=True)


def process_env(drop: Iterable[str] = (), **values: str) -> dict[str, str]:
    """This process's environment for a measured child: without ``DROPPED`` and ``drop``, with
    Airflow's examples off, the repository importable, then ``values``."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED and k not in set(drop)}
    env.update(AIRFLOW__CORE__LOAD_EXAMPLES="False", PYTHONPATH=str(REPO))
    env.update(values)
    return env


def load_results(path: Path) -> dict:
    """Everything measured so far (a slice run adds to it or replaces its rows)."""
    return json.loads(path.read_text()) if path.exists() else {}


def save_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=True))
