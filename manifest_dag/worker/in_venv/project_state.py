"""What a parsed dbt project depends on, as a warm dbt process can check it in milliseconds.

A warm process keeps the manifest it parsed (``dbt_server.py``) and gives it to the next
invocation of the same project instead of letting dbt decode ``partial_parse.msgpack`` and parse
again. That is right only while nothing the parse read has changed. dbt's own check (read every
file, hash it, compare with the msgpack) costs most of a second at 2,000 models; this one stats the
project copy instead, which the workspace keeps in sync with the source (any rewrite there changes
a file's ctime, which no copy can fake). What counts, following dbt's ``ManifestStateCheck`` and
partial-parsing rules, with a margin:

- every file under the project folder (and its installed packages, through the ``dbt_packages``
  symlink) except dbt's own outputs (target and log paths): path, size, mtime, ctime, inode;
  or, when the task's workspace sync vouches for the copy (``synced``), its fingerprint instead:
  the sync has just stat-ed every file it copied, recorded each one's (size, mtime, ctime, inode)
  and rewritten any that differed, so the fingerprint of that record changes exactly when the
  walk's result would; walking the copy again cost the server as much as the sync itself (a
  tenth of a warm task at 2,000 models). What the sync does not cover (the link to the worker's
  installed packages, made after it) is still walked;
- the profile: ``profiles.yml``'s bytes (dbt keys on the connection's fields and target);
- the command-line values that reach the parse: ``--vars``, ``--target``, ``--profile``;
- the values of the env vars the parse read (the manifest's ``env_vars`` and the project's and
  profile's, recorded after each parse), and of dbt's ``DBT_*`` settings except those that only
  change how a run behaves or prints.

Runs inside a worker venv's Python with the standard library only (see ``dbt_server.py``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: dbt settings read from the environment that change how a run behaves or prints, not the parse
_RUNTIME_ONLY = frozenset(
    {
        "DBT_WRITE_JSON",
        "DBT_SEND_ANONYMOUS_USAGE_STATS",
        "DBT_USE_COLORS",
        "DBT_USE_COLORS_FILE",
        "DBT_PRINTER_WIDTH",
        "DBT_QUIET",
        "DBT_DEBUG",
        "DBT_LOG_LEVEL",
        "DBT_LOG_LEVEL_FILE",
        "DBT_LOG_FORMAT",
        "DBT_LOG_FORMAT_FILE",
        "DBT_LOG_PATH",
        "DBT_LOG_CACHE_EVENTS",
        "DBT_FULL_REFRESH",
        "DBT_FAIL_FAST",
        "DBT_THREADS",
        "DBT_INVOCATION_ENV",
        "DBT_CACHE_SELECTED_ONLY",
        "DBT_POPULATE_CACHE",
        "DBT_INTROSPECT",
        "DBT_WARN_ERROR",
        "DBT_WARN_ERROR_OPTIONS",
        "DBT_PRINT",
        "DBT_TARGET_PATH",  # the target folder is left out of the walk; its path changes no node
    }
)
#: dbt never records these (it scrubs them); a rotated credential must not drop what is kept
_SECRET_PREFIX = "DBT_ENV_SECRET_"
#: parse-relevant options and their short forms
_PARSE_OPTIONS = (("--vars",), ("--target", "-t"), ("--profile",))
_SKIP_ANYWHERE = frozenset({"__pycache__"})

FileStat = tuple[int, int, int, int, str]
#: the files entry that stands for the workspace sync's record of the copy (see the module doc)
SYNCED_KEY = "<the files the workspace sync copied>"


def option(args: Sequence[str], *names: str) -> str | None:
    """The value given to ``names`` in ``args`` (``--x v`` or ``--x=v``; the last one wins)."""
    found = None
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                found = args[i + 1]
            elif arg.startswith(name + "="):
                found = arg[len(name) + 1 :]
    return found


def project_root(args: Sequence[str], cwd: str, env: Mapping[str, str]) -> str:
    given = option(args, "--project-dir") or env.get("DBT_PROJECT_DIR") or cwd
    return os.path.realpath(os.path.join(cwd, given))


def _profiles_file(args: Sequence[str], cwd: str, env: Mapping[str, str], root: str) -> str:
    given = option(args, "--profiles-dir") or env.get("DBT_PROFILES_DIR")
    if given:
        return os.path.join(cwd, given, "profiles.yml")
    if os.path.isfile(os.path.join(root, "profiles.yml")):
        return os.path.join(root, "profiles.yml")
    return os.path.join(os.path.expanduser("~"), ".dbt", "profiles.yml")


def _outputs(args: Sequence[str], cwd: str, env: Mapping[str, str], root: str) -> set[str]:
    """dbt's output folders (real paths) to leave out of the walk."""
    target = option(args, "--target-path") or env.get("DBT_TARGET_PATH") or "target"
    logs = option(args, "--log-path") or env.get("DBT_LOG_PATH") or "logs"
    return {os.path.realpath(os.path.join(root, p)) for p in (target, logs)}


#: dbt's defaults for the folders it reads (docs-paths default to all of them)
_DEFAULT_PATHS = {
    "model-paths": ["models"],
    "seed-paths": ["seeds"],
    "macro-paths": ["macros"],
    "snapshot-paths": ["snapshots"],
    "analysis-paths": ["analyses"],
    "test-paths": ["tests"],
    "docs-paths": [],
    "asset-paths": [],
    "function-paths": ["functions"],
}
#: files at the project's top level that dbt reads
_TOP_FILES = ("dbt_project.yml", "packages.yml", "dependencies.yml", "package-lock.yml", "selectors.yml")


def read_paths(root: str) -> list[str] | None:
    """The top-level entries dbt reads in the project at ``root`` (from its ``dbt_project.yml``),
    or None when that cannot be told (no YAML library, Jinja in a path): then walk everything."""
    try:
        import yaml

        with open(os.path.join(root, "dbt_project.yml"), "rb") as fh:
            project = yaml.safe_load(fh) or {}
    except Exception:  # noqa: BLE001 - unreadable here: dbt will say why; walk everything
        return None
    if not isinstance(project, dict):
        return None
    out: list[str] = list(_TOP_FILES)
    for key, default in _DEFAULT_PATHS.items():
        value = project.get(key, default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None
        out.extend(value)
    packages = project.get("packages-install-path", "dbt_packages")
    if not isinstance(packages, str):
        return None
    out.append(packages)
    if any("{{" in p or "{%" in p for p in out):
        return None
    return out


def walk(root: str, skip: set[str], only: Iterable[str] | None = None) -> dict[str, FileStat]:
    """Every file under ``root`` (or under its entries ``only``), through symlinked folders once
    each, and its stat tuple."""
    out: dict[str, FileStat] = {}
    seen: set[tuple[int, int]] = set()

    def visit(folder: str, rel: str) -> None:
        try:
            st = os.stat(folder)
        except OSError:
            return
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            name = rel + entry.name
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                if entry.name in _SKIP_ANYWHERE or os.path.realpath(entry.path) in skip:
                    continue
                visit(entry.path, name + "/")
                continue
            link = ""
            try:
                if entry.is_symlink():
                    link = os.readlink(entry.path)
                s = entry.stat()
                out[name] = (s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino, link)
            except OSError:
                out[name] = (-1, 0, 0, 0, link)  # dangling: its appearing later is a change

    if only is None:
        visit(root, "")
        return out
    for entry in dict.fromkeys(os.path.normpath(p) for p in only):
        path = os.path.join(root, entry)
        rel = os.path.relpath(path, root)
        if rel == "." or os.path.realpath(path) in skip:
            continue
        if os.path.isdir(path):
            visit(path, rel + "/")
        elif os.path.lexists(path):
            try:
                s = os.stat(path)
                out[rel] = (s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino, "")
            except OSError:
                out[rel] = (-1, 0, 0, 0, "")
    return out


def _digest(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return ""


@dataclass(frozen=True)
class ProjectState:
    """What one parse of a project depended on; two are equal when the parse would be the same."""

    root: str
    files: dict[str, FileStat] = field(repr=False)
    profile: str
    options: tuple[str | None, ...]
    env: tuple[tuple[str, str | None], ...]
    #: the copy's paths the task's workspace sync changed, added or removed, as (how, path)
    #: (only to say why, never compared)
    sync_changed: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @classmethod
    def read(
        cls,
        args: Sequence[str],
        cwd: str,
        env: Mapping[str, str],
        env_names: Iterable[str] = (),
        synced: Mapping[str, object] | None = None,
    ) -> ProjectState:
        root = project_root(args, cwd, env)
        outputs = _outputs(args, cwd, env, root)
        fingerprint = synced.get("fingerprint") if synced else None
        if isinstance(fingerprint, str) and fingerprint:
            walk_only = synced.get("walk") if synced else None
            entries = [w for w in walk_only if isinstance(w, str)] if isinstance(walk_only, list) else []
            files = walk(root, outputs, entries) if entries else {}
            files[SYNCED_KEY] = (0, 0, 0, 0, fingerprint)
            changed = synced.get("changed") if synced else None
            sync_changed = tuple(
                (str(c[0]), str(c[1])) for c in (changed if isinstance(changed, list) else ()) if len(c) == 2
            )
        else:
            sync_changed = ()
            files = walk(root, outputs, read_paths(root))
        names = set(env_names) | {
            k for k in env if k.startswith("DBT_") and k not in _RUNTIME_ONLY and not k.startswith(_SECRET_PREFIX)
        }
        return cls(
            root=root,
            files=files,
            profile=_digest(_profiles_file(args, cwd, env, root)),
            options=tuple(option(args, *names) for names in _PARSE_OPTIONS),
            env=tuple(sorted((n, env.get(n)) for n in names if not n.startswith(_SECRET_PREFIX))),
            sync_changed=sync_changed,
        )

    def with_env_names(self, env: Mapping[str, str], names: Iterable[str]) -> ProjectState:
        """The same state, also keyed by ``names`` (the env vars the parse turned out to read)."""
        merged = dict(self.env)
        merged.update((n, env.get(n)) for n in names if not n.startswith(_SECRET_PREFIX))
        return ProjectState(
            self.root, self.files, self.profile, self.options, tuple(sorted(merged.items())), self.sync_changed
        )

    def env_names(self) -> list[str]:
        return [n for n, _ in self.env]

    def change_from(self, old: ProjectState) -> str | None:
        """What differs from ``old``, in words (names only: values may be secrets), or None."""
        if self.root != old.root:
            return f"another project folder ({self.root})"
        found: list[str] = []
        if self.options != old.options:
            names = [n[0] for n, a, b in zip(_PARSE_OPTIONS, self.options, old.options, strict=True) if a != b]
            found.append("dbt's " + ", ".join(names) + " changed")
        if self.profile != old.profile:
            found.append("profiles.yml changed")
        if self.env != old.env:
            now, before = dict(self.env), dict(old.env)
            found.append(
                "env var "
                + _some(sorted(n for n in now.keys() | before.keys() if now.get(n) != before.get(n)))
                + " changed"
            )
        if self.files != old.files:
            added = sorted(self.files.keys() - old.files.keys())
            removed = sorted(old.files.keys() - self.files.keys())
            changed = sorted(k for k in self.files.keys() & old.files.keys() if self.files[k] != old.files[k])
            if SYNCED_KEY in changed and self.sync_changed:  # name the files, as the walk would
                changed.remove(SYNCED_KEY)
                for how, names in (("changed", changed), ("added", added), ("removed", removed)):
                    names.extend(sorted(path for h, path in self.sync_changed if h == how))
            parts = [
                f"{label} {_some(names)}"
                for label, names in (("changed", changed), ("added", added), ("removed", removed))
                if names
            ]
            found.append("project files " + ", ".join(parts))
        return "; ".join(found) or None


def _some(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
