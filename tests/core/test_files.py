from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from manifest_dag.core.files import create_private, make_private_dir, replaced_atomically


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_private_dir_and_its_missing_parents_are_0700(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        made = make_private_dir(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(old)
    assert made == tmp_path / "a" / "b" / "c"
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700, 0o700, 0o700]


def test_an_existing_wider_dir_is_tightened(tmp_path: Path) -> None:
    wide = tmp_path / "state"
    wide.mkdir()
    os.chmod(wide, 0o755)
    make_private_dir(wide)
    assert mode(wide) == 0o700


def test_within_tightens_every_dir_from_the_root_down(tmp_path: Path) -> None:
    root = tmp_path / ".state"
    (root / "warm").mkdir(parents=True)
    os.chmod(root, 0o755)
    os.chmod(root / "warm", 0o777)
    make_private_dir(root / "warm" / "key", within=root)
    assert [mode(root), mode(root / "warm"), mode(root / "warm" / "key")] == [0o700, 0o700, 0o700]


def test_within_must_contain_the_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not inside"):
        make_private_dir(tmp_path / "elsewhere", within=tmp_path / "root")


def test_a_dir_owned_by_another_user_is_refused_naming_it(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to give a directory away")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    with pytest.raises(PermissionError, match=str(theirs)):
        make_private_dir(theirs)


def test_a_file_where_the_dir_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError):
        make_private_dir(tmp_path / "f")


def test_private_files_are_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with replaced_atomically(tmp_path / "a", private=True) as fh:
            fh.write(b"x")
        with create_private(tmp_path / "b") as fh:
            fh.write(b"x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a") == 0o600 and mode(tmp_path / "b") == 0o600


def test_within_creates_missing_ancestors_of_the_root_too(tmp_path: Path) -> None:
    root = tmp_path / "venvs" / ".state" / "warm"
    make_private_dir(root / "key", within=root)
    assert mode(tmp_path / "venvs") == 0o700 and mode(root / "key") == 0o700
