"""dbt docs in the Airflow UI, end to end: real dbt, a real api-server, Debian's Chromium.

A DbtDag with ``DocsConfig()`` over a copy of the shop project runs through ``dag.test()``: a seed,
a model, then ``dbt docs generate --static`` (DuckDB, with the catalog), published under the docs
root. Then a real ``airflow api-server`` loads ``DbtDocsPlugin`` from its plugins folder, and
headless Chromium signs in, opens the DAG's "dbt docs" tab in Airflow's UI (the site in its
iframe lists the project's models) and the model task's tab (the model's own page, with the
column types the catalog read from DuckDB). Without a session, and for anything but the site's
files, the api-server says no. The screenshot of the DAG's tab is kept in docs/img/.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.airflow_run import E2E_VENV_CACHE, VENV_REQUIREMENTS, airflow_env, migrate, run_dag_test
from tests.support.browser import ensure_chromium, launch
from tests.support.scheduler_env import free_port

pytestmark = pytest.mark.e2e

SCREENSHOT = REPO / "docs" / "img" / "dbt-docs-in-airflow.png"
DAG_ID = "shop_docs"

DAG_FILE = '''
"""Airflow DAG: a slice of the shop project and its dbt docs (manifest-dag e2e test)."""
import pendulum
from manifest_dag import DbtDag, DocsConfig, ProfileConfig, ProjectConfig, RenderConfig, VenvConfig
dag = DbtDag(
    dag_id="{dag_id}",
    project_config=ProjectConfig(manifest_path="{manifest}", project_dir="{project}",
                                 env_vars={{"SHOP_DUCKDB_PATH": "{db}"}}, install_deps=True),
    profile_config=ProfileConfig(profile_name="shop", profiles_yml_path="{project}/profiles.yml"),
    venv_config=VenvConfig(py_requirements={reqs!r}, cache_dir="{cache}"),
    render_config=RenderConfig(select=["+stg_customers"], test_behavior="none"),
    docs_config=DocsConfig(),
    schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
)
'''

PLUGIN_FILE = "from manifest_dag.ui.plugin import DbtDocsPlugin  # noqa: F401\n"


def _get(url: str, cookie: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Cookie": f"_token={cookie}"} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


#: a signed-in reader (Airflow's simple auth manager, role viewer: may read DAGs)
USER, PASSWORD = "reader", "docs-ui-e2e-password"


def _token(base: str) -> str:
    req = urllib.request.Request(
        f"{base}/auth/token",
        data=json.dumps({"username": USER, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)["access_token"]


@contextlib.contextmanager
def api_server(home: Path, dags: Path, plugins: Path, docs_root: Path, log: Path):
    port = free_port()
    passwords = home / "simple_auth_passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    env = airflow_env(
        home,
        dags,
        AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:viewer",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__API_AUTH__JWT_SECRET="docs-ui-e2e-jwt-secret-0123456789abcdef",
        MANIFEST_DAG_DOCS_ROOT=str(docs_root),
    )
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=home,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def healthy(timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"api-server exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
            with contextlib.suppress(Exception):
                status, body = _get(f"{base}/api/v2/monitor/health")
                if status == 200 and json.loads(body)["metadatabase"]["status"] == "healthy":
                    return base
            if time.monotonic() > deadline:
                raise AssertionError(f"api-server not healthy after {timeout:.0f} s:\n{log.read_text()[-4000:]}")
            time.sleep(1)

    try:
        yield healthy  # started: the caller waits for it when it needs it
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)


def test_dbt_docs_page_in_the_airflow_ui(tmp_path: Path) -> None:
    ensure_chromium()
    home = tmp_path / "airflow"
    home.mkdir()
    migrate(home)
    project = tmp_path / "shop"
    shutil.copytree(
        REPO / "fixtures" / "shop", project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb")
    )
    dags, plugins, docs_root = tmp_path / "dags", tmp_path / "plugins", tmp_path / "dbt-docs"
    dags.mkdir()
    plugins.mkdir()
    (dags / "docs_dag.py").write_text(
        DAG_FILE.format(
            dag_id=DAG_ID,
            manifest=REPO / "fixtures" / "manifests" / "shop" / "manifest.json",
            project=project,
            db=tmp_path / "shop.duckdb",
            reqs=VENV_REQUIREMENTS,
            cache=E2E_VENV_CACHE,
        )
    )
    (plugins / "dbt_docs_plugin.py").write_text(PLUGIN_FILE)

    with api_server(home, dags, plugins, docs_root, tmp_path / "api-server.log") as healthy:
        run_the_dag(tmp_path, home, dags, docs_root)  # while the api-server starts
        check_ui(tmp_path, healthy())


def run_the_dag(tmp_path: Path, home: Path, dags: Path, docs_root: Path) -> None:
    """1. the DAG runs: seed, model, then the docs task publishes the site under the docs root."""
    result = run_dag_test(home, dags, DAG_ID, tmp_path / "dag_test.log", MANIFEST_DAG_DOCS_ROOT=str(docs_root))
    states = {t: r["state"] for t, r in result["tasks"].items()}
    assert states == {"raw_customers_seed": "success", "stg_customers_run": "success", "dbt_docs": "success"}, (
        states,
        (tmp_path / "dag_test.log").read_text()[-4000:],
    )
    site = docs_root / DAG_ID
    assert sorted(p.name for p in site.iterdir()) == sorted(
        ["catalog.json", "index.html", "manifest.json", "static_index.html", "manifest-dag-docs.json"]
    )
    catalog = json.loads((site / "catalog.json").read_text())
    assert "model.shop.stg_customers" in catalog["nodes"]  # dbt read the table DuckDB holds
    meta = json.loads((site / "manifest-dag-docs.json").read_text())
    assert meta["tasks"]["stg_customers_run"] == ["model.shop.stg_customers"]


def check_ui(tmp_path: Path, base: str) -> None:
    """The api-server with the plugin, and the pages in Chromium."""
    from playwright.sync_api import sync_playwright

    docs = f"{base}/manifest-dag-docs/{DAG_ID}"
    # 2. without a session, or with a forged one: Airflow's auth answers, not the site
    for cookie in (None, "not-a-jwt"):
        status, body = _get(f"{docs}/", cookie)
        assert status in (401, 403) and b"stg_customers" not in body, (status, body[:300])
    cookie = _token(base)

    with sync_playwright() as pw:
        browser = launch(pw, tmp_path / "chromium-profile", viewport={"width": 1440, "height": 900})
        try:
            # the session cookie Airflow's login sets, for a token from its /auth/token
            browser.add_cookies([{"name": "_token", "value": cookie, "url": f"{base}/"}])
            page = browser.new_page()

            # 3. the session reads the site's files, and nothing else
            status, body = _get(f"{docs}/", cookie)
            assert status == 200 and b"stg_customers" in body
            for path in ("partial_parse.msgpack", "manifest-dag-docs.json", "..%2F..%2Fairflow.cfg", "../dags"):
                assert _get(f"{docs}/{path}", cookie)[0] == 404, path
            assert _get(f"{base}/manifest-dag-docs/..%2Fairflow/", cookie)[0] == 404

            # 4. the DAG's "dbt docs" tab: the site in Airflow's iframe lists the project's models
            page.goto(f"{base}/dags/{DAG_ID}/plugin/dbt-docs", wait_until="load")
            frame = page.frame_locator("iframe[title='dbt docs']")
            frame.locator("span.filename-normal", has_text="stg_customers").first.wait_for(
                state="attached", timeout=60_000
            )
            tree = frame.locator("body").inner_text(timeout=30_000)
            assert "shop" in tree and "Projects" in tree
            # the project tree: shop > models > staging > stg_customers opens the model's page
            for name in ("shop", "models", "staging", "stg_customers"):
                frame.locator(f"span.filename-normal:visible:text-is('{name}')").first.click(timeout=30_000)
            frame.locator("text=Columns").first.wait_for(timeout=30_000)
            assert "customer_id" in frame.locator("body").inner_text()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))

            # 5. the model task's tab opens the model's page (the catalog's column types from DuckDB)
            page.goto(f"{base}/dags/{DAG_ID}/tasks/stg_customers_run/plugin/dbt-docs-task", wait_until="load")
            frame = page.frame_locator("iframe[title='dbt docs']")
            frame.locator("h1", has_text="stg_customers").first.wait_for(timeout=60_000)
            text = frame.locator("body").inner_text()
            assert "INTEGER" in text and "VARCHAR" in text, text[:2000]
        finally:
            browser.close()
