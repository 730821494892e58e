"""Pruning the worker's state tree (issue 19 item 16): slots, kept msgpacks, deps copies, warm pools.

Folders are made where the worker makes them (a real ``Workspace`` for the slots, the real
``warm_pool_dir`` and ``default_invoker`` mark for pools) and marked as the worker marks them; their
age is set through the mark's mtime.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from filelock import FileLock

from manifest_dag.worker.invokers import warm_pool_dir
from manifest_dag.worker.partial_parse import ParseState
from manifest_dag.worker.state_marks import MARK, mark_source
from manifest_dag.worker.state_prune import prune_state
from manifest_dag.worker.venv_key import FORMAT
from manifest_dag.worker.venv_layout import write_marker
from manifest_dag.worker.workspace import Workspace

STATE = ParseState(dbt_version="1.11.16", profile_name="shop", target_name="dev", vars_json="")
DAY = 86400.0


def project(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: shop\nprofile: shop\n")
    (root / "models" / "a.sql").write_text("select 1\n")
    return root


class Tree:
    """A venv cache whose state tree holds, for each project, all four kinds of folder."""

    def __init__(self, tmp_path: Path) -> None:
        self.cache = tmp_path / "cache"
        self.state = self.cache / ".state"
        venv = self.cache / "venvkey0000000000"  # the venv the pools belong to, built just now
        venv.mkdir(parents=True)
        write_marker(venv, {"format": FORMAT, "key": venv.name, "created": datetime.now(timezone.utc).isoformat()})
        (venv / ".last-used").touch()

    def add(self, source: Path, name: str) -> dict[str, Path]:
        with Workspace(source, cache_root=self.state, state=STATE, log=lambda s: None) as ws:
            assert ws.slot is not None
            slots = ws.slot.parent
        mark_source(slots, source)  # the workspace marks it too; here the test does not depend on it
        folders = {"workspaces": slots}
        for kind in ("partial_parse", "deps"):
            folder = self.state / kind / f"{name}-{kind}"
            folder.mkdir(parents=True)
            (folder / "payload").write_bytes(b"x" * 1000)
            mark_source(folder, source)
            folders[kind] = folder
        (self.state / "deps" / f"{name}-deps.lock").touch()
        pool = warm_pool_dir(self.cache, "venvkey0000000000", source)
        pool.mkdir(parents=True)
        (pool / "0.lock").touch()
        mark_source(pool, source)
        folders["warm"] = pool
        return folders

    def age(self, folders: dict[str, Path], days: float) -> None:
        when = time.time() - days * DAY
        for folder in folders.values():
            os.utime(folder / MARK, (when, when))


def test_a_gone_project_loses_all_its_folders_a_present_recent_one_keeps_them(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    release = project(tmp_path / "releases" / "v1")
    current = project(tmp_path / "releases" / "v2")
    old = tree.add(release, "v1")
    new = tree.add(current, "v2")
    shutil.rmtree(release)  # the release folder behind the symlink was deleted
    result = prune_state(tree.state, 30)
    assert sorted(f.kind for f in result.removed) == ["deps", "partial_parse", "warm", "workspaces"]
    assert all("is gone" in f.why and f.source == release.resolve() for f in result.removed)
    assert not any(p.exists() for p in old.values())
    assert all(p.is_dir() for p in new.values()) and result.kept == 4 and not result.busy
    assert not list((tree.state / "workspaces").glob(".pruning-*"))


def test_an_old_project_goes_only_past_the_age_given(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    folders = tree.add(project(tmp_path / "p"), "p")
    tree.age(folders, 40)
    assert prune_state(tree.state, 60).removed == []
    result = prune_state(tree.state, 30)
    assert len(result.removed) == 4 and all(f.why.startswith("last used 40.0 days ago") for f in result.removed)
    assert not any(p.exists() for p in folders.values())


def test_dry_run_removes_nothing_and_lists_sizes(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    source = project(tmp_path / "p")
    folders = tree.add(source, "p")
    shutil.rmtree(source)
    result = prune_state(tree.state, 30, dry_run=True)
    assert len(result.removed) == 4 and all(p.exists() for p in folders.values())
    sizes = {f.kind: f.size_bytes for f in result.removed}
    assert sizes["partial_parse"] >= 1000 and sizes["deps"] >= 1000 and sizes["workspaces"] > 0


def test_a_held_slot_lock_keeps_the_folder_and_its_projects_msgpacks_and_says_so(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    source = project(tmp_path / "p")
    folders = tree.add(source, "p")
    shutil.rmtree(source)
    lock = FileLock(str(folders["workspaces"] / "0.lock"))  # a running task holds slot 0
    deps_lock = FileLock(str(tree.state / "deps" / "p-deps.lock"))  # and is running dbt deps
    lock.acquire(timeout=0)
    deps_lock.acquire(timeout=0)
    try:
        result = prune_state(tree.state, 30)
    finally:
        lock.release()
        deps_lock.release()
    busy = {f.kind: f.why for f in result.busy}
    assert busy == {
        "workspaces": "in use (0.lock is held)",
        "deps": "in use (p-deps.lock is held)",
        "partial_parse": "a task of its project is running",
    }
    assert [f.kind for f in result.removed] == ["warm"]
    assert folders["workspaces"].is_dir() and folders["deps"].is_dir() and folders["partial_parse"].is_dir()


def test_a_folder_without_mark_is_judged_by_its_mtime(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    legacy = tree.state / "partial_parse" / "legacy"
    legacy.mkdir(parents=True)
    (legacy / "partial_parse.msgpack").write_bytes(b"\x80")
    assert prune_state(tree.state, 1).removed == []
    when = time.time() - 10 * DAY
    os.utime(legacy / "partial_parse.msgpack", (when, when))
    os.utime(legacy, (when, when))
    (removed,) = prune_state(tree.state, 1).removed
    assert removed.path == legacy and removed.source is None and not legacy.exists()


def test_a_removed_pool_has_its_processes_stopped_and_a_pool_of_a_gone_venv_goes(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    source = project(tmp_path / "p")
    folders = tree.add(source, "p")
    tree.age(folders, 40)
    server = subprocess.Popen(  # noqa: S603 - looks like a warm server to _is_our_server
        [sys.executable, "-c", "import time; time.sleep(120)", "dbt_server.py"], start_new_session=True
    )
    try:
        (folders["warm"] / "0.pid").write_text(str(server.pid))
        result = prune_state(tree.state, 30)
        assert "warm" in {f.kind for f in result.removed}
        assert server.wait(timeout=10) != 0  # killed
    finally:
        if server.poll() is None:
            server.kill()
    orphan = warm_pool_dir(tree.cache, "nolongerthere000", source)
    orphan.mkdir(parents=True)
    mark_source(orphan, source)
    (removed,) = prune_state(tree.state, 30).removed
    assert removed.path == orphan and removed.why == "its venv is no longer in the cache"


def test_the_invoker_marks_the_warm_pool_it_uses(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from manifest_dag.worker.invokers import default_invoker
    from manifest_dag.worker.state_marks import read_source

    source = project(tmp_path / "p")
    cache = SimpleNamespace(root=tmp_path / "cache", state_dir=tmp_path / "cache" / ".state")
    venv = SimpleNamespace(key="venvkey0000000000", python=Path(sys.executable), environ=lambda: {})
    default_invoker(venv, cache, 2, lambda s: None, project_dir=source)  # type: ignore[arg-type]
    pool = warm_pool_dir(cache.root, venv.key, source)
    assert read_source(pool) == source.resolve()
    assert oct(pool.stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize("days", [30.0])
def test_a_removal_that_died_half_way_is_finished(tmp_path: Path, days: float) -> None:
    tree = Tree(tmp_path)
    aside = tree.state / "deps" / ".pruning-abc-1234"
    (aside / "sub").mkdir(parents=True)
    prune_state(tree.state, days)
    assert not aside.exists()
