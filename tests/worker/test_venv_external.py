"""A dbt brought along (``VenvConfig.existing_venv`` / ``dbt_executable_path``): checked with
errors naming the path, used as is and never written to, warm only where a Python imports it."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from manifest_dag import VenvConfig
from manifest_dag.core.errors import ConfigError, VenvError
from manifest_dag.worker.invokers import SubprocessInvoker, default_invoker
from manifest_dag.worker.state_prune import prune_state
from manifest_dag.worker.venv import VenvCache
from manifest_dag.worker.venv_external import KEY_PREFIX, external_dbt
from manifest_dag.worker.warm import FallbackInvoker
from tests.support.own_venv import tree_listing


def _script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_venv(root: Path, *, compiled: bool = False) -> Path:
    """A venv's shape: pyvenv.cfg, bin/python (our interpreter), bin/dbt, dbt-core's install record."""
    (root / "bin").mkdir(parents=True)
    (root / "pyvenv.cfg").write_text(f"home = {Path(sys.executable).parent}\n")
    (root / "bin" / "python").symlink_to(sys.executable)
    _script(root / "bin" / "dbt", f"#!{root / 'bin' / 'python'}\nprint('dbt')\n")
    site = root / "lib" / "python3.11" / "site-packages"
    (site / "dbt_core-1.11.2.dist-info").mkdir(parents=True)
    (site / "dbt_core-1.11.2.dist-info" / "RECORD").write_text("")
    (site / "dbt").mkdir()
    if compiled:
        (site / "dbt" / "__pycache__").mkdir()
        (site / "dbt" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"x")
    return root


# -- the config, checked on the scheduler -----------------------------------------------------------
def test_config_takes_a_venv_or_an_executable_instead_of_requirements() -> None:
    cfg = VenvConfig(existing_venv="/opt/dbt-venv")
    assert cfg.py_requirements == ()
    spec = cfg.to_spec()
    assert spec.existing_venv == "/opt/dbt-venv" and spec.external == "/opt/dbt-venv"
    assert "existing_venv='/opt/dbt-venv'" in repr(spec)
    assert VenvConfig(dbt_executable_path=Path("/usr/local/bin/dbt")).to_spec().dbt_executable == "/usr/local/bin/dbt"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "VenvConfig.py_requirements: must name at least dbt-core and an adapter (or give existing_venv"),
        ({"existing_venv": "relative/venv"}, "VenvConfig.existing_venv: must be an absolute path"),
        ({"dbt_executable_path": "s3://bucket/dbt"}, "VenvConfig.dbt_executable_path: must be a local file path"),
        ({"existing_venv": "/a", "dbt_executable_path": "/b/dbt"}, "give existing_venv or dbt_executable_path, not both"),
        ({"existing_venv": "/a", "py_requirements": ["dbt-core"]}, "VenvConfig.py_requirements: give py_requirements"),
        ({"existing_venv": "/a", "index_url": "https://pypi.example/simple"}, "VenvConfig.index_url: only shapes"),
        ({"dbt_executable_path": "/a/dbt", "pip_args": ["--no-deps"]}, "VenvConfig.pip_args: only shapes"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        VenvConfig(**kwargs)
    assert message in str(err.value)


# -- the worker's checks, naming the path -------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "nowhere", "VenvConfig.existing_venv {p}/nowhere is not a folder on this worker"),
        (lambda p: (p / "plain").mkdir() or p / "plain", "VenvConfig.existing_venv {p}/plain is not a virtualenv"),
    ],
)
def test_a_missing_or_plain_folder_is_refused_naming_it(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(VenvError) as err:
        VenvCache(tmp_path / "cache").ensure(VenvConfig(existing_venv=str(path)).to_spec())
    assert message.format(p=tmp_path) in str(err.value)


def test_a_venv_without_dbt_is_refused_naming_the_file(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path / "venv")
    (venv / "bin" / "dbt").unlink()
    with pytest.raises(VenvError) as err:
        VenvCache(tmp_path / "cache").ensure(VenvConfig(existing_venv=str(venv)).to_spec())
    assert f"{venv} has no dbt ({venv}/bin/dbt is missing or not executable)" in str(err.value)


def test_an_executable_that_is_missing_or_not_executable_is_refused(tmp_path: Path) -> None:
    cache = VenvCache(tmp_path / "cache")
    with pytest.raises(VenvError, match=f"dbt_executable_path {tmp_path}/dbt does not exist"):
        cache.ensure(VenvConfig(dbt_executable_path=str(tmp_path / "dbt")).to_spec())
    (tmp_path / "dbt").write_text("#!/bin/sh\n")
    with pytest.raises(VenvError, match=f"dbt_executable_path {tmp_path}/dbt is not an executable file"):
        cache.ensure(VenvConfig(dbt_executable_path=str(tmp_path / "dbt")).to_spec())


# -- used as is, never written ------------------------------------------------------------------------
def test_an_existing_venv_is_used_without_a_write_and_python_keeps_out(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path / "venv")
    before = tree_listing(venv)
    cache = VenvCache(tmp_path / "cache")
    got = cache.ensure(VenvConfig(existing_venv=str(venv)).to_spec())
    assert got.external and not got.built and got.key.startswith(KEY_PREFIX) and len(got.key) == 16
    assert got.python == venv / "bin" / "python"
    assert got.executable("dbt") == venv / "bin" / "dbt"
    env = got.environ({"PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep)[0] == str(venv / "bin") and env["VIRTUAL_ENV"] == str(venv)
    # no bytecode in the venv: Python's cache goes to the worker's state, not beside its sources
    assert env["PYTHONPYCACHEPREFIX"] == str(cache.state_dir / "pycache" / got.key)
    assert (cache.state_dir / "pycache" / got.key).is_dir()
    assert tree_listing(venv) == before
    assert not (tmp_path / "cache" / got.key).exists()  # nothing of it in the venv cache


def test_a_compiled_venv_reads_its_bytecode_and_writes_none(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path / "venv", compiled=True)
    got = VenvCache(tmp_path / "cache").ensure(VenvConfig(existing_venv=str(venv)).to_spec())
    env = got.environ({})
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and "PYTHONPYCACHEPREFIX" not in env


def test_the_key_follows_the_path_and_an_upgrade_in_place(tmp_path: Path) -> None:
    a = fake_venv(tmp_path / "a")
    b = fake_venv(tmp_path / "b")
    key_a = external_dbt(VenvConfig(existing_venv=str(a)).to_spec()).key
    assert key_a == external_dbt(VenvConfig(existing_venv=str(a)).to_spec()).key
    assert key_a != external_dbt(VenvConfig(existing_venv=str(b)).to_spec()).key
    site = a / "lib" / "python3.11" / "site-packages"
    (site / "dbt_core-1.11.2.dist-info").rename(site / "dbt_core-1.11.3.dist-info")  # upgraded in place
    assert external_dbt(VenvConfig(existing_venv=str(a)).to_spec()).key != key_a


def test_a_venvs_dbt_given_as_executable_is_that_venv(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path / "venv")
    ext = external_dbt(VenvConfig(dbt_executable_path=str(venv / "bin" / "dbt")).to_spec())
    assert (ext.path, ext.python, ext.is_venv) == (venv, venv / "bin" / "python", True)


def test_a_system_dbt_script_runs_warm_with_the_python_its_shebang_names(tmp_path: Path) -> None:
    dbt = _script(tmp_path / "bin" / "dbt", f"#!{sys.executable}\nprint('dbt')\n")
    got = VenvCache(tmp_path / "cache").ensure(VenvConfig(dbt_executable_path=str(dbt)).to_spec())
    assert got.python == Path(sys.executable) and not got.is_venv
    env = got.environ({"PATH": "/usr/bin", "VIRTUAL_ENV": "/elsewhere"})
    assert "VIRTUAL_ENV" not in env and env["PATH"].startswith(str(dbt.parent) + os.pathsep)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # not a venv: never compile into someone's install
    env_script = _script(tmp_path / "bin2" / "dbt", "#!/usr/bin/env python3\nprint('dbt')\n")
    assert external_dbt(VenvConfig(dbt_executable_path=str(env_script)).to_spec()).python is not None


def test_a_non_python_dbt_runs_cold_and_says_so_once(tmp_path: Path) -> None:
    """dbt Fusion's binary (here a compiled program's first bytes) or a shell wrapper: no Python
    imports it, so the warm server cannot; the task runs it as a fresh process, logged once."""
    elf = tmp_path / "fusion" / "dbt"
    elf.parent.mkdir()
    elf.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(64))
    elf.chmod(elf.stat().st_mode | stat.S_IXUSR)
    wrapper = _script(tmp_path / "wrap" / "dbt", "#!/bin/sh\nexec /opt/dbt/bin/dbt \"$@\"\n")
    cache = VenvCache(tmp_path / "cache")
    for dbt, why in ((elf, "it is not a Python script"), (wrapper, "it is a /bin/sh script, not a Python one")):
        venv = cache.ensure(VenvConfig(dbt_executable_path=str(dbt)).to_spec())
        assert venv.python is None and venv.executable("dbt") == dbt
        lines: list[str] = []
        for _ in range(2):
            invoker = default_invoker(venv, cache, 2, lines.append, project_dir=tmp_path)
            assert isinstance(invoker, SubprocessInvoker)
        assert len(lines) == 1, lines
        assert f"warm dbt: off for {dbt}: {why}" in lines[0] and "fresh process" in lines[0]


def test_a_python_venv_brought_along_gets_the_warm_path(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path / "venv")
    cache = VenvCache(tmp_path / "cache")
    got = cache.ensure(VenvConfig(existing_venv=str(venv)).to_spec())
    invoker = default_invoker(got, cache, 2, print, project_dir=tmp_path)
    assert isinstance(invoker, FallbackInvoker)
    assert invoker.warm.python == venv / "bin" / "python"
    assert invoker.warm.pool_dir.parent == cache.state_dir / "warm"
    assert invoker.warm.server_env["PYTHONPYCACHEPREFIX"].startswith(str(cache.state_dir))


def test_prune_keeps_the_warm_pool_of_a_dbt_brought_along(tmp_path: Path) -> None:
    """A warm pool is pruned when its venv left the cache; a brought-along dbt never was in it."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: p\n")
    venv = fake_venv(tmp_path / "venv")
    cache = VenvCache(tmp_path / "cache")
    got = cache.ensure(VenvConfig(existing_venv=str(venv)).to_spec())
    invoker = default_invoker(got, cache, 2, print, project_dir=project)
    assert isinstance(invoker, FallbackInvoker)
    result = prune_state(cache.state_dir, 30, dry_run=True, venv_root=cache.root)
    assert invoker.warm.pool_dir not in [f.path for f in result.removed]
