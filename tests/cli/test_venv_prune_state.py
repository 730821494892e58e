"""``manifest-dag venv prune`` and the state tree (issue 19 item 16): what it prints and removes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from filelock import FileLock

from tests.cli.test_cli import run
from tests.worker.test_state_prune import Tree, project


def test_prune_removes_gone_and_old_projects_state_keeps_recent_and_busy_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tree = Tree(tmp_path)
    gone_src = project(tmp_path / "releases" / "v1")
    gone = tree.add(gone_src, "v1")
    old = tree.add(project(tmp_path / "old"), "old")
    tree.age(old, 45)
    recent = tree.add(project(tmp_path / "recent"), "recent")
    busy_src = project(tmp_path / "busy")
    busy = tree.add(busy_src, "busy")
    tree.age(busy, 45)
    shutil.rmtree(gone_src)
    argv = ("venv", "prune", "--cache-dir", tree.cache, "--older-than", "30")

    code, out, _ = run(capsys, *argv, "--dry-run")
    assert code == 0
    for folder in (*gone.values(), *old.values(), *busy.values()):
        assert folder.exists()
    would = re.findall(r"^prune: would remove (\S+) \((\w+)( of \S+)?: (.*); ([\d.]+ [KMG]?B)\)$", out, re.M)
    assert {Path(p) for p, *_ in would} == {*gone.values(), *old.values(), *busy.values()}, out
    assert f"({'workspaces'} of {gone_src.resolve()}: project {gone_src.resolve()} is gone; " in out
    assert "would remove 12 entries" in out and "0 venvs, 12 state folders" in out

    lock = FileLock(str(busy["workspaces"] / "0.lock"))
    lock.acquire(timeout=0)
    try:
        code, out, _ = run(capsys, *argv)
    finally:
        lock.release()
    assert code == 0
    assert not any(p.exists() for p in (*gone.values(), *old.values())), out
    assert all(p.exists() for p in recent.values())
    assert busy["workspaces"].exists() and busy["partial_parse"].exists()
    assert (
        f"prune: busy, kept {busy['workspaces']} (workspaces of {busy_src.resolve()}: in use (0.lock is held))" in out
    )
    assert f"prune: busy, kept {busy['partial_parse']} (partial_parse of {busy_src.resolve()}: a task of its" in out
    assert re.search(
        r"^removed 10 entries from \S+: 0 venvs, 10 state folders \([\d.]+ KB\); 2 in use, kept$", out, re.M
    ), out

    code, out, _ = run(capsys, *argv)  # the task ended: its project's folders go now
    assert not busy["workspaces"].exists() and "removed 2 entries" in out
