"""Issue 20 item 3 (offline): a venv cache baked read-only into an image. Tasks keep their own
state elsewhere (``VenvCache.state_dir``) and read the prepared msgpack and packages from
``<cache>/.prepared`` without writing there; the plan cache is read as is."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from manifest_dag.worker.partial_parse import PARTIAL_PARSE
from manifest_dag.worker.venv import PREPARED_DIR, VenvCache
from manifest_dag.worker.workspace import Workspace
from tests.support.own_venv import tree_listing
from tests.worker.test_workspace import SHOP, SHOP_MSGPACK, STATE

def _read_only(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, "."]:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, os.lstat(path).st_mode & ~0o222)


def _writable(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, "."]:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, os.lstat(path).st_mode | 0o200)


def test_a_read_only_cache_sends_the_state_to_the_temp_dir_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MANIFEST_DAG_STATE_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    writable = VenvCache(tmp_path / "cache")
    assert writable.state_dir == tmp_path / "cache" / ".state" and writable.state_note is None
    image = tmp_path / "image"
    image.mkdir()
    _read_only(image)  # chmod a-w: read-only even for root
    try:
        cache = VenvCache(image)
        assert cache.state_dir == tmp_path / "tmp" / f"manifest-dag-{os.getuid()}" / "state"
        assert cache.state_note is not None and f"venv cache {image} is read-only here" in cache.state_note
        monkeypatch.setenv("MANIFEST_DAG_STATE_DIR", str(tmp_path / "chosen"))
        assert VenvCache(image).state_dir == tmp_path / "chosen"
    finally:
        _writable(image)


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "shop"
    shutil.copytree(SHOP, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb"))
    return project


def test_a_task_places_the_prepared_msgpack_and_links_the_prepared_packages_without_writing_there(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    image = tmp_path / "image"
    prepared = image / PREPARED_DIR
    # what `manifest-dag prepare` leaves: a parse's msgpack and `dbt deps` output in a state tree
    with Workspace(project, cache_root=prepared, state=STATE, log=lambda s: None) as ws:
        key = ws._state_key()
        ws.install_deps(lambda where: (where / "dbt_packages" / "pkg").mkdir(parents=True))
        deps_key = ws.deps_key()
    kept = prepared / "partial_parse" / key / PARTIAL_PARSE
    kept.parent.mkdir(parents=True)
    shutil.copyfile(SHOP_MSGPACK, kept)
    shutil.rmtree(prepared / "workspaces")
    _read_only(image)
    before = tree_listing(image)
    try:
        for n in range(2):  # a fresh file system each time: a pod per task
            lines: list[str] = []
            with Workspace(
                project, cache_root=tmp_path / f"pod{n}" / "state", state=STATE, prepared_root=prepared, log=lines.append
            ) as ws:
                assert (ws.target / PARTIAL_PARSE).is_file()
                assert ws.placed is not None and ws.placed.label == f"the prepared copy {kept}"
                ws.install_deps(lambda where: pytest.fail("dbt deps ran although the packages were prepared"))
                assert os.readlink(ws.project / "dbt_packages") == str(prepared / "deps" / deps_key / "dbt_packages")
                ws.keep_partial_parse()
            assert any(line.startswith(f"partial parse: reusing the prepared copy {kept}") for line in lines), lines
            assert any("dbt deps: using the packages prepared in" in line for line in lines), lines
        assert tree_listing(image) == before
    finally:
        _writable(image)


def test_a_read_only_venv_is_used_without_its_last_used_stamp_and_python_writes_no_bytecode(tmp_path: Path) -> None:
    from manifest_dag.worker.venv_layout import MARKER_NAME, write_marker
    from manifest_dag.worker.venv_key import FORMAT, venv_key
    from manifest_dag.core.specs import VenvSpec
    import sys

    spec = VenvSpec(requirements=("dbt-core",), verify_command=())
    key = venv_key(spec)
    venv = tmp_path / "cache" / key
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "pyvenv.cfg").write_text(f"home = {Path(sys.executable).parent}\n")
    write_marker(venv, {"format": FORMAT, "key": key})
    assert (venv / MARKER_NAME).is_file()
    cache = VenvCache(tmp_path / "cache")
    assert "PYTHONDONTWRITEBYTECODE" not in cache.ensure(spec).environ({})
    (venv / ".last-used").unlink()
    _read_only(tmp_path / "cache")
    before = tree_listing(tmp_path / "cache")
    try:
        got = cache.ensure(spec)
        assert got.environ({})["PYTHONDONTWRITEBYTECODE"] == "1"
        assert tree_listing(tmp_path / "cache") == before
    finally:
        _writable(tmp_path / "cache")


def test_a_read_only_plan_cache_is_read_as_is(tmp_path: Path) -> None:
    from manifest_dag.core.config import RenderConfig
    from manifest_dag.scheduler.plan_cache import cached_plan
    from manifest_dag.scheduler.project import plan_project
    from tests.conftest import JAFFLE

    plans = tmp_path / "plans"
    render = RenderConfig()
    builds: list[int] = []

    def build():  # type: ignore[no-untyped-def]
        builds.append(1)
        planned = plan_project(JAFFLE, render)
        return planned.manifest, planned.plan

    import manifest_dag.scheduler.plan_cache as pc

    pc._memo.clear()  # another test of this process may have planned it
    cached_plan(JAFFLE, render, build, cache_dir=plans)
    assert builds == [1]

    pc._memo.clear()
    _read_only(plans)
    before = tree_listing(plans)
    try:
        _, source = cached_plan(JAFFLE, render, build, cache_dir=plans)
        assert source == "disk" and builds == [1]
        assert tree_listing(plans) == before
    finally:
        _writable(plans)
