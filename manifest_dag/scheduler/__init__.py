"""The scheduler side: manifest → graph → selection → plan → Airflow tasks.

This is what the DAG processor runs every few seconds. It never imports the worker side or dbt
(the import contract in ``pyproject.toml`` fails the build if it does), and the manifest, graph,
selection and plan layers import no Airflow either, so they are testable and usable offline.
"""
