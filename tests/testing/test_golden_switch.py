"""The update-golden switch works from each place it can be set: the plugin's module, the package, the env."""

from __future__ import annotations

from pathlib import Path

import pytest

import manifest_dag.testing as testing
from manifest_dag.testing import golden


@pytest.fixture(autouse=True)
def _switch_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANIFEST_DAG_UPDATE_GOLDEN", raising=False)
    monkeypatch.setattr(golden, "UPDATE_GOLDEN", False)


def test_off_compares_and_fails_on_a_difference(tmp_path: Path) -> None:
    target = tmp_path / "shape.txt"
    target.write_text("old\n")
    with pytest.raises(AssertionError):
        testing.assert_matches_golden("new\n", target)
    assert target.read_text() == "old\n"


def test_set_on_the_package_rewrites(tmp_path: Path) -> None:
    target = tmp_path / "shape.txt"
    target.write_text("old\n")
    testing.UPDATE_GOLDEN = True  # the switch's home before the package was split
    try:
        testing.assert_matches_golden("new\n", target)
    finally:
        del testing.UPDATE_GOLDEN  # back to the live value of testing.golden
    assert target.read_text() == "new\n"


def test_set_by_the_plugin_module_or_the_env_rewrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "shape.txt"
    target.write_text("old\n")
    monkeypatch.setattr(golden, "UPDATE_GOLDEN", True)
    testing.assert_matches_golden("one\n", target)
    assert target.read_text() == "one\n"
    monkeypatch.setattr(golden, "UPDATE_GOLDEN", False)
    monkeypatch.setenv("MANIFEST_DAG_UPDATE_GOLDEN", "1")
    testing.assert_matches_golden("two\n", target)
    assert target.read_text() == "two\n"
    assert testing.UPDATE_GOLDEN is False  # the package shows the plugin module's live value
