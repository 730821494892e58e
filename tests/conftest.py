"""Shared test setup: where the real manifests are, and an Airflow home that is the test's own."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Airflow reads its config at import: point it at a throwaway home before any test imports it.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="manifest-dag-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
# plans are cached on disk between DAG builds: keep the tests' cache their own
os.environ.setdefault("MANIFEST_DAG_PLAN_CACHE", tempfile.mkdtemp(prefix="manifest-dag-plans-"))

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "manifests"
FIXTURES = REPO / "fixtures"

#: dbt-core 1.5 → 1.12: the schema versions we support.
VERSION_MANIFESTS = sorted(
    p for p in (SHARED / "versions").glob("manifest_dbt-*.json") if not p.name.startswith("manifest_dbt-1.4.")
)
LARGE_MANIFESTS = sorted((SHARED / "large").glob("**/manifest*.json.gz"))
OWN_MANIFESTS = sorted((FIXTURES / "manifests").glob("*/manifest.json"))
JAFFLE = SHARED / "jaffle_shop_duckdb" / "manifest.json"

ALL_MANIFESTS = [JAFFLE, *VERSION_MANIFESTS, *LARGE_MANIFESTS, *OWN_MANIFESTS]


def manifest_id(path: Path) -> str:
    try:
        return str(path.relative_to(SHARED))
    except ValueError:
        return str(path.relative_to(REPO))


@pytest.fixture(scope="session")
def shared_manifests() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the tests read real manifests from ../shared beside the repo")
    return SHARED


@pytest.fixture(scope="session", autouse=True)
def _stop_warm_dbt_processes(request: pytest.FixtureRequest):
    """Warm dbt processes outlive the tasks that start them by design; not the test session.

    Only sessions that ran end-to-end tests stop them (a quick unit-test session alongside must
    not kill the processes another session is using).
    """
    yield
    if not any(item.get_closest_marker("e2e") for item in request.session.items):
        return
    from manifest_dag.worker.warm import stop_pools

    stop_pools(REPO / ".cache" / "e2e-venvs" / ".state")
