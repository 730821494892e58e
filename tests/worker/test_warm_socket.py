"""Issue 19 item 14: a warm pool under a deep venv cache still gets a Unix socket it can bind."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from manifest_dag.worker.warm import SOCKET_PATH_MAX, WarmInvoker, WarmSettings, socket_path


def _deep(tmp_path: Path) -> Path:
    pool = tmp_path / ("v" * 60) / ".state" / "warm" / ("k" * 40)
    pool.mkdir(parents=True)
    assert len(os.fsencode(pool / "0.sock")) > SOCKET_PATH_MAX
    return pool


def _assert_binds_in_a_private_folder(chosen: Path) -> None:
    assert len(os.fsencode(chosen)) <= SOCKET_PATH_MAX
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(chosen))
    chosen.unlink()
    assert stat.S_IMODE(chosen.parent.stat().st_mode) == 0o700


def test_the_long_path_cannot_be_bound_and_the_chosen_one_can(tmp_path: Path) -> None:
    pool = _deep(tmp_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock, pytest.raises(OSError):
        sock.bind(str(pool / "0.sock"))  # what every warm start ran into before
    chosen = socket_path(pool, 0)
    _assert_binds_in_a_private_folder(chosen)


def test_the_short_path_is_the_same_for_every_task_and_differs_per_pool(tmp_path: Path) -> None:
    pool = _deep(tmp_path)
    other = pool.parent / ("j" * 40)
    other.mkdir()
    assert socket_path(pool, 1) == socket_path(pool, 1)
    assert socket_path(pool, 0).parent == socket_path(pool, 1).parent
    assert socket_path(pool, 0).parent != socket_path(other, 0).parent


def test_a_pool_with_a_short_path_keeps_its_sockets_beside_its_locks(tmp_path: Path) -> None:
    assert socket_path(tmp_path, 3) == tmp_path / "3.sock"


def test_the_worker_is_told_once(tmp_path: Path) -> None:
    pool = _deep(tmp_path)
    lines: list[str] = []
    invoker = WarmInvoker(Path("/no/python"), {}, pool, WarmSettings(processes=2), lines.append)
    for slot in (0, 1, 0):
        assert len(os.fsencode(invoker._paths(slot)[1])) <= SOCKET_PATH_MAX
    told = [line for line in lines if "longer than a Unix socket path" in line]
    assert len(told) == 1, lines


def test_a_deep_temp_dir_too_still_gives_a_socket_that_binds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod's TMPDIR can be deep as well (seen in the pod-per-task test: every warm start failed
    at bind, and the task ran cold); the socket then goes under /tmp, still in a 0700 folder."""
    pool = _deep(tmp_path)
    deep_tmp = tmp_path / ("t" * 80)
    deep_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(deep_tmp))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    chosen = socket_path(pool, 0)
    _assert_binds_in_a_private_folder(chosen)
    chosen.parent.rmdir()
