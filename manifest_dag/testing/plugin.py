"""pytest plugin for offline tests of dbt DAGs (registered through the ``pytest11`` entry point).

Installing manifest-dag is enough; nothing to add to ``conftest.py``. It gives:

- ``no_dbt`` fixture and ``@pytest.mark.no_dbt`` marker: in the test, ``import dbt`` (and
  ``dbt.*``) raises, naming the chain of modules that tried; the fixture's ``attempts`` lists them;
- ``dag_bag`` fixture: ``dag_bag()`` loads the folder named by the ini option
  ``manifest_dag_dags_folder`` (``dag_bag("path")`` another one) the way Airflow does, with dbt
  blocked, and fails listing every file's import error in full;
- ``manifest_builder`` fixture: a :class:`~manifest_dag.testing.ManifestBuilder` that writes into
  the test's ``tmp_path``;
- ``shared_manifest`` fixture: ``shared_manifest("jaffle/manifest.json")`` loads a manifest from
  the folder named by the ini option ``manifest_dag_manifests_folder`` (or an absolute path);
- ``golden`` fixture: ``golden(text, "name.txt")`` compares with ``golden/name.txt`` beside the
  test module; ``--manifest-dag-update-golden`` rewrites the files.

This module imports neither Airflow nor dbt when pytest loads it, nor the manifest reader: each
fixture imports what it needs from the toolkit's modules when a test asks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

DAGS_FOLDER_INI = "manifest_dag_dags_folder"
MANIFESTS_FOLDER_INI = "manifest_dag_manifests_folder"
UPDATE_GOLDEN_OPTION = "--manifest-dag-update-golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("manifest-dag", "manifest-dag: offline tests of dbt DAGs")
    group.addoption(
        UPDATE_GOLDEN_OPTION,
        action="store_true",
        default=False,
        help="rewrite golden files (dag_shape tests) instead of comparing with them",
    )
    parser.addini(
        DAGS_FOLDER_INI, "folder of Airflow DAG files that the dag_bag fixture loads (relative to rootdir)", default=""
    )
    parser.addini(
        MANIFESTS_FOLDER_INI, "folder that shared_manifest(path) reads manifests from (relative to rootdir)", default=""
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "no_dbt: block `import dbt` / `dbt.*` for the test (the scheduler side must not need dbt)"
    )
    if config.getoption(UPDATE_GOLDEN_OPTION, default=False):
        from manifest_dag.testing import golden as golden_files  # where assert_matches_golden reads it

        golden_files.UPDATE_GOLDEN = True


def _ini_path(config: pytest.Config, name: str) -> Path | None:
    value = config.getini(name)
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else Path(config.rootpath) / path


@pytest.fixture
def no_dbt() -> Any:
    """Block ``import dbt`` for the test; yields the guard (``.attempts``: what tried, and from where)."""
    from manifest_dag.testing.no_dbt import block_dbt

    with block_dbt() as guard:
        yield guard


@pytest.fixture(autouse=True)
def _manifest_dag_no_dbt_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("no_dbt") is not None:
        request.getfixturevalue("no_dbt")


class DagBagLoader:
    """``dag_bag()`` / ``dag_bag(folder)``: a checked ``DagBag``, loaded once per folder per session."""

    def __init__(self, config: pytest.Config, cache: dict[Path, Any]) -> None:
        self._config = config
        self._cache = cache

    @property
    def default_folder(self) -> Path | None:
        return _ini_path(self._config, DAGS_FOLDER_INI)

    def __call__(self, folder: str | Path | None = None, *, fresh: bool = False) -> Any:
        from manifest_dag.testing.dagbag import load_dag_bag

        if folder is None:
            folder = self.default_folder
            if folder is None:
                pytest.fail(
                    f"dag_bag(): no folder given and no `{DAGS_FOLDER_INI}` ini option; set it in "
                    "pytest.ini / pyproject.toml ([tool.pytest.ini_options]) or call dag_bag('path/to/dags')",
                    pytrace=False,
                )
        folder = Path(folder)
        if not folder.is_absolute():
            folder = Path(self._config.rootpath) / folder
        folder = folder.resolve()
        if fresh or folder not in self._cache:
            try:
                self._cache[folder] = load_dag_bag(folder)
            except AssertionError as exc:
                pytest.fail(str(exc), pytrace=False)
        return self._cache[folder]


@pytest.fixture(scope="session")
def _manifest_dag_bag_cache() -> dict[Path, Any]:
    return {}


@pytest.fixture
def dag_bag(pytestconfig: pytest.Config, _manifest_dag_bag_cache: dict[Path, Any]) -> DagBagLoader:
    """Load DAG files with dbt blocked; fail listing each file's import error in full."""
    return DagBagLoader(pytestconfig, _manifest_dag_bag_cache)


@pytest.fixture
def manifest_builder(tmp_path: Path) -> Any:
    """A ManifestBuilder; ``.write()`` with no folder writes ``tmp_path/manifest.json``."""
    from manifest_dag.testing.builder import ManifestBuilder

    class _Builder(ManifestBuilder):
        def write(self, path: str | Path | None = None, name: str = "manifest.json") -> Path:
            return super().write(tmp_path if path is None else path, name)

        def load(self, path: str | Path | None = None) -> Any:
            return super().load(tmp_path if path is None else path)

    return _Builder


@pytest.fixture(scope="session")
def _manifest_dag_shared_cache() -> dict[Path, Any]:
    return {}


@pytest.fixture
def shared_manifest(pytestconfig: pytest.Config, _manifest_dag_shared_cache: dict[Path, Any]) -> Any:
    """``shared_manifest(path)``: a loaded Manifest, read in place and cached for the session."""
    from manifest_dag.scheduler.manifest import load_manifest

    base = _ini_path(pytestconfig, MANIFESTS_FOLDER_INI) or Path(pytestconfig.rootpath)

    def load(path: str | Path) -> Any:
        full = Path(path)
        if not full.is_absolute():
            full = base / full
        if full not in _manifest_dag_shared_cache:
            _manifest_dag_shared_cache[full] = load_manifest(full)
        return _manifest_dag_shared_cache[full]

    load.base = base  # type: ignore[attr-defined]
    return load


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Any:
    """``golden(text, "name.txt")``: compare with ``golden/name.txt`` beside the test module."""
    from manifest_dag.testing.golden import assert_matches_golden

    folder = Path(request.node.path).parent / "golden"

    def check(text: str, name: str) -> None:
        __tracebackhide__ = True
        try:
            assert_matches_golden(text, folder / name)
        except AssertionError as exc:
            pytest.fail(str(exc), pytrace=False)

    check.folder = folder  # type: ignore[attr-defined]
    return check
