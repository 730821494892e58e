#!/bin/sh
# A throwaway Airflow 3 deployment on this machine: PostgreSQL (metadata DB and dbt warehouse),
# scheduler (LocalExecutor, parallelism 4), dag-processor and api-server, on the DAG files of
# DAGS_DIR. Ctrl-C stops everything it started. See docs/how-to/real-scheduler.md.
#   scripts/scheduler_env.sh [DAGS_DIR]
set -e
cd "$(dirname "$0")/.."
exec .venv/bin/python -m tests.support.scheduler_env "$@"
