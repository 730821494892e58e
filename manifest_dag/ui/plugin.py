"""``DbtDocsPlugin``: the dbt docs of a DAG as a page of the Airflow UI (Airflow 3.1+ plugins).

Add it to the api-server with a file in Airflow's plugins folder::

    from manifest_dag.ui.plugin import DbtDocsPlugin  # noqa: F401

It mounts the docs app (``docs_app``) at ``/manifest-dag-docs`` and adds two external views: a
"dbt docs" tab on every DAG (the DAG's site) and on every task (the page of the model it runs).
A DAG without a published site shows a page that says how to publish one.

Every Airflow process that loads the plugins folder imports this module (a task too, for macros
and listeners), so the web app, FastAPI and Airflow's API security are built only when the
api-server first asks for ``fastapi_apps``.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

#: where the app is mounted on the api-server
URL_PREFIX = "/manifest-dag-docs"


class _DocsApps:
    """``fastapi_apps``, built on first read (by the api-server) and kept."""

    def __get__(self, instance: object, owner: type) -> list[dict[str, Any]]:
        apps = owner.__dict__.get("_apps")
        if apps is None:
            from manifest_dag.ui.docs_app import create_docs_app

            apps = [{"app": create_docs_app(), "url_prefix": URL_PREFIX, "name": "dbt docs (manifest-dag)"}]
            owner._apps = apps  # type: ignore[attr-defined]
        return apps


class DbtDocsPlugin(AirflowPlugin):
    """Serves each DAG's published dbt docs site and links it from the DAG's and tasks' pages."""

    name = "manifest_dag_docs"
    fastapi_apps = _DocsApps()
    external_views = [
        {
            "name": "dbt docs",
            "href": f"{URL_PREFIX.lstrip('/')}/{{DAG_ID}}/",
            "destination": "dag",
            "url_route": "dbt-docs",
        },
        {
            "name": "dbt docs",
            "href": f"{URL_PREFIX.lstrip('/')}/{{DAG_ID}}/task/{{TASK_ID}}",
            "destination": "task",
            "url_route": "dbt-docs-task",
        },
    ]
