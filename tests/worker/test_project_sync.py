"""The slot's copy is kept and synced with the source (issue 18 items 2 and 4, issue 19 item 3).

Each test builds a small project on disk and syncs it into a copy with ``sync_project`` (or
through ``Workspace``), then changes the source and syncs again. No dbt is needed: what dbt
reads is decided from dbt_project.yml, and the e2e test in tests/e2e/test_e2e_worker.py runs
real dbt on such a copy.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgpack
import pytest

from manifest_dag.worker import project_sync
from manifest_dag.worker.partial_parse import PARTIAL_PARSE, ParseState
from manifest_dag.worker.project_sync import SYNC_STATE, project_layout, sync_project
from manifest_dag.worker.state_marks import read_source
from manifest_dag.worker.workspace import Workspace

STATE = ParseState(dbt_version="1.11.16", profile_name="shop", target_name="dev", vars_json="")


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def make_source(root: Path, dbt_project: str = "name: shop\nprofile: shop\n") -> Path:
    src = root / "src"
    write(
        src,
        {
            "dbt_project.yml": dbt_project,
            "models/a.sql": "select 1 as a",
            "models/staging/b.sql": "select 2 as b",
            "models/schema.yml": "version: 2\n",
            "macros/m.sql": "{% macro m() %}1{% endmacro %}",
            "seeds/s.csv": "id\n1\n",
            "tests/t.sql": "select 1 where false",
            "snapshots/snap.sql": "-- snapshot",
            "analyses/an.sql": "select 1",
            "selectors.yml": "selectors: []\n",
        },
    )
    return src


def fake_msgpack(project: Path) -> bytes:
    """The parts of a partial_parse.msgpack the workspace reads: dbt's version and a file's root."""
    files = {"shop://models/a.sql": {"path": {"project_root": str(project), "searched_path": "models"}}}
    return msgpack.packb({"metadata": {"dbt_version": "1.11.16"}, "files": files}, use_bin_type=True)


def tree(root: Path) -> dict[str, tuple]:
    """Every path below ``root`` (not through symlinks): kind, content or link, and its lstat tuple."""
    out: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        sig = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path), sig)
        elif path.is_dir():
            out[rel] = ("dir",)
        else:
            out[rel] = ("file", path.read_bytes(), sig)
    return out


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()
    }


def sync(src: Path, dest: Path, lines: list[str] | None = None, **kw) -> project_sync.SyncReport:
    return sync_project(src, dest, state_file=dest.parent / SYNC_STATE, log=(lines if lines is not None else []).append, **kw)


def test_added_changed_and_removed_files_and_folders_are_mirrored(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    dest = tmp_path / "slot" / "project"
    first = sync(src, dest)
    assert first.fresh and first.copied == 10
    assert files_of(dest) == files_of(src)
    write(src, {"models/new/c.sql": "select 3", "models/a.sql": "select 11 as a, 'longer' as b"})
    (src / "models" / "staging" / "b.sql").unlink()
    (src / "models" / "staging").rmdir()
    (src / "snapshots" / "snap.sql").unlink()
    (src / "snapshots").rmdir()
    (src / "macros" / "m.sql").unlink()
    (src / "macros" / "m.sql").mkdir()  # a file that becomes a folder
    write(src, {"macros/m.sql/inner.sql": "{% macro n() %}2{% endmacro %}"})
    report = sync(src, dest)
    assert not report.fresh
    assert files_of(dest) == files_of(src)
    assert not (dest / "models" / "staging").exists() and not (dest / "snapshots").exists()
    assert (dest / "models" / "new" / "c.sql").read_text() == "select 3"
    assert report.copied == 3 and report.removed == 3  # a.sql, c.sql, inner.sql; staging/, snapshots/, m.sql
    # ...and the other way round: a folder that becomes a file
    (src / "macros" / "m.sql" / "inner.sql").unlink()
    (src / "macros" / "m.sql").rmdir()
    (src / "macros" / "m.sql").write_text("{% macro m() %}3{% endmacro %}")
    sync(src, dest)
    assert files_of(dest) == files_of(src)


def test_an_unchanged_project_rewrites_nothing(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    dest = tmp_path / "slot" / "project"
    sync(src, dest)
    before = tree(dest)
    report = sync(src, dest)
    assert (report.copied, report.removed, report.linked, report.unchanged) == (0, 0, 0, 10)
    assert tree(dest) == before  # not a single file rewritten: same inode, size, mtime, ctime


def test_an_edit_that_keeps_size_and_mtime_is_picked_up_by_its_ctime(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    dest = tmp_path / "slot" / "project"
    sync(src, dest)
    model = src / "models" / "a.sql"
    st = model.stat()
    model.write_text("select 9 as a")  # same length
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime
    assert (model.stat().st_size, model.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    copy = dest / "models" / "a.sql"
    old_sig = tree(dest)["models/a.sql"][2]
    report = sync(src, dest)
    assert report.copied == 1
    assert copy.read_text() == "select 9 as a"
    assert copy.stat().st_mtime_ns == st.st_mtime_ns  # copy2 semantics: the source's mtime
    assert tree(dest)["models/a.sql"][2] != old_sig  # the warm server's fingerprint sees the change


def test_a_file_changed_or_removed_in_the_copy_is_restored(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    dest = tmp_path / "slot" / "project"
    sync(src, dest)
    (dest / "models" / "a.sql").write_text("select 'changed by someone'")
    (dest / "macros" / "m.sql").unlink()
    (dest / "models" / "stray.sql").write_text("select 'not in the source'")
    sync(src, dest)
    assert files_of(dest) == files_of(src)


def test_a_replaced_file_does_not_disturb_a_reader_that_has_it_open(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    dest = tmp_path / "slot" / "project"
    sync(src, dest)
    with (dest / "models" / "a.sql").open() as reader:
        (src / "models" / "a.sql").write_text("select 2 as a -- new")
        sync(src, dest)
        assert reader.read() == "select 1 as a"  # the old inode, whole
    assert (dest / "models" / "a.sql").read_text() == "select 2 as a -- new"


def test_only_what_dbt_reads_is_copied(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    write(
        src,
        {
            "data/big.parquet": "x" * 1000,
            "node_modules/pkg/index.js": "",
            "scripts/run.sh": "",
            "README.md": "",
            "packages.yml": "packages: []\n",
            "package-lock.yml": "packages: []\n",
            "dependencies.yml": "projects: []\n",
            "catalogs.yml": "catalogs: []\n",
            ".dbtignore": "models/ignored/\n",
            "dbt_packages/util/dbt_project.yml": "name: util\n",
            "dbt_packages/util/macros/u.sql": "",
            "profiles.yml": "shop:\n  outputs: {dev: {password: hunter2}}\n",
            "target/manifest.json": "{}",
            "logs/dbt.log": "",
            "functions/f.sql": "select 1",
            "models/__pycache__/x.cpython-311.pyc": "",
            "models/py_model.pyc": "",
        },
    )
    dest = tmp_path / "slot" / "project"
    sync(src, dest)
    top = sorted(p.name for p in dest.iterdir())
    assert top == sorted(
        [
            ".dbtignore",
            "analyses",
            "catalogs.yml",
            "dbt_packages",
            "dbt_project.yml",
            "dependencies.yml",
            "functions",
            "macros",
            "models",
            "package-lock.yml",
            "packages.yml",
            "seeds",
            "selectors.yml",
            "snapshots",
            "tests",
        ]
    )
    assert (dest / "dbt_packages" / "util" / "macros" / "u.sql").is_file()
    assert not (dest / "models" / "__pycache__").exists() and not (dest / "models" / "py_model.pyc").exists()


def test_the_paths_dbt_project_yml_names_are_copied_and_not_the_defaults(tmp_path: Path) -> None:
    src = make_source(
        tmp_path,
        "name: shop\n"
        "model-paths: ['transform/models/', './more']\n"
        "seed-paths: data\n"  # a string, not a list; dbt's old default for seeds, here on purpose
        "macro-paths: [macros]\n"
        "test-paths: []\n"
        "docs-paths: [docs]\n"
        "asset-paths: [assets]\n"
        "packages-install-path: vendor\n",
    )
    write(
        src,
        {
            "transform/models/x.sql": "select 1",
            "transform/other/y.txt": "not searched",
            "more/z.sql": "select 2",
            "data/d.csv": "id\n1\n",
            "docs/overview.md": "{% docs __overview__ %}{% enddocs %}",
            "assets/logo.png": "png",
            "vendor/pkg/dbt_project.yml": "name: pkg\n",
        },
    )
    dest = tmp_path / "slot" / "project"
    sync(src, dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        ["dbt_project.yml", "selectors.yml", "transform", "more", "data", "macros", "docs", "assets", "vendor"]
        + ["snapshots", "analyses"]  # not named: dbt's defaults
    )
    assert sorted(p.name for p in (dest / "transform").iterdir()) == ["models"]
    assert (dest / "transform" / "models" / "x.sql").is_file() and (dest / "data" / "d.csv").is_file()
    assert (dest / "vendor" / "pkg" / "dbt_project.yml").is_file()
    # docs-paths left out: dbt's default is every searched path, nothing more
    src.joinpath("dbt_project.yml").write_text("name: shop\nmodel-paths: [transform/models]\n")
    sync(src, dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        ["dbt_project.yml", "selectors.yml", "transform", "macros", "seeds", "tests", "snapshots", "analyses"]
    )


def test_outputs_are_left_out_at_the_top_only_also_where_dbt_project_yml_puts_them(tmp_path: Path) -> None:
    """With the whole project as a model path, dbt's outputs (default and configured) stay out,
    while a models folder named logs, target or env and a seed ending .db deeper down are copied."""
    src = make_source(tmp_path, "name: shop\nmodel-paths: ['.']\ntarget-path: build/out\nlog-path: dbt-logs\n")
    write(
        src,
        {
            "models/logs/m_logs.sql": "select 1",
            "models/target/m_target.sql": "select 2",
            "models/env/m_env.sql": "select 3",
            "seeds/archive.db": "a file of the project",
            "models/build/out/kept.sql": "only the top-level build/out is dbt's",
            "build/out/manifest.json": "{}",
            "build/keep.sql": "select 4",
            "dbt-logs/dbt.log": "",
            "target/run_results.json": "{}",
            "logs/dbt.log": "",
            ".venv/bin/python": "",
            ".git/HEAD": "",
            "shop.duckdb": "db",
            "profiles.yml": "password: hunter2",
            "data/raw.csv": "a model path of '.' searches everything: data is read by dbt",
        },
    )
    dest = tmp_path / "slot" / "project"
    sync(src, dest)
    for rel in ("models/logs/m_logs.sql", "models/target/m_target.sql", "models/env/m_env.sql", "seeds/archive.db",
                "models/build/out/kept.sql", "build/keep.sql", "data/raw.csv"):
        assert (dest / rel).is_file(), rel
    for rel in ("build/out", "dbt-logs", "target", "logs", ".venv", ".git", "shop.duckdb", "profiles.yml"):
        assert not os.path.lexists(dest / rel), rel


def test_the_default_layout_never_copies_outputs_or_a_profile(tmp_path: Path) -> None:
    src = make_source(tmp_path, "name: shop\ntarget-path: out\n")
    write(src, {"out/manifest.json": "{}", "target/x": "", "logs/dbt.log": "", "profiles.yml": "password: x",
                "models/logs/m.sql": "select 1", "models/profiles.yml": "version: 2\n", "seeds/x.db": "seed"})
    dest = tmp_path / "slot" / "project"
    sync(src, dest)
    assert not any(os.path.lexists(dest / p) for p in ("out", "target", "logs", "profiles.yml"))
    assert (dest / "models" / "logs" / "m.sql").is_file() and (dest / "models" / "profiles.yml").is_file()
    assert (dest / "seeds" / "x.db").is_file()


def test_a_path_outside_the_project_is_not_copied_and_warned_about(tmp_path: Path) -> None:
    src = make_source(tmp_path, "name: shop\nmodel-paths: [models, ../shared/models, /abs/models]\n")
    write(tmp_path, {"shared/models/s.sql": "select 1"})
    layout = project_layout(src)
    assert any("model-paths entry '../shared/models' is outside the project" in n for n in layout.notes), layout.notes
    assert not any("/abs/models" in n for n in layout.notes)  # absolute: dbt reads it in place
    dest = tmp_path / "slot" / "project"
    sync(src, dest)
    assert not (tmp_path / "slot" / "shared").exists() and (dest / "models" / "a.sql").is_file()


def test_a_templated_or_unreadable_path_copies_the_whole_project(tmp_path: Path) -> None:
    src = make_source(tmp_path, "name: shop\nmodel-paths: [\"{{ env_var('MODELS', 'models') }}\"]\n")
    write(src, {"custom/x.sql": "select 1", "node_modules/x.js": "", "target/x": "", "profiles.yml": "p"})
    layout = project_layout(src)
    assert layout.whole_root and any("not a plain path" in n for n in layout.notes)
    dest = tmp_path / "slot" / "project"
    sync(src, dest, layout=layout)
    assert (dest / "custom" / "x.sql").is_file() and (dest / "models" / "a.sql").is_file()
    assert not any(os.path.lexists(dest / p) for p in ("node_modules", "target", "profiles.yml"))
    (src / "dbt_project.yml").write_text("name: [unclosed\n")
    assert project_layout(src).whole_root


def _make_read_only(tree_root: Path) -> None:
    for path in sorted(tree_root.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    tree_root.chmod(0o555)


def _make_writable(tree_root: Path) -> None:
    tree_root.chmod(0o755)
    for path in tree_root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_read_only_source_gives_an_owner_writable_copy_that_keeps_syncing(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    _make_read_only(src)
    dest = tmp_path / "slot" / "project"
    try:
        sync(src, dest)
        for path in [dest, *dest.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            wanted = stat.S_IRWXU if path.is_dir() else stat.S_IRUSR | stat.S_IWUSR
            assert mode & wanted == wanted, f"{path} is {oct(mode)}"
        _make_writable(src)
        (src / "models" / "a.sql").write_text("select 5 as a")
        _make_read_only(src)
        sync(src, dest)
        assert (dest / "models" / "a.sql").read_text() == "select 5 as a"
    finally:
        _make_writable(src)


def test_a_relative_symlink_out_of_the_project_gives_the_same_content(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    write(
        tmp_path,
        {
            "shared/common.sql": "select 'shared' as s",
            "shared/macros/sm.sql": "{% macro sm() %}1{% endmacro %}",
            "shared/nested/n.sql": "select 'nested'",
            "shared/seed.csv": "id\n7\n",
        },
    )
    (src / "models" / "common.sql").symlink_to("../../shared/common.sql")  # a file out of the project
    (src / "seeds" / "seed.csv").symlink_to(Path("..") / ".." / "shared" / "seed.csv")
    (src / "macros").rename(src / "own_macros")
    (src / "macros").symlink_to("../shared/macros")  # a searched path that is a symlink: dbt walks it
    (src / "models" / "nested").symlink_to("../../shared/nested")  # a folder dbt's search does not enter
    (src / "models" / "b_alias.sql").symlink_to("staging/b.sql")  # inside the project: stays relative
    dest = tmp_path / "slot" / "project"
    sync(src, dest)
    common = dest / "models" / "common.sql"
    assert not common.is_symlink() and common.read_text() == "select 'shared' as s"
    assert (dest / "seeds" / "seed.csv").read_text() == "id\n7\n"
    assert (dest / "macros").is_dir() and not (dest / "macros").is_symlink()
    assert (dest / "macros" / "sm.sql").read_text() == "{% macro sm() %}1{% endmacro %}"
    nested = dest / "models" / "nested"
    assert nested.is_symlink() and os.readlink(nested) == str((tmp_path / "shared" / "nested").resolve())
    alias = dest / "models" / "b_alias.sql"
    assert alias.is_symlink() and os.readlink(alias) == "staging/b.sql" and alias.read_text() == "select 2 as b"
    # an edit to the file out of the project is picked up through its target's stat
    (tmp_path / "shared" / "common.sql").write_text("select 'edited' as s")
    (tmp_path / "shared" / "macros" / "sm2.sql").write_text("{% macro sm2() %}2{% endmacro %}")
    report = sync(src, dest)
    assert common.read_text() == "select 'edited' as s" and (dest / "macros" / "sm2.sql").is_file()
    assert report.copied == 2
    assert sync(src, dest).copied == 0


def test_dangling_symlinks_and_loops_are_skipped_with_a_log_line(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    (src / "models" / "gone.sql").symlink_to("../../nowhere.sql")
    (src / "models" / "loop_a.sql").symlink_to("loop_b.sql")
    (src / "models" / "loop_b.sql").symlink_to("loop_a.sql")
    write(tmp_path, {"outside/x.sql": "select 1"})
    (tmp_path / "outside" / "back").symlink_to("..")  # inside a folder copied by content: itself
    (src / "seeds").rename(src / "seeds_real")
    (src / "seeds").symlink_to("../outside")
    dest = tmp_path / "slot" / "project"
    lines: list[str] = []
    report = sync(src, dest, lines)
    assert {"models/gone.sql", "models/loop_a.sql", "models/loop_b.sql"} <= set(report.skipped)
    assert any(line.startswith("workspace: skipping models/gone.sql: a dangling symlink") for line in lines), lines
    assert any(line.startswith("workspace: skipping models/loop_a.sql: a symlink loop") for line in lines), lines
    assert (dest / "seeds" / "x.sql").is_file()
    # `back` is not a searched position: an absolute symlink, as dbt would not walk into it either
    assert (dest / "seeds" / "back").is_symlink()
    assert (dest / "models" / "a.sql").is_file()


def test_a_folder_symlink_reached_inside_itself_is_skipped(tmp_path: Path) -> None:
    """The packages folder is walked two levels deep through symlinks (packages and their top
    folders): a package that links back to its own folder must end, not recurse."""
    src = make_source(tmp_path)
    write(tmp_path, {"pkgs/util/dbt_project.yml": "name: util\n", "pkgs/util/macros/u.sql": ""})
    (tmp_path / "pkgs" / "util" / "self").symlink_to(".")
    (src / "dbt_packages").mkdir()
    (src / "dbt_packages" / "util").symlink_to("../../pkgs/util")
    dest = tmp_path / "slot" / "project"
    lines: list[str] = []
    sync(src, dest, lines)
    assert (dest / "dbt_packages" / "util" / "macros" / "u.sql").is_file()
    assert any("skipping dbt_packages/util/self: a symlink loop" in line for line in lines), lines


def test_an_interrupted_sync_is_repaired_by_the_next_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_source(tmp_path)
    dest = tmp_path / "slot" / "project"
    sync(src, dest)
    write(src, {f"models/gen/m{i}.sql": f"select {i}" for i in range(20)})
    write(src, {"models/a.sql": "select 'new a'"})
    real = project_sync._write_copy
    calls = {"n": 0}

    def failing(s: str, d: str) -> os.stat_result:
        calls["n"] += 1
        if calls["n"] == 8:
            raise OSError(28, "No space left on device")
        return real(s, d)

    monkeypatch.setattr(project_sync, "_write_copy", failing)
    with pytest.raises(OSError, match="No space left"):
        sync(src, dest)
    assert not (dest.parent / SYNC_STATE).exists()  # dropped first, not written
    monkeypatch.setattr(project_sync, "_write_copy", real)
    # a half-written temp file, as a killed process would leave it
    (dest / "models" / f".x.sql.abcd{project_sync._TEMP_SUFFIX}").write_text("half")
    report = sync(src, dest)
    assert report.fresh
    assert files_of(dest) == files_of(src)
    assert sync(src, dest).copied == 0


def test_workspace_keeps_the_copy_and_clears_the_previous_runs_artifacts(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    kw = dict(cache_root=tmp_path / "cache", state=STATE, log=lambda s: None)
    with Workspace(src, **kw) as ws:
        assert ws.slot_number == 0
        copy = ws.project
        (ws.target / "run_results.json").write_text('{"results": [1]}')
        (ws.target / "compiled" / "shop").mkdir(parents=True)
        (ws.target / PARTIAL_PARSE).write_bytes(fake_msgpack(copy))
        ws.keep_partial_parse()
        ws.logs.mkdir(exist_ok=True)
        (ws.logs / "dbt.log").write_text("old run")
        before = tree(copy / "models")
    assert copy.is_dir() and ws.slot_number is None
    with Workspace(src, **kw) as ws:
        assert ws.project == copy and ws.slot_number == 0
        assert sorted(p.name for p in ws.target.iterdir()) == [PARTIAL_PARSE]
        assert list(ws.logs.iterdir()) == []
        assert tree(copy / "models") == before


def test_parallel_workspaces_have_their_own_slot_numbers(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    kw = dict(cache_root=tmp_path / "cache", state=STATE, log=lambda s: None)
    with Workspace(src, **kw) as a, Workspace(src, **kw) as b:
        assert (a.slot_number, b.slot_number) == (0, 1)
        assert a.project.parent.name == "0" and b.project.parent.name == "1"


def test_the_slots_msgpack_is_used_in_place_and_kept_only_when_dbt_rewrote_it(tmp_path: Path) -> None:
    """The copy's target/ persists: the msgpack dbt left there is the next task's, with no copy
    (the 4 MB copy per task is gone); one rewritten since it was placed is not trusted."""
    src = make_source(tmp_path)
    lines: list[str] = []
    kw = dict(cache_root=tmp_path / "cache", state=STATE, log=lines.append)
    with Workspace(src, **kw) as ws:
        fake = fake_msgpack(ws.project)
        (ws.target / PARTIAL_PARSE).write_bytes(fake)  # as dbt writes it after a full parse
        ws.keep_partial_parse()
        slot_kept, worker_kept = ws._slot_msgpack(), ws._worker_msgpack()
    assert slot_kept.read_bytes() == fake and worker_kept.read_bytes() == fake
    assert read_source(worker_kept.parent) == src.resolve()
    kept_sigs = (tree(slot_kept.parent)[slot_kept.name][2], worker_kept.stat().st_ino, worker_kept.stat().st_ctime_ns)
    lines.clear()
    with Workspace(src, **kw) as ws:
        placed = ws.target / PARTIAL_PARSE
        sig = tree(ws.target)[PARTIAL_PARSE][2]
        ws.keep_partial_parse()  # dbt skipped parsing: the file is as it was
        assert tree(ws.target)[PARTIAL_PARSE][2] == sig
    assert "partial parse: reusing this slot's copy (dbt 1.11.16, in place)" in lines
    assert (tree(slot_kept.parent)[slot_kept.name][2], worker_kept.stat().st_ino, worker_kept.stat().st_ctime_ns) == kept_sigs
    # a run that failed after rewriting the file in place: not trusted, the kept copy replaces it
    placed.write_bytes(fake + b"\x00")
    lines.clear()
    with Workspace(src, **kw) as ws:
        assert (ws.target / PARTIAL_PARSE).read_bytes() == fake
    assert "partial parse: reusing this slot's copy (dbt 1.11.16)" in lines, lines
    # another parse state in the same slot: its own msgpack, not this one
    lines.clear()
    with Workspace(src, cache_root=tmp_path / "cache", state=ParseState("1.11.16", "shop", "prod", ""), log=lines.append) as ws:
        assert not (ws.target / PARTIAL_PARSE).exists()
    assert "partial parse: no usable partial_parse.msgpack; dbt will parse the whole project" in lines


def test_the_state_folders_are_marked_with_their_project(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    (src / "packages.yml").write_text("packages:\n  - local: local_pkgs/util\n")
    write(src, {"local_pkgs/util/dbt_project.yml": "name: util\n", "local_pkgs/util/macros/u.sql": "", "data/x": "x"})
    ran: list[Path] = []

    def fake_deps(where: Path) -> None:
        ran.append(where)
        assert (where / "local_pkgs" / "util" / "macros" / "u.sql").is_file()  # local packages are there
        assert not (where / "data").exists()
        (where / "dbt_packages").mkdir()
        (where / "dbt_packages" / "util").symlink_to(where / "local_pkgs" / "util")

    cache = tmp_path / "cache"
    with Workspace(src, cache_root=cache, state=STATE, log=lambda s: None) as ws:
        ws.install_deps(fake_deps)
        (ws.target / PARTIAL_PARSE).write_bytes(b"\x80")
        ws.keep_partial_parse()
        base, worker_kept = ws.project.parent.parent, ws._worker_msgpack().parent
    (stable,) = ran
    for folder in (base, stable, worker_kept):
        assert read_source(folder) == src.resolve(), folder


def test_the_packages_link_stays_as_it_is_and_follows_the_package_spec(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    (src / "packages.yml").write_text("packages: []\n")
    ran: list[Path] = []

    def fake_deps(where: Path) -> None:
        ran.append(where)
        (where / "dbt_packages").mkdir()

    kw = dict(cache_root=tmp_path / "cache", state=STATE, log=lambda s: None)
    with Workspace(src, **kw) as ws:
        ws.install_deps(fake_deps)
        link = ws.project / "dbt_packages"
        first = tree(ws.project)["dbt_packages"]
        assert os.readlink(link) == str(ran[0] / "dbt_packages")
    with Workspace(src, **kw) as ws:
        assert tree(ws.project)["dbt_packages"] == first  # kept through the sync, untouched
        ws.install_deps(fake_deps)
        assert tree(ws.project)["dbt_packages"] == first and len(ran) == 1
    (src / "packages.yml").write_text("packages: [{package: x/y, version: 1.0.0}]\n")
    with Workspace(src, **kw) as ws:
        assert not os.path.lexists(link)  # the old spec's packages are gone before dbt runs
        ws.install_deps(fake_deps)
        assert os.readlink(link) == str(ran[1] / "dbt_packages") and ran[1] != ran[0]
    (src / "packages.yml").unlink()
    with Workspace(src, **kw) as ws:
        assert not ws.needs_deps() and not os.path.lexists(link)


def test_the_fingerprint_changes_exactly_when_the_copy_does(tmp_path: Path) -> None:
    """The warm server compares this digest instead of walking the copy (issue 18): it must stay
    the same while nothing is written, and change on any edit, touch, addition, removal or
    re-aimed symlink."""
    src = make_source(tmp_path)
    (src / "models" / "shared").mkdir()
    (src / "models" / "shared" / "c.sql").write_text("select 3 as c")
    os.symlink("shared/c.sql", src / "models" / "c_link.sql")
    dest = tmp_path / "slot" / "project"
    seen = [sync(src, dest).fingerprint]
    assert len(seen[0]) == 64
    assert sync(src, dest).fingerprint == seen[0]  # unchanged: the same digest, nothing rewritten

    def changed() -> str:
        now = sync(src, dest).fingerprint
        assert now != seen[-1]
        seen.append(now)
        return now

    model = src / "models" / "a.sql"
    st = model.stat()
    model.write_text("select 9 as a")  # same size, old mtime: only the ctime tells
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed()
    os.utime(dest / "macros" / "m.sql")  # touched in the copy, not in the source
    changed()
    (src / "models" / "new.sql").write_text("select 4")
    changed()
    (src / "models" / "new.sql").unlink()
    assert sync(src, dest).changed == (("removed", "models/new.sql"),)
    seen.append(sync(src, dest).fingerprint)
    assert seen[-1] == seen[-3]  # the same files as before it came: the same digest, rightly
    (src / "models" / "c_link.sql").unlink()
    os.symlink("a.sql", src / "models" / "c_link.sql")  # the same name, aimed elsewhere
    changed()
    assert sync(src, dest).fingerprint == seen[-1]


def test_the_workspace_hands_the_fingerprint_and_the_packages_link_to_walk(tmp_path: Path) -> None:
    src = make_source(tmp_path)
    (src / "packages.yml").write_text("packages: []\n")

    def fake_deps(where: Path) -> None:
        (where / "dbt_packages").mkdir()

    kw = dict(cache_root=tmp_path / "cache", state=STATE, log=lambda s: None)
    with Workspace(src, **kw) as ws:
        first = ws.synced_files()
        assert first is not None and len(first["fingerprint"]) == 64 and first["walk"] == []  # no packages yet
        assert ["added", "models/a.sql"] in first["changed"]  # a fresh copy wrote every file
        ws.install_deps(fake_deps)
        assert ws.synced_files() == {**first, "walk": ["dbt_packages"]}  # the link deps made: walked
    (src / "models" / "a.sql").write_text("select 5 as a")
    with Workspace(src, **kw) as ws:
        again = ws.synced_files()
        assert again is not None and again["fingerprint"] != first["fingerprint"]
        assert again["walk"] == ["dbt_packages"] and again["changed"] == [["changed", "models/a.sql"]]
    assert ws.synced_files() is None  # a workspace that is closed vouches for nothing
