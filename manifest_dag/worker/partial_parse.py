"""``partial_parse.msgpack``: what dbt checks before reusing it, and moving it to another folder.

Without the file every task re-parses the whole project (seconds for a small project, minutes for
a large one). dbt reuses it only when it was written by the same dbt version with the same vars,
profile, target and connection (``ParseState`` keys the kept copies by exactly that). The
project's absolute path is baked into it too, and dbt does *not* notice a move: it silently keeps
the old paths, so a copy made for one folder is rewritten for another (``relocate_msgpack``).
Reading its version needs only the file's header (``msgpack_dbt_version``).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import orjson

from manifest_dag.core.errors import WorkspaceError
from manifest_dag.core.files import create_private
from manifest_dag.core.secrets import is_secret_name
from manifest_dag.worker.in_venv.msgpack_paths import relocate

PARTIAL_PARSE = "partial_parse.msgpack"

#: what decoding a corrupt msgpack can raise: a bad format (ValueError and msgpack's own errors), a
#: map or array used as a map key (TypeError: unhashable), nesting deeper than Python recurses
_UNREADABLE = (ValueError, TypeError, RecursionError, msgpack.UnpackException)


class UnreadableMsgpack(ValueError):
    """A ``partial_parse.msgpack`` that cannot be decoded; callers skip it, dbt re-parses."""


def msgpack_dbt_version(path: Path) -> str | None:
    """The dbt version that wrote a ``partial_parse.msgpack``, reading only its header.

    The file is a map whose ``metadata`` entry holds ``dbt_version``; the other entries (the bulk
    of the file) are skipped without being decoded.
    """
    try:
        with path.open("rb") as fh:
            unpacker = msgpack.Unpacker(fh, raw=False, strict_map_key=False)
            for _ in range(unpacker.read_map_header()):
                key = unpacker.unpack()
                if key == "metadata":
                    meta = unpacker.unpack()
                    version = meta.get("dbt_version") if isinstance(meta, dict) else None
                    return version if isinstance(version, str) else None
                unpacker.skip()
    except (OSError, *_UNREADABLE):
        return None
    return None


@dataclass(frozen=True, slots=True)
class ParseState:
    """What dbt checks before it reuses a msgpack, besides the files themselves."""

    dbt_version: str | None
    profile_name: str | None
    target_name: str | None
    vars_json: str
    #: a digest of the target's non-secret connection fields (``target.connection_fingerprint``)
    connection: str = ""

    def key(self, project: Path) -> str:
        parts = [str(project), self.dbt_version, self.profile_name, self.target_name, self.vars_json]
        if self.connection:
            parts.append(self.connection)
        return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:20]


def canonical_vars(dbt_vars: Mapping[str, Any] | str | None) -> str | None:
    """``--vars`` as canonical JSON: same values give the same text, so partial parse survives."""
    if dbt_vars is None or dbt_vars == {} or dbt_vars == "":
        return None
    if isinstance(dbt_vars, str):
        return dbt_vars
    try:
        return orjson.dumps(dict(dbt_vars), option=orjson.OPT_SORT_KEYS).decode()
    except TypeError as exc:
        raise WorkspaceError(f"dbt_vars must be JSON-serialisable: {exc}") from None


def relocate_msgpack(source: Path, dest: Path, new_root: Path, project_name: str | None) -> str | None:
    """Copy a msgpack to ``dest`` with the root project's folder rewritten to ``new_root``.

    Every string equal to the old folder, or below it, is rewritten; nothing else changes. Returns
    the old folder (None when it could not be found: then the file is not placed at all, since a
    msgpack with stale paths is worse than none). A file that cannot be decoded raises
    :class:`UnreadableMsgpack` (a ValueError), whatever the corruption.
    """
    raw = source.read_bytes()
    try:
        moved = relocate(raw, str(new_root), project_name)
    except _UNREADABLE as exc:  # a corrupt file, or nesting deeper than the walk can recurse
        raise UnreadableMsgpack(f"{source} is not a readable partial_parse.msgpack ({exc})") from None
    if moved is None:
        return None
    with create_private(dest) as out:  # it holds the values of env vars: 0600
        out.write(moved[0])
    return moved[1]


def msgpack_state_check(path: Path) -> dict[str, Any] | None:
    """The ``state_check`` a msgpack records (dbt's hashes of vars and flags, profile, env vars and
    each ``dbt_project.yml``), reading past the rest of the file without decoding it."""
    try:
        with path.open("rb") as fh:
            unpacker = msgpack.Unpacker(fh, raw=False, strict_map_key=False)
            for _ in range(unpacker.read_map_header()):
                if unpacker.unpack() == "state_check":
                    found = unpacker.unpack()
                    return found if isinstance(found, dict) else None
                unpacker.skip()
    except (OSError, *_UNREADABLE):
        return None
    return None


def dbt_vars_checksum(vars_json: str | None, profile: str | None, target: str | None, dbt_version: str) -> str:
    """What dbt records as ``state_check.vars_hash``: the ``--vars``, ``--profile`` and ``--target``
    it was given and its version (dbt-core's ``build_manifest_state_check``, 1.5-1.11)."""
    import pprint

    import yaml

    try:
        cli_vars = yaml.safe_load(vars_json) if vars_json else {}
    except yaml.YAMLError as exc:
        raise ValueError(f"--vars is not YAML: {exc}") from None
    text = "\x00".join([pprint.pformat(cli_vars or {}), profile or "", target or "", dbt_version])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class PlacedMsgpack:
    """The msgpack a task gave dbt: where it came from, a file holding what was placed (dbt may
    rewrite the copy in ``target/``), and whether this worker kept it for the same ``ParseState``."""

    label: str
    path: Path | None
    kept: bool


#: dbt's reasons (``Unable to do partial parsing because <reason>``) and what dbt compares for each
_REASONS = (
    ("version mismatch", "the dbt version (ParseState.dbt_version)"),
    ("config vars, config profile, or config target", "--vars, --profile and --target"),
    ("profile has changed", "the target's connection fields (ParseState.connection)"),
    ("env vars used in dbt_project.yml", "the env vars dbt_project.yml reads (not in ParseState)"),
    ("project dependency", "the installed packages (not in ParseState)"),
    ("project config has changed", "dbt_project.yml of the project or a package (not in ParseState)"),
)


def explain_reparse(
    reason: str,
    *,
    state: ParseState,
    placed: PlacedMsgpack | None,
    profile_args: Sequence[str] = (),
    target_fields: Mapping[str, Any] | None = None,
) -> str:
    """Which of manifest-dag's ``ParseState`` fields differ from the msgpack's, where that can be
    told, for dbt's reason of not reusing partial parsing; else what dbt compared and what to do.

    The vars hash can be checked exactly: dbt hashes ``--vars``, ``--profile``, ``--target`` and its
    version, so the msgpack's recorded hash is tried against this task's values with each of the
    three left out, as a ``dbt parse`` without them would have written it. The profile hash covers
    the adapter's connection fields, which only the adapter knows: the target's non-secret fields
    are named (for DuckDB, ``path`` is the usual one), not compared.
    """
    compared = next((what for key, what in _REASONS if key in reason), "what dbt compares")
    args = list(profile_args)
    profile_flag = args[args.index("--profile") + 1] if "--profile" in args[:-1] else None
    target_flag = args[args.index("--target") + 1] if "--target" in args[:-1] else None
    source = f"the msgpack from {placed.label}" if placed else "the msgpack"
    if placed is not None and placed.kept:
        return (
            f"{source} was kept for the same parse state (dbt {state.dbt_version}, profile "
            f"{state.profile_name}, target {state.target_name}, the same vars and connection fields), "
            f"so dbt's check of {compared} moved on something manifest-dag does not see (a value "
            "dbt fills in or resolves itself, an env var only dbt reads); the worker keeps the new one"
        )
    if "config vars, config profile, or config target" in reason and placed is not None and placed.path:
        differ = _vars_fields_that_differ(placed.path, state, profile_flag, target_flag)
        if differ:
            return f"{source} was written with {', '.join(differ)}; run the `dbt parse` that writes it with the same"
    if "profile has changed" in reason:
        names = sorted(str(k) for k in (target_fields or {}) if not is_secret_name(str(k)))
        fields = f" ({', '.join(names)})" if names else ""
        return (
            f"{source} was written for another connection: dbt hashes the target's resolved fields{fields}, "
            f"such as a DuckDB path; run the `dbt parse` that writes it with target {state.target_name}'s "
            "values as the workers resolve them (the worker keeps its own copy after a good run)"
        )
    return f"{source} differs in {compared}: keep it the same as when the msgpack was written"


def _vars_fields_that_differ(
    path: Path, state: ParseState, profile_flag: str | None, target_flag: str | None
) -> list[str]:
    """The ParseState fields whose value at ``dbt parse`` time explains the msgpack's vars hash,
    trying each of this task's ``--vars``/``--profile``/``--target`` left out; [] if none does."""
    check = msgpack_state_check(path)
    vars_hash = check.get("vars_hash") if check else None
    recorded = vars_hash.get("checksum") if isinstance(vars_hash, dict) else None
    if not recorded or not state.dbt_version:
        return []
    given = {"vars_json": state.vars_json or None, "profile_name": profile_flag, "target_name": target_flag}
    options = [name for name, value in given.items() if value]
    for size in range(1, len(options) + 1):
        for left_out in itertools.combinations(options, size):
            tried = {k: (None if k in left_out else v) for k, v in given.items()}
            try:
                checksum = dbt_vars_checksum(
                    tried["vars_json"], tried["profile_name"], tried["target_name"], state.dbt_version
                )
            except ValueError:  # vars that are not YAML: nothing to compare
                return []
            if checksum == recorded:
                return [_LEFT_OUT[k](given[k]) for k in left_out]
    return []


_LEFT_OUT = {
    "vars_json": lambda _v: "no --vars (this task passes dbt_vars: ParseState.vars_json)",
    "profile_name": lambda v: f"no --profile (this task passes --profile {v}: ParseState.profile_name)",
    "target_name": lambda v: f"no --target (this task passes --target {v}: ParseState.target_name)",
}
