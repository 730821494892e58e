"""The docs plugin's app alone: what it serves, what it refuses, the headers that sandbox the page.

Airflow's own auth check is exercised by tests/e2e/test_e2e_docs_ui.py against a real api-server;
here a dependency that allows or refuses stands in for it, so the routes' own rules are tested.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from manifest_dag.core.docs_site import META, PAGE
from manifest_dag.ui.docs_app import PAGE_POLICY, create_docs_app
from manifest_dag.ui.site_store import SiteStore


def _allow() -> None:
    return None


def _deny() -> None:
    raise HTTPException(status_code=403, detail="Forbidden")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "docs" / "shop"
    site.mkdir(parents=True)
    (site / PAGE).write_text("<html>static shop site</html>")
    (site / "index.html").write_text("<html>site</html>")
    (site / "manifest.json").write_text('{"nodes": {}}')
    (site / "catalog.json").write_text('{"nodes": {}}')
    (site / "partial_parse.msgpack").write_bytes(b"\x00secret-ish")
    (site / META).write_text(
        json.dumps({"tasks": {"orders.run": ["model.shop.orders"], "orders.test": ["test.shop.not_null_orders_id"]}})
    )
    (tmp_path / "outside.json").write_text('{"secret": 1}')
    return tmp_path / "docs"


def client(root: Path | None, authorize=_allow) -> TestClient:
    store = SiteStore(str(root)) if root is not None else None
    return TestClient(create_docs_app(store, authorize=authorize), follow_redirects=False)


def test_the_page_is_the_static_site_sandboxed(root: Path) -> None:
    got = client(root).get("/shop/")
    assert got.status_code == 200 and "static shop site" in got.text
    assert got.headers["content-type"].startswith("text/html")
    assert got.headers["content-security-policy"] == PAGE_POLICY
    assert "allow-same-origin" not in PAGE_POLICY  # the page's scripts never hold the user's session
    assert got.headers["x-content-type-options"] == "nosniff"


def test_the_folder_redirects_to_the_page(root: Path) -> None:
    got = client(root).get("/shop")
    assert got.status_code == 307 and got.headers["location"] == "shop/"


def test_data_files_are_served_as_json(root: Path) -> None:
    got = client(root).get("/shop/catalog.json")
    assert got.status_code == 200 and got.json() == {"nodes": {}}
    assert "sandbox" in got.headers["content-security-policy"]


@pytest.mark.parametrize(
    "path",
    [
        "/shop/partial_parse.msgpack",  # in the folder, but not a file of the site
        f"/shop/{META}",
        "/shop/index.html",  # dbt's non-static page fetches its data: it would run unsandboxed
        "/../outside.json",
        "/..%2Foutside.json",
        "/%2e%2e/outside.json",
        "/shop/..%2F..%2Foutside.json",
        "/shop/%2e%2e%2Foutside.json",
        "/.../catalog.json",
        "/sh*p/catalog.json",
    ],
)
def test_nothing_else_is_served(root: Path, path: str) -> None:
    c = client(root)
    c.follow_redirects = True  # the HTTP client folds "/../x" into "/x": a DAG folder without a site
    got = c.get(path)
    assert got.status_code == 404, (path, got.status_code, got.text[:200])
    assert "secret" not in got.text


def test_a_site_linked_out_of_the_root_is_not_followed(root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "catalog.json").write_text('{"elsewhere": true}')
    os.symlink(elsewhere, root / "linked")
    assert client(root).get("/linked/catalog.json").status_code == 404


def test_a_task_opens_its_models_page(root: Path) -> None:
    c = client(root)
    got = c.get("/shop/task/orders.run")
    assert got.status_code == 307 and got.headers["location"] == "../#!/model/model.shop.orders"
    assert c.get("/shop/task/orders.test").headers["location"] == "../#!/test/test.shop.not_null_orders_id"
    assert c.get("/shop/task/unknown").headers["location"] == "../"  # the site's front page


def test_a_dag_without_a_site_says_how_to_publish_one(root: Path) -> None:
    got = client(root).get("/other_dag/")
    assert got.status_code == 404 and "DocsConfig" in got.text


def test_without_a_docs_root_the_page_says_so() -> None:
    got = client(None).get("/shop/")
    assert got.status_code == 404 and "MANIFEST_DAG_DOCS_ROOT" in got.text


def test_every_route_asks_the_auth_check(root: Path) -> None:
    c = client(root, authorize=_deny)
    for path in ("/shop", "/shop/", "/shop/catalog.json", "/shop/task/orders.run"):
        assert c.get(path).status_code == 403, path


def test_object_storage_root_reads_through_objectstoragepath(root: Path) -> None:
    """A URL root goes through Airflow's ObjectStoragePath (here ``file://``, the local filesystem)."""
    c = TestClient(create_docs_app(SiteStore(f"file://{root}"), authorize=_allow), follow_redirects=False)
    got = c.get("/shop/")
    assert got.status_code == 200 and "static shop site" in got.text
    assert got.headers["content-security-policy"] == PAGE_POLICY
    assert c.get("/shop/task/orders.run").headers["location"] == "../#!/model/model.shop.orders"
    assert c.get("/nosite/").status_code == 404


def test_the_plugin_builds_its_app_only_when_asked() -> None:
    """Every process that loads the plugins folder imports the plugin (tasks too): importing it
    must not build the web app nor load Airflow's API security; the api-server's first read does."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from manifest_dag.ui.plugin import DbtDocsPlugin\n"
        "assert 'manifest_dag.ui.docs_app' not in sys.modules\n"
        "assert 'airflow.api_fastapi.core_api.security' not in sys.modules\n"
        "apps = DbtDocsPlugin.fastapi_apps\n"
        "assert apps is DbtDocsPlugin().fastapi_apps and apps[0]['url_prefix'] == '/manifest-dag-docs'\n"
        "assert 'airflow.api_fastapi.core_api.security' in sys.modules\n"
        "routes = {r.path for r in apps[0]['app'].routes}\n"
        "assert '/{dag_id}/' in routes and '/{dag_id}/task/{task_id}' in routes, routes\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
