from __future__ import annotations

import gzip
import os
import shutil
import stat
import tempfile
from pathlib import Path

import msgpack
import pytest

from manifest_dag import WorkspaceError
from manifest_dag.worker.partial_parse import (
    PARTIAL_PARSE,
    ParseState,
    canonical_vars,
    msgpack_dbt_version,
    relocate_msgpack,
)
from manifest_dag.worker.in_venv.msgpack_paths import project_root as msgpack_project_root
from manifest_dag.worker.workspace import Workspace
from tests.conftest import REPO, SHARED

SHOP = REPO / "fixtures" / "shop"
SHOP_MSGPACK = REPO / "fixtures" / "manifests" / "shop" / PARTIAL_PARSE
STATE = ParseState(dbt_version="1.11.16", profile_name="shop", target_name="dev", vars_json="")


def make_project(root: Path) -> Path:
    project = root / "proj"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: shop\nprofile: shop\n")
    (project / "models" / "a.sql").write_text("select 1")
    for junk in ("target", "logs", ".venv"):
        (project / junk).mkdir()
        (project / junk / "x").write_text("junk")
    (project / "dev.duckdb").write_text("db")
    return project


def test_msgpack_version_is_read_from_the_header() -> None:
    assert msgpack_dbt_version(SHARED / "versions" / "partial_parse_dbt-1.11.16.msgpack") == "1.11.16"
    assert msgpack_dbt_version(SHARED / "versions" / "partial_parse_dbt-1.5.12.msgpack") == "1.5.12"


def test_msgpack_version_of_garbage_is_none(tmp_path: Path) -> None:
    bad = tmp_path / "x.msgpack"
    bad.write_bytes(b"\x00garbage")
    assert msgpack_dbt_version(bad) is None
    assert msgpack_dbt_version(tmp_path / "missing") is None


def test_relocation_rewrites_every_path_under_the_old_root(tmp_path: Path) -> None:
    source = tmp_path / "pp.msgpack"
    source.write_bytes(gzip.decompress((SHARED / "large" / "tuva" / "partial_parse.msgpack.gz").read_bytes()))
    dest = tmp_path / "out.msgpack"
    old = relocate_msgpack(source, dest, tmp_path / "new" / "root", "integration_tests")
    assert old == "/tmp/manifests-work/tuva/integration_tests"
    moved = msgpack.unpackb(dest.read_bytes(), raw=False, strict_map_key=False)
    assert msgpack_project_root(moved, "integration_tests") == str(tmp_path / "new" / "root")
    assert old.encode() not in dest.read_bytes()
    original = msgpack.unpackb(source.read_bytes(), raw=False, strict_map_key=False)
    assert original.keys() == moved.keys() and len(original["nodes"]) == len(moved["nodes"])
    assert msgpack_dbt_version(dest) == msgpack_dbt_version(source)


def test_relocation_to_the_same_root_copies_the_bytes(tmp_path: Path) -> None:
    data = msgpack.unpackb(SHOP_MSGPACK.read_bytes(), raw=False, strict_map_key=False)
    root = msgpack_project_root(data, "shop")
    dest = tmp_path / "same.msgpack"
    assert relocate_msgpack(SHOP_MSGPACK, dest, Path(root), "shop") == root
    assert dest.read_bytes() == SHOP_MSGPACK.read_bytes()


def test_canonical_vars_are_stable() -> None:
    assert canonical_vars({"b": 1, "a": "x"}) == canonical_vars({"a": "x", "b": 1}) == '{"a":"x","b":1}'
    assert canonical_vars(None) is None and canonical_vars({}) is None
    with pytest.raises(WorkspaceError, match="JSON-serialisable"):
        canonical_vars({"when": object()})


def test_copy_leaves_out_outputs_and_stays_for_the_next_task(tmp_path: Path) -> None:
    """The copy stays in its slot (the next task only syncs it); the profile dir goes."""
    project = make_project(tmp_path)
    (project / "profiles.yml").write_text("shop:\n  outputs: {dev: {type: postgres, password: hunter2}}\n")
    ws = Workspace(project, cache_root=tmp_path / "cache", state=STATE, log=lambda s: None)
    with ws:
        copy = ws.project
        assert (copy / "models" / "a.sql").read_text() == "select 1"
        assert not (copy / "profiles.yml").exists()  # dbt gets its profile from the private dir
        assert list((copy / "logs").iterdir()) == []  # dbt's own, empty: not the source's logs/x
        assert not (copy / ".venv").exists() and not (copy / "dev.duckdb").exists()
        assert (copy / "target").is_dir() and not (copy / "target" / "x").exists()
        assert stat.S_IMODE(os.stat(ws.profiles_dir).st_mode) == 0o700
        private = ws.profiles_dir
    assert (copy / "models" / "a.sql").read_text() == "select 1" and not private.exists()


def test_a_killed_tasks_profile_dir_is_removed_by_the_next_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL leaves a task no chance to remove its profiles.yml: the next workspace does."""
    import signal
    import subprocess
    import sys

    from manifest_dag.worker.profile_dirs import PROFILE_DIR_PREFIX

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = tmp / f"{PROFILE_DIR_PREFIX}{victim.pid}-abc"
        dead.mkdir(mode=0o700)
        (dead / "profiles.yml").write_text("password: hunter2")
        alive = tmp / f"{PROFILE_DIR_PREFIX}{os.getpid()}-def"  # a task still running here
        alive.mkdir(mode=0o700)
        other = tmp / "manifest-dag-profile-notapid"
        other.mkdir()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        project = make_project(tmp_path)
        with Workspace(project, cache_root=tmp_path / "cache", state=STATE, log=lambda s: None) as ws:
            assert ws.profiles_dir.parent == tmp and ws.profiles_dir.name.startswith(f"{PROFILE_DIR_PREFIX}{os.getpid()}-")
            assert not dead.exists()
            assert alive.is_dir() and other.is_dir()
    finally:
        if victim.poll() is None:
            victim.kill()


def test_the_profile_dir_is_removed_and_the_slot_freed_even_when_the_task_fails(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    kw = dict(cache_root=tmp_path / "cache", state=STATE, log=lambda s: None)
    with pytest.raises(RuntimeError):
        with Workspace(project, **kw) as ws:
            copy, private = ws.project, ws.profiles_dir
            raise RuntimeError("dbt failed")
    assert not private.exists() and copy.is_dir()
    with Workspace(project, **kw) as ws:
        assert ws.project == copy  # slot 0 again: it was freed


def test_parallel_workspaces_get_their_own_slot_and_slots_are_reused(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    kw = dict(cache_root=tmp_path / "cache", state=STATE, log=lambda s: None)
    with Workspace(project, **kw) as a, Workspace(project, **kw) as b:
        assert a.project != b.project
        first, second = a.project, b.project
    with Workspace(project, **kw) as c:
        assert c.project == first  # the same absolute path again: dbt's paths stay valid
    assert first.parent.name == "0" and second.parent.name == "1"


def test_slot_msgpack_is_preferred_and_version_mismatch_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    import shutil

    shutil.copytree(SHOP, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb"))
    lines: list[str] = []
    kw = dict(cache_root=tmp_path / "cache", log=lines.append, manifest_path=SHOP_MSGPACK.parent / "manifest.json")
    with Workspace(project, state=ParseState("1.10.0", "shop", "dev", ""), **kw) as ws:
        assert not (ws.target / PARTIAL_PARSE).exists()
    assert any("written by dbt 1.11.16, this venv runs dbt 1.10.0" in line for line in lines)
    lines.clear()
    with Workspace(project, state=STATE, **kw) as ws:
        placed = ws.target / PARTIAL_PARSE
        assert placed.exists()
        data = msgpack.unpackb(placed.read_bytes(), raw=False, strict_map_key=False)
        assert msgpack_project_root(data, "shop") == str(ws.project)
        ws.keep_partial_parse()
    assert any("paths moved from" in line for line in lines)
    lines.clear()
    with Workspace(project, state=STATE, **kw) as ws:
        assert (ws.target / PARTIAL_PARSE).exists()
    parse_lines = [line for line in lines if line.startswith("partial parse:")]
    assert parse_lines == ["partial parse: reusing this slot's copy (dbt 1.11.16, in place)"], lines


def test_missing_project_dir_names_it(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="does not exist on this worker") as err:
        Workspace(tmp_path / "nope", cache_root=tmp_path, state=STATE).__enter__()
    assert str(tmp_path / "nope") in str(err.value)


def test_dir_without_dbt_project_yml(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="has no dbt_project.yml"):
        Workspace(tmp_path, cache_root=tmp_path / "c", state=STATE).__enter__()


def test_unreadable_project_dir_names_it(tmp_path: Path) -> None:
    """Checked as an unprivileged user (root reads everything), in a child process."""
    import subprocess
    import sys
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="md-unreadable-", dir="/tmp"))
    try:
        base.chmod(0o755)
        project = make_project(base)
        project.chmod(0o700)  # owned by root: the child (nobody) cannot enter it
        code = (
            "import os, sys\n"
            "from pathlib import Path\n"
            "from manifest_dag.worker.workspace import Workspace\n"
            "from manifest_dag.worker.partial_parse import ParseState\n"
            "from manifest_dag.core.errors import WorkspaceError\n"
            "if os.geteuid() == 0: os.setgid(65534); os.setuid(65534)\n"
            "try:\n"
            "    Workspace(Path(sys.argv[1]), cache_root=Path('/tmp/md-unused'), state=ParseState(None, None, None, '')).__enter__()\n"
            "except WorkspaceError as e:\n"
            "    print(e)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(project)], capture_output=True, text=True, cwd=str(REPO),
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert "is not readable by this worker" in out.stdout, out.stdout + out.stderr
        assert str(project) in out.stdout
    finally:
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def test_partial_parse_state_is_kept_per_connection(tmp_path: Path) -> None:
    """Two DAGs of one project may name the same profile and target for different connections:
    each keeps its own msgpack (dbt would refuse the other's), and secrets stay out of the key."""
    from manifest_dag import ProfileConfig
    from manifest_dag.core.specs import DbtInvocation
    from manifest_dag.worker.target import connection_fingerprint, target_output
    from manifest_dag.worker.venv import VenvSpec

    def fingerprint(output: str, **env: str) -> str:
        path = tmp_path / f"p{len(list(tmp_path.glob('p*.yml')))}.yml"
        path.write_text(f"shop:\n  target: dev\n  outputs:\n    dev:\n{output}")
        inv = DbtInvocation(
            command_args=("run",), project_dir=tmp_path, venv_spec=VenvSpec(requirements=("dbt-core",)),
            profile_config=ProfileConfig(profile_name="shop", target_name="dev", profiles_yml_path=path),
        )
        return connection_fingerprint(target_output(inv, path), env)

    pg = "      type: postgres\n      host: db1\n      user: dbt\n      password: {pw}\n      schema: shop\n"
    duck = "      type: duckdb\n      path: \"{{{{ env_var('DB_PATH') }}}}\"\n"
    assert fingerprint(pg.format(pw="a")) == fingerprint(pg.format(pw="b"))  # a password is no key
    assert fingerprint(pg.format(pw="a")) != fingerprint(pg.format(pw="a").replace("db1", "db2"))
    assert fingerprint(pg.format(pw="a")) != fingerprint(duck, DB_PATH="x.duckdb")
    assert fingerprint(duck, DB_PATH="x.duckdb") != fingerprint(duck, DB_PATH="y.duckdb")
    assert fingerprint(duck, DB_PATH="x.duckdb") == fingerprint(duck, DB_PATH="x.duckdb")
    a = ParseState("1.11.0", "shop", "dev", "", connection="c1")
    b = ParseState("1.11.0", "shop", "dev", "", connection="c2")
    assert a.key(tmp_path) != b.key(tmp_path)
    # without a fingerprint the key is the one earlier versions wrote (their msgpacks stay valid)
    assert ParseState("1.11.0", "shop", "dev", "").key(tmp_path) == ParseState("1.11.0", "shop", "dev", "", "").key(tmp_path)


def test_the_workers_deps_copy_holds_no_profiles_yml(tmp_path: Path) -> None:
    """The deps dir outlives every task: a profiles.yml (with a password) must not be copied there,
    and one left by an earlier version is removed."""
    project = make_project(tmp_path)
    (project / "packages.yml").write_text("packages: []\n")
    (project / "profiles.yml").write_text("password: hunter2\n")
    ran: list[Path] = []

    def fake_deps(where: Path) -> None:
        ran.append(where)
        (where / "dbt_packages").mkdir()

    kw = dict(cache_root=tmp_path / "cache", state=STATE, log=lambda s: None)
    with Workspace(project, **kw) as ws:
        ws.install_deps(fake_deps)
    (stable,) = ran
    assert stable.is_dir() and not (stable / "profiles.yml").exists()
    (stable / "profiles.yml").write_text("password: hunter2\n")  # as an earlier version left it
    with Workspace(project, **kw) as ws:
        ws.install_deps(fake_deps)
    assert len(ran) == 1 and not (stable / "profiles.yml").exists()


def test_a_msgpack_with_an_unhashable_map_key_is_skipped_with_a_log_line(tmp_path: Path) -> None:
    """Issue 19 item 15: a corrupt msgpack whose map key is itself a map (Python: unhashable) is
    skipped like any other unreadable copy, in the header read and in the relocation alike."""
    meta = msgpack.packb("metadata") + msgpack.packb({"dbt_version": "1.11.16"})
    bad_key = msgpack.packb({"a": 1}) + msgpack.packb(1)  # a map used as a map key
    in_body = tmp_path / "in_body.msgpack"  # the header reads fine, the relocation decodes the rest
    in_body.write_bytes(b"\x82" + meta + bad_key)
    in_header = tmp_path / "in_header.msgpack"  # the bad key is inside the metadata itself
    in_header.write_bytes(b"\x81" + msgpack.packb("metadata") + b"\x82" + msgpack.packb("dbt_version") + b"\xa11" + bad_key)
    assert msgpack_dbt_version(in_header) is None
    project = make_project(tmp_path)
    for bad in (in_body, in_header):
        lines: list[str] = []
        with Workspace(
            project, cache_root=tmp_path / "cache", state=STATE, log=lines.append, partial_parse_path=bad
        ) as ws:
            assert not (ws.target / PARTIAL_PARSE).exists()
        assert any(line.startswith(f"partial parse: not using {bad}:") for line in lines), lines


def _make_read_only(tree: Path) -> None:
    for path in sorted(tree.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    tree.chmod(0o555)


def _make_writable(tree: Path) -> None:
    tree.chmod(0o755)
    for path in tree.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_read_only_project_gives_an_owner_writable_copy_that_the_next_task_repairs(tmp_path: Path) -> None:
    """A read-only project dir (a package install, a read-only mount) used to be copied with its
    modes: dbt could not write target/ in the copy, and a non-root worker could not delete the
    copy, so every later task failed with FileExistsError. Modes are checked here (root too);
    the non-root failure is replayed below in a child process as nobody. A file changed in the
    copy is restored by the next task's sync."""
    project = make_project(tmp_path)
    for junk in ("target", "logs", ".venv", "dev.duckdb"):
        p = project / junk
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    _make_read_only(project)
    try:
        kw = dict(cache_root=tmp_path / "cache", state=STATE, log=lambda s: None)
        with Workspace(project, **kw) as ws:
            copy = ws.project
            for path in [copy, *copy.rglob("*")]:
                if path.is_symlink():
                    continue
                mode = stat.S_IMODE(path.lstat().st_mode)
                wanted = stat.S_IRWXU if path.is_dir() else stat.S_IRUSR | stat.S_IWUSR
                assert mode & wanted == wanted, f"{path} is {oct(mode)}"
            (copy / "target" / "run_results.json").write_text("{}")
            (copy / "models" / "a.sql").write_text("select 2")  # dbt may rewrite files in its copy
        assert copy.is_dir()
        with Workspace(project, **kw) as ws:  # the same slot, synced
            assert ws.project == copy and (copy / "models" / "a.sql").read_text() == "select 1"
            assert list(ws.target.iterdir()) == []  # the previous task's run_results.json is gone
    finally:
        _make_writable(project)


def test_a_copy_left_read_only_is_replaced_by_the_next_task_as_a_non_root_user() -> None:
    """As nobody: a read-only copy left in the slot (by a killed task or an earlier version)
    must not make every later task fail; the next workspace makes it writable and syncs it (a
    stray file in a read-only folder of it is removed)."""
    import subprocess
    import sys

    base = Path(tempfile.mkdtemp(prefix="md-readonly-", dir="/tmp"))
    try:
        code = (
            "import os, sys, shutil, stat\n"
            "from pathlib import Path\n"
            "from manifest_dag.worker.workspace import Workspace\n"
            "from manifest_dag.worker.partial_parse import ParseState\n"
            "if os.geteuid() == 0: os.setgid(65534); os.setuid(65534)\n"
            "base = Path(sys.argv[1])\n"
            "project = base / 'proj'\n"
            "(project / 'models').mkdir(parents=True)\n"
            "(project / 'dbt_project.yml').write_text('name: shop\\nprofile: shop\\n')\n"
            "(project / 'models' / 'a.sql').write_text('select 1')\n"
            "for p in [project / 'models' / 'a.sql', project / 'dbt_project.yml']: p.chmod(0o444)\n"
            "for p in [project / 'models', project]: p.chmod(0o555)\n"
            "kw = dict(cache_root=base / 'cache', state=ParseState(None, None, None, ''), log=lambda s: None)\n"
            "ws = Workspace(project, **kw)\n"
            "ws._take_slot(); slot = ws.project\n"
            "ws._lock.release(); ws._lock = None; ws.slot = None\n"
            "(project / 'models').chmod(0o755); (project / 'models' / 'old.sql').write_text('x')\n"
            "(project / 'models').chmod(0o555)\n"
            "shutil.copytree(project, slot)  # a read-only copy, as the old code left it\n"
            "(project / 'models').chmod(0o755); (project / 'models' / 'old.sql').unlink()\n"
            "(project / 'models').chmod(0o555)\n"
            "with Workspace(project, **kw) as ws:\n"
            "    assert ws.project == slot, (ws.project, slot)\n"
            "    (ws.target / 'x').write_text('ok')\n"
            "    assert not (slot / 'models' / 'old.sql').exists(), 'stray file kept'\n"
            "    assert (slot / 'models' / 'a.sql').read_text() == 'select 1'\n"
            "with Workspace(project, **kw) as ws:\n"
            "    assert ws.project == slot and not (ws.target / 'x').exists()\n"
            "print('OK')\n"
        )
        base.chmod(0o777)
        out = subprocess.run(
            [sys.executable, "-c", code, str(base)], capture_output=True, text=True, cwd=str(REPO),
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert out.stdout.strip() == "OK", out.stdout + out.stderr
    finally:
        subprocess.run(["chmod", "-R", "u+rwX", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_state_tree_is_private_even_where_it_existed_with_wider_modes(tmp_path: Path) -> None:
    """Kept msgpacks hold the values of env vars the project reads (secrets too): every dir of the
    worker's state tree is 0700 and every file it keeps 0600, also where an earlier version (or a
    umask of 022) left the tree 0755."""
    project = tmp_path / "shop"
    shutil.copytree(SHOP, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb"))
    (project / "packages.yml").write_text("packages: []\n")
    state = tmp_path / "venvs" / ".state"
    for old in ("", "workspaces", "partial_parse", "deps"):
        (state / old).mkdir(parents=True, exist_ok=True)
        os.chmod(state / old, 0o755)
    kw = dict(cache_root=state, state=STATE, log=lambda s: None, manifest_path=SHOP_MSGPACK.parent / "manifest.json")
    old_umask = os.umask(0o022)
    try:
        with Workspace(project, **kw) as ws:
            assert _mode(ws.target / PARTIAL_PARSE) == 0o600  # the relocated copy, too
            ws.install_deps(lambda where: (where / "dbt_packages").mkdir())
            ws.keep_partial_parse()
            slot = ws.slot
    finally:
        os.umask(old_umask)
    assert slot is not None
    kept = [p for p in state.rglob(f"{PARTIAL_PARSE}*") if p.is_file() and "project" not in p.parts]
    assert len(kept) == 2
    for path in [state, *state.rglob("*")]:
        if path.is_symlink() or any(part in path.parts for part in ("project",)):
            continue
        if (state / "deps") in path.parents and path.parent != state / "deps":
            continue  # inside the deps copy: the project's own files, under a 0700 dir
        want = 0o700 if path.is_dir() else 0o600
        assert _mode(path) == want, f"{path}: {oct(_mode(path))}"


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_keeping_the_msgpack_never_fails_a_task_that_succeeded(tmp_path: Path) -> None:
    """The model is built by then: a msgpack that cannot be kept (here the worker's copy is
    blocked by a folder in its place) is a warning, not a failed task, and leaves no temp file."""
    project = make_project(tmp_path)
    lines: list[str] = []
    cache = tmp_path / "cache"
    with Workspace(project, cache_root=cache, state=STATE, log=lines.append) as ws:
        (ws.target / PARTIAL_PARSE).write_bytes(b"x" * 10_000)
        ws._worker_msgpack().mkdir(parents=True)  # os.replace onto a folder fails
        (ws._worker_msgpack() / "keep").write_text("")
        ws.keep_partial_parse()
        assert ws._slot_msgpack().read_bytes() == b"x" * 10_000  # the other copy is still kept
    assert any(line.startswith("partial parse: could not keep") for line in lines), lines
    assert _temp_files(cache) == []


def test_a_full_disk_while_keeping_the_msgpack_is_a_warning_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """A real write failure (a file-size limit: EFBIG, as ENOSPC would be) in a child process."""
    import subprocess
    import sys

    project = make_project(tmp_path)
    code = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from manifest_dag.worker.workspace import Workspace\n"
        "from manifest_dag.worker.partial_parse import ParseState, PARTIAL_PARSE\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process\n"
        "state = ParseState('1.11.16', 'shop', 'dev', '')\n"
        "with Workspace(Path(sys.argv[1]), cache_root=Path(sys.argv[2]), state=state) as ws:\n"
        "    (ws.target / PARTIAL_PARSE).write_bytes(b'x' * 200_000)\n"
        "    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, resource.RLIM_INFINITY))\n"
        "    ws.keep_partial_parse()\n"
        "    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
        "print('KEPT-OK')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(project), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        cwd=str(REPO),
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert "KEPT-OK" in out.stdout, out.stdout + out.stderr
    assert "partial parse: could not keep" in out.stdout, out.stdout
    assert _temp_files(tmp_path / "cache") == []


def test_folders_and_files_named_like_outputs_are_copied_below_the_top_level(tmp_path: Path) -> None:
    """Issue 19 item 3: only the project's own top-level outputs are left out, not a ``models/logs/``."""
    project = make_project(tmp_path)
    for rel, text in {
        "models/logs/m_logs.sql": "select 1",
        "models/target/m_target.sql": "select 2",
        "models/env/m_env.sql": "select 3",
        "seeds/lookup.db/readme.md": "a folder whose name ends in .db",
        "seeds/archive.db": "not a database: a file of the project",
        "models/profiles.yml": "version: 2\n",
        "models/__pycache__/x.pyc": "",
    }.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    (project / "shop.db").write_text("a local database at the top")
    with Workspace(project, cache_root=tmp_path / "cache", state=STATE, log=lambda s: None) as ws:
        copy = ws.project
        assert (copy / "models" / "logs" / "m_logs.sql").read_text() == "select 1"
        assert (copy / "models" / "target" / "m_target.sql").read_text() == "select 2"
        assert (copy / "models" / "env" / "m_env.sql").read_text() == "select 3"
        assert (copy / "seeds" / "lookup.db" / "readme.md").is_file()
        assert (copy / "seeds" / "archive.db").is_file()
        assert (copy / "models" / "profiles.yml").is_file()  # a schema file, not dbt's profile
        assert not (copy / "models" / "__pycache__").exists()
        assert not (copy / "shop.db").exists()
        assert list((copy / "logs").iterdir()) == [] and not (copy / ".venv").exists()
