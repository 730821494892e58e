"""The plan cache: built once, read back from disk by content, rebuilt when anything is off.

The levels and the byte-by-byte corruption cases on the jaffle shop are in ``test_task_scope.py``;
these are the cache's promises on small builder manifests, counted by calls of the build callable.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from manifest_dag import DbtDag, ProjectConfig, RenderConfig, VenvConfig
from manifest_dag.core.naming import DbtNaming
from manifest_dag.scheduler.dag import plan_project
from manifest_dag.scheduler.plan import RenderPlan
from manifest_dag.scheduler.plan_cache import cached_plan, clear_memory, render_key
from manifest_dag.testing import ManifestBuilder


def small() -> ManifestBuilder:
    return (
        ManifestBuilder("p")
        .seed("raw")
        .model("a", refs=["raw"])
        .model("b", refs=["a"])
        .test("unique", on="b", column="id")
    )


class Counted:
    """The build callable, counting its calls."""

    def __init__(self, manifest: Path, config: RenderConfig) -> None:
        self.manifest, self.config, self.calls = manifest, config, 0

    def __call__(self) -> tuple[Any, RenderPlan]:
        self.calls += 1
        return plan_project(ProjectConfig(manifest_path=self.manifest), self.config)


@pytest.fixture(autouse=True)
def _no_memory() -> None:
    clear_memory()


def fresh(call: Callable[[], tuple[Any, str]]) -> tuple[Any, str]:
    """A call as a new process makes it: the in-process level forgotten first."""
    clear_memory()
    return call()


def test_a_second_process_reads_the_plan_from_disk(tmp_path: Path) -> None:
    path = small().write(tmp_path / "project")
    config = RenderConfig()
    build = Counted(path, config)
    first, source = cached_plan(path, config, build, cache_dir=tmp_path / "cache")
    assert (source, build.calls) == ("built", 1)
    again, source = fresh(lambda: cached_plan(path, config, build, cache_dir=tmp_path / "cache"))
    assert (source, build.calls) == ("disk", 1)
    assert again.plan == first.plan
    assert (again.dbt_version, again.adapter_type, again.project_name) == (
        first.dbt_version, first.adapter_type, "p")  # fmt: skip
    assert build.calls == 1  # reading the plan did not rebuild it


def test_the_same_content_elsewhere_is_the_same_entry(tmp_path: Path) -> None:
    """The disk key is the manifest's content: a copy (another deploy folder) hits the entry."""
    one = small().write(tmp_path / "one")
    two = tmp_path / "two" / "manifest.json"
    two.parent.mkdir()
    two.write_bytes(one.read_bytes())
    config = RenderConfig()
    cached_plan(one, config, Counted(one, config), cache_dir=tmp_path / "cache")
    build = Counted(two, config)
    assert fresh(lambda: cached_plan(two, config, build, cache_dir=tmp_path / "cache"))[1] == "disk"
    assert build.calls == 0
    assert len(list((tmp_path / "cache").glob("*.plan"))) == 1


def test_a_changed_manifest_is_planned_again(tmp_path: Path) -> None:
    path = small().write(tmp_path / "project")
    config = RenderConfig()
    build = Counted(path, config)
    cached_plan(path, config, build, cache_dir=tmp_path / "cache")
    small().model("c", refs=["b"]).write(tmp_path / "project")  # same path, new content
    planned, source = cached_plan(path, config, build, cache_dir=tmp_path / "cache")
    assert (source, build.calls) == ("built", 2)
    assert "c_run" in planned.plan
    assert len(list((tmp_path / "cache").glob("*.plan"))) == 2


def test_other_render_options_are_another_entry(tmp_path: Path) -> None:
    path = small().write(tmp_path / "project")
    for behavior in ("after_each", "build"):
        config = RenderConfig(test_behavior=behavior)
        planned, source = cached_plan(path, config, Counted(path, config), cache_dir=tmp_path / "cache")
        assert source == "built"
    assert "b_build" in planned.plan


def test_naming_state_is_part_of_the_key() -> None:
    class Prefixed(DbtNaming):
        def __init__(self, prefix: str) -> None:
            self.prefix = prefix

    assert render_key(RenderConfig()) == render_key(RenderConfig())
    assert render_key(RenderConfig(naming=Prefixed("x"))) == render_key(RenderConfig(naming=Prefixed("x")))
    assert render_key(RenderConfig(naming=Prefixed("x"))) != render_key(RenderConfig(naming=Prefixed("y")))
    assert render_key(RenderConfig(naming=Prefixed("x"))) != render_key(RenderConfig())


@pytest.mark.parametrize("junk", [b"", b"not a plan", b"MDPLAN2\n" + b"\0" * 200])
def test_a_corrupt_entry_is_rebuilt_and_replaced(tmp_path: Path, junk: bytes) -> None:
    path = small().write(tmp_path / "project")
    config = RenderConfig()
    build = Counted(path, config)
    cached_plan(path, config, build, cache_dir=tmp_path / "cache")
    (entry,) = (tmp_path / "cache").glob("*.plan")
    good = entry.read_bytes()
    entry.write_bytes(junk)
    planned, source = fresh(lambda: cached_plan(path, config, build, cache_dir=tmp_path / "cache"))
    assert (source, build.calls) == ("built", 2)
    assert "b.run" in planned.plan
    assert entry.read_bytes() == good  # rewritten: the next process reads it again
    assert fresh(lambda: cached_plan(path, config, build, cache_dir=tmp_path / "cache"))[1] == "disk"


def test_no_cache_dir_writes_nothing(tmp_path: Path) -> None:
    path = small().write(tmp_path / "project")
    config = RenderConfig()
    build = Counted(path, config)
    before = sorted(tmp_path.rglob("*"))
    assert cached_plan(path, config, build, cache_dir=False)[1] == "built"
    assert fresh(lambda: cached_plan(path, config, build, cache_dir=None))[1] == "built"
    assert build.calls == 2
    assert sorted(tmp_path.rglob("*")) == before


def test_plan_cache_dir_false_in_a_dag_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = tmp_path / "default-cache"
    monkeypatch.setenv("MANIFEST_DAG_PLAN_CACHE", str(default))
    path = small().write(tmp_path / "project")
    venv = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])
    DbtDag(
        dag_id="off",
        schedule=None,
        project_config=ProjectConfig(manifest_path=path, plan_cache_dir=False),
        venv_config=venv,
    )
    assert not default.exists()
    clear_memory()
    DbtDag(dag_id="on", schedule=None, project_config=ProjectConfig(manifest_path=path), venv_config=venv)
    assert len(list(default.glob("*.plan"))) == 1  # the setting is what the DAG falls back to


def test_the_env_setting_off_disables_the_disk_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANIFEST_DAG_PLAN_CACHE", "off")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = small().write(tmp_path / "project")
    config = RenderConfig()
    build = Counted(path, config)
    cached_plan(path, config, build)
    assert fresh(lambda: cached_plan(path, config, build))[1] == "built"
    assert not (tmp_path / "home").exists() and not (tmp_path / "xdg").exists()


def test_the_cache_is_private_to_its_owner(tmp_path: Path) -> None:
    """Entries are pickles: the folder is created 0700 and every file in it 0600."""
    path = small().write(tmp_path / "project")
    config = RenderConfig()
    cache = tmp_path / "cache"
    cached_plan(path, config, Counted(path, config), cache_dir=cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    files = [f for f in cache.rglob("*") if f.is_file()]
    assert any(f.suffix == ".plan" for f in files) and len(files) >= 2  # the entry and its identity index
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    for d in (d for d in cache.rglob("*") if d.is_dir()):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


def test_one_task_is_read_from_disk_with_its_group(tmp_path: Path) -> None:
    path = small().write(tmp_path / "project")
    config = RenderConfig()
    built, _ = cached_plan(path, config, Counted(path, config), cache_dir=tmp_path / "cache")
    never = Counted(path, config)
    planned, source = fresh(lambda: cached_plan(path, config, never, cache_dir=tmp_path / "cache"))
    assert source == "disk"
    spec, groups = planned.task("b.test")
    assert spec == built.plan.task("b.test") and [g.group_id for g in groups] == ["b"]
    assert planned.task("raw_seed")[1] == ()
    assert "b.test" in planned and "nope.run" not in planned
    assert never.calls == 0


class _Planted:
    """A pickle that, once unpickled, creates ``marker``: what an attacker plants in a cache dir."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _forge(entry: Path, marker: Path) -> None:
    """Overwrite ``entry`` with a well-formed entry of the current layout whose parts are the
    planted pickle; checksums right, any authentication tag made without the cache's key."""
    import hashlib
    import os
    import pickle

    from manifest_dag.scheduler import plan_cache as pc

    blob = pickle.dumps(_Planted(marker))
    sha = hashlib.sha256(blob).digest()
    extra = len(pc._HEAD.unpack(bytes(pc._HEAD.size))) - 4  # any fields after the two lengths and checksums
    head = pc._HEAD.pack(len(blob), len(blob), sha, sha, *[os.urandom(32)] * extra)
    entry.write_bytes(pc._MAGIC + head + blob + blob)


def _dag_with_cache(cache: Path, manifest: Path) -> Any:
    clear_memory()
    venv = VenvConfig(py_requirements=["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"])
    return DbtDag(
        dag_id="planted",
        schedule=None,
        project_config=ProjectConfig(manifest_path=manifest, plan_cache_dir=cache),
        venv_config=venv,
    )


@pytest.mark.parametrize("how", ["world-writable dir", "private dir, forged entry"])
def test_a_planted_pickle_is_never_unpickled(tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture) -> None:
    import os

    path = small().write(tmp_path / "project")
    cache = tmp_path / "cache"
    _dag_with_cache(cache, path)
    (entry,) = cache.glob("*.plan")
    marker = tmp_path / "pwned"
    _forge(entry, marker)
    if how == "world-writable dir":
        os.chmod(cache, 0o777)
    with caplog.at_level("WARNING", logger="manifest_dag"):
        dag = _dag_with_cache(cache, path)
    assert not marker.exists(), "a pickle planted in the plan cache ran"
    assert len(dag.task_ids) >= 3  # the DAG still builds
    if how == "world-writable dir":
        warned = [r.getMessage() for r in caplog.records if str(cache) in r.getMessage()]
        assert len(warned) == 1 and "writable" in warned[0], warned
    else:
        assert any("authentication tag mismatch" in r.getMessage() for r in caplog.records)
        assert not entry.read_bytes().endswith(pickle_of_planted(marker))  # rebuilt and replaced
        _dag_with_cache(cache, path)
        assert not marker.exists()


def pickle_of_planted(marker: Path) -> bytes:
    import pickle

    return pickle.dumps(_Planted(marker))


def test_a_cache_dir_owned_by_another_user_is_not_used(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import os

    if os.getuid() != 0:
        pytest.skip("needs root to give a directory away")
    path = small().write(tmp_path / "project")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    os.chown(cache, 65534, 65534)
    config = RenderConfig()
    with caplog.at_level("WARNING", logger="manifest_dag"):
        _, source = cached_plan(path, config, Counted(path, config), cache_dir=cache)
    assert source == "built" and list(cache.iterdir()) == []
    assert any(str(cache) in r.getMessage() and "owned by uid 65534" in r.getMessage() for r in caplog.records)


def _naming_class(task_suffix: str) -> type[DbtNaming]:
    """The same class (module and name) with another body, as after a user edits their DAG file."""
    namespace: dict[str, Any] = {"DbtNaming": DbtNaming, "__name__": "user_dag_naming"}
    exec(  # noqa: S102 - test code written here, not input
        "class TeamNaming(DbtNaming):\n"
        "    def task_id(self, name, command, in_group):\n"
        f"        return super().task_id(name, command, in_group) + {task_suffix!r}\n",
        namespace,
    )
    return namespace["TeamNaming"]


def test_editing_a_naming_method_rebuilds_the_plan(tmp_path: Path) -> None:
    """Issue 19 item 11: a changed method body (same module, same class name) is a new key."""
    path = small().write(tmp_path / "project")
    first_cls, edited_cls = _naming_class("_x"), _naming_class("_y")
    assert (first_cls.__module__, first_cls.__qualname__) == (edited_cls.__module__, edited_cls.__qualname__)
    first = RenderConfig(naming=first_cls())
    edited = RenderConfig(naming=edited_cls())
    assert render_key(first) != render_key(edited)
    assert render_key(first) == render_key(RenderConfig(naming=_naming_class("_x")()))  # same code, same key
    planned, _ = fresh(lambda: cached_plan(path, first, Counted(path, first), cache_dir=tmp_path / "cache"))
    build = Counted(path, edited)
    replanned, _ = fresh(lambda: cached_plan(path, edited, build, cache_dir=tmp_path / "cache"))
    assert build.calls == 1
    first_ids = [t.task_id for t in planned.plan.tasks]
    edited_ids = [t.task_id for t in replanned.plan.tasks]
    assert any(i.endswith("_x") for i in first_ids) and not any(i.endswith("_x") for i in edited_ids)
    assert any(i.endswith("_y") for i in edited_ids)


def test_a_manifest_rewritten_in_place_with_the_same_size_and_mtime_is_planned_again(tmp_path: Path) -> None:
    """Issue 19 item 11: same inode, size and mtime, other content: the old plan is not served."""
    import os

    path = small().write(tmp_path / "project")
    config = RenderConfig()
    planned, _ = fresh(lambda: cached_plan(path, config, Counted(path, config), cache_dir=tmp_path / "cache"))
    ids = sorted(t.task_id for t in planned.plan.tasks)
    assert any(i.startswith("b") for i in ids), ids
    before = path.stat()
    data = path.read_bytes()
    renamed = data.replace(b'"b"', b'"z"').replace(b".b\"", b'.z"').replace(b"/b.sql", b"/z.sql").replace(b"model.p.b", b"model.p.z")
    assert len(renamed) == len(data) and renamed != data
    with path.open("r+b") as fh:  # in place: the same inode
        fh.write(renamed)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    build = Counted(path, config)
    replanned, _ = fresh(lambda: cached_plan(path, config, build, cache_dir=tmp_path / "cache"))
    assert build.calls == 1
    new_ids = sorted(t.task_id for t in replanned.plan.tasks)
    assert new_ids != ids and any(i.startswith("z") for i in new_ids), new_ids
