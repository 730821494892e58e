"""Loading a DAG folder the way Airflow's DAG processor does, with dbt blocked.

A DAG file that fails to import is a DAG that silently vanishes from the scheduler. Loading the
folder in a test, with full tracebacks and ``import dbt`` refused (see
:mod:`manifest_dag.testing.no_dbt`), turns that into a failure that shows every file's error.
Airflow is imported only when a folder is loaded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from manifest_dag.testing.no_dbt import block_dbt

__all__ = ["load_dag_bag"]

#: Airflow keeps only an import error's last frames unless told otherwise
_FULL_TRACEBACKS = {
    "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACKS": "True",
    "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACK_DEPTH": "1000",
}


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def load_dag_bag(folder: str | Path, *, check: bool = True, safe_mode: bool = False) -> Any:
    """Load every DAG file under ``folder`` as Airflow's DAG processor does, with dbt blocked.

    With ``check`` (the default), fail with an ``AssertionError`` that lists each file's import
    error in full, and every import of dbt (even one the file caught). Returns the ``DagBag``.
    """
    folder = Path(folder)
    if not folder.exists():
        raise AssertionError(f"DAG folder {folder} does not exist (check manifest_dag_dags_folder or the path given)")
    from manifest_dag.core.airflow_compat import dag_bag_class

    DagBag = dag_bag_class()

    with block_dbt() as guard, _environ(_FULL_TRACEBACKS):
        bag = DagBag(dag_folder=str(folder), safe_mode=safe_mode)
    bag.dbt_import_attempts = list(guard.attempts)  # ours, on Airflow's DagBag
    if check:
        problems = []
        for path, error in sorted(bag.import_errors.items()):
            problems.append(f"--- {path}\n{str(error).rstrip()}")
        if guard.attempts and not problems:
            problems.append(
                "--- dbt was imported (and the error caught) while loading the DAG files:\n"
                + "\n".join(f"  {a}" for a in guard.attempts)
            )
        if problems:
            raise AssertionError(
                f"{len(bag.import_errors)} of the DAG files under {folder} failed to import:\n\n"
                + "\n\n".join(problems)
            )
    return bag
