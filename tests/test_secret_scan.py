"""The secret scanner of the real-scheduler e2e test finds what it must (it is what proves no leak)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support import secret_scan

SECRETS = {"a": "pw-0123456789abcdef", "b": "tok-fedcba9876543210"}


def test_finds_a_secret_split_across_two_chunks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(secret_scan, "CHUNK", 64)
    path = tmp_path / "big.log"
    path.write_bytes(b"x" * 55 + SECRETS["a"].encode() + b"y" * 200)  # straddles bytes 64
    result = secret_scan.scan_files([path], SECRETS)
    assert result.files == 1 and result.hits == {str(path): {"a"}}


def test_new_or_changed_files_and_names(tmp_path: Path) -> None:
    old, changed = tmp_path / "old.txt", tmp_path / "changed.txt"
    old.write_text("quiet")
    changed.write_text("quiet")
    before = secret_scan.snapshot(tmp_path)
    os.utime(changed, ns=(1, 1))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "profiles.yml").write_text(f"password: {SECRETS['b']}")
    (tmp_path / "link").symlink_to(tmp_path / "d" / "profiles.yml")  # not followed, not scanned twice
    fresh = secret_scan.new_or_changed(before, secret_scan.snapshot(tmp_path))
    assert fresh == [changed, tmp_path / "d" / "profiles.yml"]
    result = secret_scan.scan_files(fresh, SECRETS)
    assert result.hits == {str(tmp_path / "d" / "profiles.yml"): {"b"}}
    assert secret_scan.files_named(fresh, "profiles.yml") == [tmp_path / "d" / "profiles.yml"]
    assert secret_scan.scan_text("row", f"x{SECRETS['a']}y", SECRETS) == {"a"}
