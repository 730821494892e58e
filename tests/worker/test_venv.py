"""Tests for manifest_dag.worker.venv: key rules (fast) and real venv builds with tiny requirements.

Real builds use ``six`` (no scripts) or ``wheel`` (one console script, so shebangs get exercised)
and a verify command that needs no dbt. Processes started here are killed in ``finally`` blocks.
The single ``e2e`` test builds a real dbt venv.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from filelock import FileLock

import manifest_dag.worker.venv as venv_mod
import manifest_dag.worker.venv_install as install_mod
import manifest_dag.worker.venv_key as key_mod
from manifest_dag.core.errors import ConfigError, VenvError
from manifest_dag.worker.venv import (
    LAST_USED_NAME,
    MARKER_NAME,
    Venv,
    VenvCache,
    VenvSpec,
    default_cache_dir,
    mask_secrets,
    normalise_requirements,
    venv_key,
)

PKG_BIN = Path(sys.executable).parent  # the package venv's bin: has uv
SIX = VenvSpec(("six",), verify_command=("python", "-c", "import six"))
WHEEL = VenvSpec(("wheel",), verify_command=("wheel", "version"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """uv on PATH (as on a worker), and nothing ever written to the real ~/.cache."""
    monkeypatch.setenv("PATH", f"{PKG_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("MANIFEST_DAG_VENV_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture
def lines() -> list[str]:
    return []


@pytest.fixture
def cache(tmp_path: Path, lines: list[str]) -> VenvCache:
    return VenvCache(tmp_path / "cache", log=lines.append)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def _kill(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def _gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie awaiting its reaper counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())


def _entries(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()} if root.exists() else set()


# --------------------------------------------------------------------------------------------
# fast unit tests: normalisation, keys, masking, config


def test_normalise_requirements_canonical_sorted_dedup() -> None:
    got = normalise_requirements(["six", "DBT_Core >= 1.11 ,<2", " dbt-core<2,>=1.11", "Six", "Foo.Bar[B,a]==1"])
    assert got == ("dbt-core<2,>=1.11", "foo-bar[a,b]==1", "six")
    assert normalise_requirements(reversed(got)) == got
    assert normalise_requirements("six") == ("six",)
    assert normalise_requirements(['pywin32; sys_platform == "win32"']) == ('pywin32; sys_platform == "win32"',)


@pytest.mark.parametrize("bad", ["dbt-core===", "-e .", "--index-url=https://x", "", "dbt core"])
def test_normalise_requirements_invalid_names_the_requirement(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        normalise_requirements(["six", bad])
    assert repr(bad) in str(err.value)


def test_key_is_stable_short_and_spelling_insensitive() -> None:
    a = VenvSpec(("dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"))
    b = VenvSpec(("DBT_duckdb ~= 1.11.0", "dbt-core~=1.11.0", "dbt-core ~=1.11.0"))
    assert venv_key(a) == venv_key(b)
    assert len(venv_key(a)) == 16 and int(venv_key(a), 16) >= 0
    # Same key in a fresh process (no hash randomisation, nothing process-specific).
    code = "from manifest_dag.worker.venv import *; print(venv_key(VenvSpec(('dbt-core~=1.11.0','dbt-duckdb~=1.11.0'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == venv_key(a)


@pytest.mark.parametrize(
    "change",
    [
        {"requirements": ("six", "packaging")},
        {"requirements": ("six==1.16",)},
        {"index_url": "https://mirror.example/simple"},
        {"extra_index_urls": ("https://extra.example/simple",)},
        {"find_links": ("/opt/wheelhouse",)},
        {"system_site_packages": True},
        {"pip_args": ("--no-binary", ":all:")},
    ],
    ids=lambda c: next(iter(c)),
)
def test_option_changes_change_the_key(change: dict[str, object]) -> None:
    assert venv_key(dataclasses.replace(SIX, **change)) != venv_key(SIX)


def test_verify_command_and_index_password_do_not_change_the_key() -> None:
    assert venv_key(dataclasses.replace(SIX, verify_command=("dbt", "--version"))) == venv_key(SIX)
    one = dataclasses.replace(SIX, index_url="https://bot:old-secret@pypi.example/simple")
    two = dataclasses.replace(SIX, index_url="https://bot:new-secret@pypi.example/simple")
    assert venv_key(one) == venv_key(two) != venv_key(SIX)


def test_interpreter_version_is_in_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same interpreter by path or by default gives the same key: version, not path, counts.
    assert venv_key(dataclasses.replace(SIX, python=sys.executable)) == venv_key(SIX)
    real = key_mod.resolve_interpreter(None)
    before = venv_key(SIX)
    monkeypatch.setattr(key_mod, "resolve_interpreter", lambda python: dataclasses.replace(real, version="3.99.0"))
    assert venv_key(SIX) != before


def test_missing_python_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="python3.99-nope"):
        venv_key(dataclasses.replace(SIX, python="python3.99-nope"))


def test_constraints_content_is_in_the_key(tmp_path: Path) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("six==1.17.0\n")
    second.write_text("six==1.17.0\n")
    k1 = venv_key(dataclasses.replace(SIX, constraints=str(first)))
    assert k1 != venv_key(SIX)
    assert venv_key(dataclasses.replace(SIX, constraints=str(second))) == k1  # content, not path
    first.write_text("six==1.16.0\n")
    assert venv_key(dataclasses.replace(SIX, constraints=str(first))) != k1
    with pytest.raises(ConfigError, match="missing.txt"):
        venv_key(dataclasses.replace(SIX, constraints=str(tmp_path / "missing.txt")))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:hunter2@pypi.example/simple", "https://user:****@pypi.example/simple"),
        ("--index-url=https://tok3n@host/simple x", "--index-url=https://****@host/simple x"),
        ("see http://a:p%40ss@h:8080/s and https://b:c@d/e", "see http://a:****@h:8080/s and https://b:****@d/e"),
        ("git+https://u:p@@github.com/x.git", "git+https://u:****@github.com/x.git"),
        ("https://pypi.org/simple user@example.com", "https://pypi.org/simple user@example.com"),
    ],
)
def test_mask_secrets(text: str, expected: str) -> None:
    assert mask_secrets(text) == expected


def test_spec_coerces_sequences_masks_repr_and_rejects_bad_types() -> None:
    spec = VenvSpec(["six"], index_url="https://u:hunter2@h/simple", pip_args=["--pre"])  # type: ignore[arg-type]
    assert spec.requirements == ("six",) and spec.pip_args == ("--pre",)
    assert "hunter2" not in repr(spec) and "u:****@h" in repr(spec)
    hash(spec)
    with pytest.raises(ConfigError, match="VenvSpec.requirements"):
        VenvSpec("dbt-core")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="VenvSpec.system_site_packages"):
        VenvSpec(("six",), system_site_packages="yes")  # type: ignore[arg-type]


def test_default_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("MANIFEST_DAG_VENV_CACHE", "AIRFLOW__MANIFEST_DAG__VENV_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "manifest-dag" / "venvs"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "manifest-dag" / "venvs"
    monkeypatch.setenv("AIRFLOW__MANIFEST_DAG__VENV_CACHE_DIR", str(tmp_path / "airflow"))
    assert default_cache_dir() == tmp_path / "airflow"
    monkeypatch.setenv("MANIFEST_DAG_VENV_CACHE", "")  # empty counts as unset
    assert default_cache_dir() == tmp_path / "airflow"
    monkeypatch.setenv("MANIFEST_DAG_VENV_CACHE", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    assert VenvCache().root == tmp_path / "explicit"


def test_install_error_names_failing_requirement_and_hints_dbt_pin() -> None:
    output = [
        "Resolved 60 packages in 730ms",
        "   Building dbt-core-experimental-parser==2.0.8",
        "error: Failed to build `dbt-core-experimental-parser==2.0.8`",
        "  RuntimeError: failed to download https://github.com/dbt-labs/dbt/releases/download/v2.0.8/x.whl",
        "hint: `dbt-core-experimental-parser` (v2.0.8) was included because `dbt-core` (v1.12.6) depends on it",
    ]
    msg = VenvCache(log=lambda _: None)._install_error("uv", ("dbt-core", "dbt-duckdb", "six"), 1, output, False)
    assert "Failing requirement(s): dbt-core\n" in msg
    assert "pin `dbt-core~=1.11.0`" in msg
    assert "failed to download" in msg


def test_module_imports_no_airflow_dbt_or_virtualenv() -> None:
    code = (
        "import sys, manifest_dag.worker.venv\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'dbt', 'virtualenv'))\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------------------------
# real builds


def test_cold_build_then_fast_path(cache: VenvCache, lines: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    venv = cache.ensure(WHEEL)
    assert venv.built and venv.path == cache.root / venv_key(WHEEL)
    assert venv.python == venv.path / "bin" / "python" and venv.bin_dir == venv.path / "bin"
    log = "\n".join(lines)
    assert "creating venv" in log
    assert "installing 1 requirement with uv: wheel" in log
    assert "verifying: wheel version → wheel " in log
    assert "ready in" in log
    marker = json.loads((venv.path / MARKER_NAME).read_text())
    assert marker["key"] == venv.key and marker["requirements"] == ["wheel"]
    assert marker["python"]["version"] == "%d.%d.%d" % sys.version_info[:3]
    assert marker["verify"]["output"].startswith("wheel ")
    # The console script's shebang points at the venv's python, where the venv still is.
    script = venv.executable("wheel")
    assert script.read_text().splitlines()[0] == f"#!{venv.python}"
    assert subprocess.run([str(script), "version"], capture_output=True, env=venv.environ()).returncode == 0
    with pytest.raises(VenvError, match="no executable 'dbt'"):
        venv.executable("dbt")

    # Fast path: no lock, no subprocess, no virtualenv; only the last-used stamp moves.
    stamp = venv.path / LAST_USED_NAME
    os.utime(stamp, (1_000_000, 1_000_000))

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("fast path must not start processes or take the lock")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(subprocess, "run", forbidden)
    monkeypatch.setattr(venv_mod, "FileLock", forbidden)
    lines.clear()
    again = cache.ensure(dataclasses.replace(WHEEL, requirements=(" Wheel",)))
    assert again == dataclasses.replace(venv, built=False)
    assert lines == []
    assert stamp.stat().st_mtime > 1_000_000 + 86400


def test_pip_fallback_when_no_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    monkeypatch.setattr(install_mod, "find_uv", lambda: None)
    venv = VenvCache(tmp_path / "cache", log=lines.append).ensure(SIX)
    assert venv.built
    assert any("installing 1 requirement with pip: six" in line for line in lines)
    assert json.loads((venv.path / MARKER_NAME).read_text())["installer"] == "pip"


# Child processes load manifest_dag.worker.venv without running the package __init__ (which pulls in the
# scheduler-side modules and networkx: ~1.5 s per process on a small box, times six). What is
# tested is this module's cross-process behaviour, not the package's import time.
_CHILD_PRELUDE = f"""
import sys, types
_pkg = types.ModuleType("manifest_dag")
_pkg.__path__ = [{str(Path(venv_mod.__file__).parents[1])!r}]
sys.modules["manifest_dag"] = _pkg
"""

_CONCURRENT_CHILD = _CHILD_PRELUDE + textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    from pathlib import Path
    from manifest_dag.worker.venv import VenvCache, VenvSpec

    root, run_dir, ident = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    lines = []
    cache = VenvCache(root, log=lines.append)
    spec = VenvSpec(("six",), verify_command=("python", "-c", "import six"))
    (run_dir / f"ready-{ident}").touch()
    while not (run_dir / "go").exists():
        time.sleep(0.005)
    venv = cache.ensure(spec)
    ok = subprocess.run([str(venv.python), "-c", "import six"]).returncode == 0
    (run_dir / f"out-{ident}.json").write_text(
        json.dumps({"built": venv.built, "path": str(venv.path), "ok": ok, "log": lines})
    )
    """
)


def test_six_processes_one_build(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(_CONCURRENT_CHILD)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    root = tmp_path / "cache"
    procs = [
        subprocess.Popen([sys.executable, str(script), str(root), str(run_dir), str(i)], env=_child_env())
        for i in range(6)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(run_dir.glob("ready-*"))) < 6:
            assert time.monotonic() < deadline, "children did not start"
            assert all(p.poll() is None for p in procs), "a child died before the barrier"
            time.sleep(0.01)
        (run_dir / "go").touch()  # all six call ensure on the same cold key at once
        for proc in procs:
            assert proc.wait(timeout=120) == 0
    finally:
        for proc in procs:
            _kill(proc)
    results = [json.loads((run_dir / f"out-{i}.json").read_text()) for i in range(6)]
    assert sum(r["built"] for r in results) == 1
    assert all(r["ok"] for r in results)
    assert len({r["path"] for r in results}) == 1
    creations = [line for r in results for line in r["log"] if line.startswith("creating venv")]
    assert len(creations) == 1
    others = [r for r in results if not r["built"]]
    assert all(not any(line.startswith("creating venv") for line in r["log"]) for r in others)
    # They really raced: at least one found the build in progress, waited, then reused it.
    assert any(any("built by another process meanwhile" in line for line in r["log"]) for r in others)
    assert _entries(root) == {Path(results[0]["path"]).name, f"{Path(results[0]['path']).name}.lock"}


_KILLED_CHILD = _CHILD_PRELUDE + textwrap.dedent(
    """
    import sys
    from manifest_dag.worker.venv import VenvCache, VenvSpec

    class StallAfterInstall(VenvCache):
        # Install for real, then report the installer's pid and hang inside the install step.
        def _install_argv(self, spec, reqs, path, uv):
            name, argv = super()._install_argv(spec, reqs, path, uv)
            script = '"$@" && echo $$ > "$READY.tmp" && mv "$READY.tmp" "$READY" && exec sleep 120'
            return name, ["sh", "-c", script, "sh", *argv]

    StallAfterInstall(sys.argv[1], log=print).ensure(
        VenvSpec(("six",), verify_command=("python", "-c", "import six"))
    )
    """
)


def test_sigkill_mid_build_leaves_nothing_trusted(tmp_path: Path, cache: VenvCache, lines: list[str]) -> None:
    script = tmp_path / "child.py"
    script.write_text(_KILLED_CHILD)
    ready = tmp_path / "installer.pid"
    env = {**_child_env(), "READY": str(ready)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(cache.root)], env=env, stdout=subprocess.DEVNULL
    )
    installer_pid = None
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "build did not reach the install step"
            time.sleep(0.01)
        installer_pid = int(ready.read_text())
        path = cache.root / venv_key(SIX)
        assert list(path.glob("lib/python*/site-packages/six.py")), "six should be installed by now"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        # The installer died with its parent (PR_SET_PDEATHSIG): nothing keeps writing there.
        deadline = time.monotonic() + 10
        while not _gone(installer_pid):
            assert time.monotonic() < deadline, "orphaned installer still running"
            time.sleep(0.02)
    finally:
        _kill(proc)
        if installer_pid is not None and not _gone(installer_pid):
            os.kill(installer_pid, signal.SIGKILL)

    assert path.is_dir() and not (path / MARKER_NAME).exists()  # half-built, never trusted
    assert cache._problem(path, path.name, SIX.verify_command) is not None
    venv = cache.ensure(SIX)
    assert venv.built  # rebuilt, not reused, and without waiting on a dead process's lock
    assert any("is broken (no marker" in line for line in lines)
    assert subprocess.run([str(venv.python), "-c", "import six"]).returncode == 0
    assert _entries(cache.root) == {venv.key, f"{venv.key}.lock"}


def _delete_verify_exe(venv: Venv) -> None:
    (venv.bin_dir / "wheel").unlink()


def _delete_python(venv: Venv) -> None:
    (venv.bin_dir / "python").unlink()


def _dangling_python(venv: Venv) -> None:
    (venv.bin_dir / "python").unlink()
    (venv.bin_dir / "python").symlink_to("/nonexistent/bin/python3")


def _break_home(venv: Venv) -> None:
    cfg = venv.path / "pyvenv.cfg"
    text = "\n".join(
        "home = /nonexistent/bin" if line.startswith("home") else line for line in cfg.read_text().splitlines()
    )
    cfg.write_text(text + "\n")


def _delete_marker(venv: Venv) -> None:
    (venv.path / MARKER_NAME).unlink()


def _corrupt_marker(venv: Venv) -> None:
    (venv.path / MARKER_NAME).write_text('{"format": 1, "key": "trunc')


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        (_delete_verify_exe, "bin/wheel is missing"),
        (_delete_python, "bin/python is missing"),
        (_dangling_python, "bin/python points at a missing interpreter"),
        (_break_home, "pyvenv.cfg home '/nonexistent/bin' no longer exists"),
        (_delete_marker, "no marker"),
        (_corrupt_marker, "no marker"),
    ],
    ids=["deleted-exe", "deleted-python", "dangling-python", "pyvenv-home", "no-marker", "bad-marker"],
)
def test_broken_venv_is_rebuilt(cache: VenvCache, lines: list[str], breakage, reason: str) -> None:  # type: ignore[no-untyped-def]
    first = cache.ensure(WHEEL)
    breakage(first)
    lines.clear()
    again = cache.ensure(WHEEL)
    assert again.built and again.path == first.path
    assert any("is broken" in line and reason in line for line in lines), lines
    assert subprocess.run([str(again.executable("wheel")), "version"], capture_output=True).returncode == 0
    assert cache.ensure(WHEEL).built is False
    assert _entries(cache.root) == {first.key, f"{first.key}.lock"}  # the broken copy is gone


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_bad_requirement_raises_and_leaves_nothing(tmp_path: Path, installer: str) -> None:
    lines: list[str] = []
    cache = VenvCache(tmp_path / "cache", log=lines.append, installer=installer)  # type: ignore[arg-type]
    spec = dataclasses.replace(SIX, requirements=("six", "dbt-nonexistent==9"))
    with pytest.raises(VenvError) as err:
        cache.ensure(spec)
    msg = str(err.value)
    assert "Failing requirement(s): dbt-nonexistent==9\n" in msg
    expected = "No matching distribution found for dbt-nonexistent==9" if installer == "pip" else "dbt-nonexistent"
    assert expected in msg.split("Installer output (last lines):")[1]
    assert not (cache.root / venv_key(spec)).exists()
    assert {p for p in _entries(cache.root) if not p.endswith(".lock")} == set()
    assert cache.list() == []


def test_failed_verify_raises_and_leaves_nothing(cache: VenvCache) -> None:
    spec = dataclasses.replace(SIX, verify_command=("python", "-c", "import dbt"))
    with pytest.raises(VenvError, match=r"check `python -c 'import dbt'` failed \(exit code 1\)"):
        cache.ensure(spec)
    assert not (cache.root / venv_key(spec)).exists()


def test_secrets_never_reach_logs_or_errors(
    cache: VenvCache, lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # the index is a closed port: fail at once
    spec = dataclasses.replace(
        SIX,
        requirements=("dbt-nonexistent-pkg==1",),
        index_url="http://deploy:hunter2@127.0.0.1:9/simple",
        pip_args=("--extra-index-url=http://deploy:hunter2@127.0.0.1:9/extra",),
    )
    with pytest.raises(VenvError) as err:
        cache.ensure(spec)
    assert lines and "hunter2" not in "\n".join(lines)
    assert "hunter2" not in str(err.value)
    assert "deploy:****@127.0.0.1" in "\n".join(lines)


def test_list_and_prune(cache: VenvCache, lines: list[str]) -> None:
    old = cache.ensure(SIX)
    fresh = cache.ensure(WHEEL)
    held = cache.ensure(dataclasses.replace(SIX, requirements=("six", "wheel")))
    ten_days_ago = time.time() - 10 * 86400
    for venv in (old, held):
        os.utime(venv.path / LAST_USED_NAME, (ten_days_ago, ten_days_ago))
    half_built = cache.root / "0123456789abcdef"
    (half_built / "bin").mkdir(parents=True)
    stale_build = cache.root / ".build-fedcba9876543210-1a2b3c4d"
    stale_build.mkdir()
    trash = cache.root / f".trash-{old.key}-deadbeef"
    trash.mkdir()

    infos = {info.key: info for info in cache.list()}
    assert set(infos) == {old.key, fresh.key, held.key, half_built.name}
    assert infos[old.key].healthy and infos[old.key].requirements == ("six",)
    assert infos[old.key].size_bytes > 10_000
    assert infos[old.key].last_used is not None and infos[old.key].created is not None
    assert infos[old.key].last_used < infos[old.key].created  # type: ignore[operator]
    assert not infos[half_built.name].healthy and "no marker" in (infos[half_built.name].problem or "")

    expected = {old.path, half_built, stale_build, trash}
    with FileLock(str(cache.root / f"{held.key}.lock")):  # being rebuilt right now: must be skipped
        assert set(cache.prune(7, dry_run=True)) == expected
        assert all(p.exists() for p in expected)
        assert set(cache.prune(7)) == expected
    assert not any(p.exists() for p in expected)
    assert fresh.path.exists() and held.path.exists()
    assert any("skipping" in line and held.key in line for line in lines)
    assert set(cache.prune(7)) == {held.path}
    assert cache.ensure(WHEEL).built is False
    assert cache.ensure(SIX).built is True
    with pytest.raises(ConfigError):
        cache.prune(-1)


def test_lock_is_not_held_after_ensure(cache: VenvCache) -> None:
    venv = cache.ensure(SIX)
    lock = FileLock(str(cache.root / f"{venv.key}.lock"))
    lock.acquire(timeout=0)  # would raise Timeout if ensure kept it (e.g. while dbt runs)
    lock.release()


# --------------------------------------------------------------------------------------------
# end to end


@pytest.mark.e2e
def test_e2e_real_dbt_venv(tmp_path: Path) -> None:
    lines: list[str] = []
    spec = VenvSpec(("dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"))
    venv = VenvCache(tmp_path / "cache", log=lines.append).ensure(spec)
    assert venv.built
    assert any(line.startswith("verifying: dbt --version → ") for line in lines)
    out = subprocess.run(
        [str(venv.executable("dbt")), "--version"], capture_output=True, text=True, env=venv.environ(), timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1.11." in out.stdout and "duckdb" in out.stdout
