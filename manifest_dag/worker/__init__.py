"""The worker side: the venv that holds dbt, the project workspace, profiles, dbt processes.

Runs inside an Airflow task (``DbtVenvOperator.execute``) and in the CLI's venv commands. It
imports no scheduler module and no dbt: dbt lives only in the venvs it builds, reached through
subprocesses (``in_venv/`` holds the one script that runs inside such a venv).
"""

from collections.abc import Callable

#: where the worker's modules write what a person reads: the task log, the CLI's output
Log = Callable[[str], None]
