"""``MANIFEST_DAG_*`` settings: one reading of a switch and a number, and the cache locations."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifest_dag.core import settings

NAME = "MANIFEST_DAG_TEST_SETTING"


@pytest.mark.parametrize(
    ("value", "off", "on"),
    [
        (None, False, False),
        ("", False, False),
        ("   ", False, False),
        ("0", True, False),
        ("off", True, False),
        ("OFF", True, False),
        (" false ", True, False),
        ("No", True, False),
        ("1", False, True),
        ("on", False, True),
        ("yes", False, True),
        ("true", False, True),
        ("anything", False, True),
    ],
)
def test_switches(monkeypatch: pytest.MonkeyPatch, value: str | None, off: bool, on: bool) -> None:
    if value is None:
        monkeypatch.delenv(NAME, raising=False)
    else:
        monkeypatch.setenv(NAME, value)
    assert settings.is_off(NAME) is off
    assert settings.is_on(NAME) is on


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 7.0), ("", 7.0), ("3", 3.0), (" 2.5 ", 2.5), ("0", 0.0), ("-1", -1.0), ("ten", 7.0), ("1e2", 100.0)],
)
def test_numbers_fall_back_to_the_default(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: float) -> None:
    if value is None:
        monkeypatch.delenv(NAME, raising=False)
    else:
        monkeypatch.setenv(NAME, value)
    assert settings.number(NAME, 7.0) == expected


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in (settings.VENV_CACHE, settings.AIRFLOW_VENV_CACHE, settings.PLAN_CACHE, "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_user_cache_dir(clean: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert settings.user_cache_dir("venvs") == tmp_path / "home" / ".cache" / "manifest-dag" / "venvs"
    clean.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert settings.user_cache_dir("plans") == tmp_path / "xdg" / "manifest-dag" / "plans"


def test_venv_cache_dir_precedence(clean: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert settings.venv_cache_dir() == tmp_path / "xdg" / "manifest-dag" / "venvs"
    clean.setenv(settings.AIRFLOW_VENV_CACHE, str(tmp_path / "airflow"))
    assert settings.venv_cache_dir() == tmp_path / "airflow"
    clean.setenv(settings.VENV_CACHE, str(tmp_path / "env"))
    assert settings.venv_cache_dir() == tmp_path / "env"
    assert settings.venv_cache_dir(tmp_path / "configured") == tmp_path / "configured"
    assert settings.venv_cache_dir(str(tmp_path / "configured")) == tmp_path / "configured"


def test_venv_cache_dir_reads_airflows_config_when_asked(clean: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean.setenv(settings.AIRFLOW_VENV_CACHE, str(tmp_path / "airflow"))
    assert settings.venv_cache_dir(airflow_config=True) == tmp_path / "airflow"
    clean.setenv(settings.VENV_CACHE, str(tmp_path / "env"))
    assert settings.venv_cache_dir(airflow_config=True) == tmp_path / "env"


def test_venv_cache_dir_expands_the_home_folder(clean: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean.setenv(settings.VENV_CACHE, "~/venvs")
    assert settings.venv_cache_dir() == tmp_path / "home" / "venvs"


def test_plan_cache_dir(clean: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert settings.plan_cache_dir() == tmp_path / "home" / ".cache" / "manifest-dag" / "plans"
    clean.setenv(settings.PLAN_CACHE, str(tmp_path / "plans"))
    assert settings.plan_cache_dir() == tmp_path / "plans"
    for off in ("off", "0", "False", "no"):
        clean.setenv(settings.PLAN_CACHE, off)
        assert settings.plan_cache_dir() is None, off
