"""The docs plugin's web app: a DAG's dbt docs site, served from the api-server.

Mounted by ``DbtDocsPlugin`` at ``/manifest-dag-docs``:

- ``/<dag_id>/``: the site (dbt's one-file ``static_index.html``);
- ``/<dag_id>/task/<task_id>``: the page of the model (seed, snapshot ...) that task runs;
- ``/<dag_id>/manifest.json`` and ``/<dag_id>/catalog.json``: the data, for download.

Every route asks Airflow's auth manager whether the user may read the DAG, as the REST API does
(the UI's session cookie or a bearer token). The page runs dbt's JavaScript over text from the
manifest (descriptions are markdown), so it is served sandboxed: it runs in an origin of its own
and cannot use the user's session to call Airflow's API, and only Airflow's own pages may frame it.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from manifest_dag.core.docs_site import PAGE, SERVED, check_site_id, node_page, task_nodes
from manifest_dag.core.errors import ConfigError
from manifest_dag.ui.site_store import SiteStore

#: the site: scripts run, in an opaque origin (no ``allow-same-origin``), framed only by Airflow
PAGE_POLICY = "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox; frame-ancestors 'self'"
#: the JSON files: data, never a document that runs anything
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
_DOWNLOADS = {name for name, kind in SERVED.items() if kind == "application/json"}


def _site_id(dag_id: str) -> str:
    try:
        return check_site_id(dag_id)
    except ConfigError:
        raise HTTPException(status_code=404, detail="no such docs site") from None


def _missing(dag_id: str, why: str) -> HTMLResponse:
    body = (
        "<!doctype html><meta charset='utf-8'><title>dbt docs</title>"
        "<body style='font-family:sans-serif;margin:2em'>"
        f"<h2>No dbt docs for {html.escape(dag_id)}</h2><p>{html.escape(why)}</p></body>"
    )
    return HTMLResponse(body, status_code=404, headers={**_HEADERS, "Content-Security-Policy": DATA_POLICY})


def create_docs_app(store: SiteStore | None = None, *, authorize: Any = None) -> FastAPI:
    """The app; ``store`` defaults to the configured docs root, ``authorize`` to Airflow's DAG
    read check (a FastAPI dependency; tests of the app alone give their own)."""
    if authorize is None:
        from airflow.api_fastapi.core_api.security import requires_access_dag

        authorize = requires_access_dag(method="GET")
    store = store if store is not None else SiteStore.from_settings()
    app = FastAPI(title="manifest-dag: dbt docs", docs_url=None, redoc_url=None, openapi_url=None)
    guard = [Depends(authorize)]

    def not_configured(dag_id: str) -> HTMLResponse:
        return _missing(
            dag_id, "The api-server has no docs root: set MANIFEST_DAG_DOCS_ROOT (or [manifest_dag] docs_root)."
        )

    @app.get("/{dag_id}", dependencies=guard, include_in_schema=False)
    def site_folder(dag_id: str) -> Response:
        return RedirectResponse(f"{_site_id(dag_id)}/", status_code=307)

    @app.get("/{dag_id}/", dependencies=guard, include_in_schema=False)
    def site_page(dag_id: str) -> Response:
        site = _site_id(dag_id)
        if store is None:
            return not_configured(site)
        return _file(store, site, PAGE) or _missing(
            site,
            "No site is published for this DAG yet: add DocsConfig() to the DbtDag (or a DbtDocsOperator) "
            "and run it; the page appears once its docs task succeeded.",
        )

    @app.get("/{dag_id}/task/{task_id}", dependencies=guard, include_in_schema=False)
    def task_page(dag_id: str, task_id: str) -> Response:
        site = _site_id(dag_id)
        if store is None:
            return not_configured(site)
        page = node_page(task_nodes(store.meta(site)).get(task_id, ()))
        return RedirectResponse(f"../{page or ''}", status_code=307)

    @app.get("/{dag_id}/{name}", dependencies=guard, include_in_schema=False)
    def site_data(dag_id: str, name: str) -> Response:
        site = _site_id(dag_id)
        if name not in _DOWNLOADS:
            raise HTTPException(status_code=404, detail="not a file of the docs site")
        if store is None:
            return not_configured(site)
        found = _file(store, site, name)
        if found is None:
            raise HTTPException(status_code=404, detail=f"{name} is not published for this DAG")
        return found

    return app


def _file(store: SiteStore, site: str, name: str) -> Response | None:
    policy = PAGE_POLICY if name == PAGE else DATA_POLICY
    headers = {**_HEADERS, "Content-Security-Policy": policy}
    path = store.local_file(site, name)
    if path is not None:
        return FileResponse(path, media_type=SERVED[name], headers=headers)
    if not store.remote:
        return None
    data = store.read(site, name)
    return Response(data, media_type=SERVED[name], headers=headers) if data is not None else None
