"""A warm dbt process keeps the project it parsed, so the next task pays only for its own nodes.

At 2,000 models a warm one-model ``dbt run`` spent 7 s decoding ``partial_parse.msgpack``, 11 s
linking the graph and checking it for cycles, and most of a second each on caching every schema's
relations and cutting the selected subgraph out of the whole graph: all of it the same for every
task of an unchanged project. Here, inside the server (dbt's own process), with dbt's documented
``dbtRunner(manifest=...)`` and four narrow patches:

- ``parse_manifest`` is wrapped to keep the manifest dbt parsed (and what it read from the
  environment), with a snapshot of each node's compile state;
- ``Compiler.compile`` returns the graph linked (and cycle-checked) for that same manifest object
  before, once per "with test edges" flavour;
- ``Graph.get_subset_graph`` walks out from the selected nodes instead of pruning the whole graph
  (the same nodes and edges, for selections up to ``_FAST_SUBSET`` nodes);
- ``--cache-selected-only`` is added to node commands that do not decide it themselves, and dbt's
  scan of ``sys.path`` for plugin modules happens once per process.

Before each invocation ``ProjectState`` (``project_state.py``) says whether anything the parse
read has changed; if so the kept manifest is dropped with a note saying why, and dbt parses as
usual (its partial parsing then re-reads only what changed). Compiling writes into the manifest's
nodes (compiled SQL, injected CTEs), which a later invocation must not see: each node's compile
state is put back as the parse left it before the manifest is reused. What this dbt version lacks
turns the feature off with one note; every invocation then parses, as before.

Runs inside a worker venv's Python (stdlib + dbt; see ``dbt_server.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

try:  # a module of manifest_dag (tests) or a sibling of the server script (a worker venv)
    from .project_state import ProjectState
except ImportError:  # pragma: no cover - exercised by the server script
    from project_state import ProjectState  # type: ignore[no-redef]

#: commands that may reuse a kept manifest (the rest parse as dbt would: parse, deps, docs, ...)
REUSING_COMMANDS = frozenset({"run", "test", "seed", "snapshot", "build", "compile", "list", "ls"})
#: node commands whose relation cache need only cover the selected nodes' schemas
_CACHE_COMMANDS = frozenset({"run", "test", "seed", "snapshot", "build"})
#: options under which the manifest is merged with another (defer) or parsed on purpose
_NO_REUSE_OPTIONS = frozenset({"--defer", "--favor-state", "--no-partial-parse", "--full-parse"})
#: per-node fields dbt's compile writes into the manifest (restored before each reuse)
_COMPILE_FIELDS = (
    "compiled",
    "compiled_code",
    "compiled_path",
    "extra_ctes_injected",
    "extra_ctes",
    "_pre_injected_sql",
    "relation_name",
    "_event_status",
)
#: largest selection cut out by walking from it (above, dbt's own pruning of the whole graph)
_FAST_SUBSET = 256

Note = Callable[[str], None]


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


class Kept:
    """One parsed project: its manifest, the state it was parsed from, and its linked graphs.

    Made right after dbt parsed (before anything compiled), so ``pristine`` is each node's
    compile state as the msgpack would give it.
    """

    def __init__(self, manifest: Any, runtime_config: Any) -> None:
        self.manifest = manifest
        self.runtime_config = runtime_config
        self.state: ProjectState | None = None
        self.graphs: dict[bool, Any] = {}
        self.served = 0
        self.pristine = {
            uid: {f: _copy(getattr(node, f)) for f in _COMPILE_FIELDS if hasattr(node, f)}
            for uid, node in manifest.nodes.items()
        }

    def env_names(self) -> set[str]:
        """The env vars this parse read: the files' (manifest), the project's and the profile's."""
        names = set(getattr(self.manifest, "env_vars", None) or {})
        for attr in ("project_env_vars", "profile_env_vars"):
            names |= set(getattr(self.runtime_config, attr, None) or {})
        return names

    def restore(self) -> None:
        """Each node's compile state as the parse left it (a later compile must start clean).

        Only nodes an invocation touched differ (compiling sets ``compiled``, rendering a ref to
        an ephemeral model adds to ``extra_ctes``, running sets ``_event_status``), so the others
        are skipped after three attribute reads: at 5,000 nodes this is milliseconds, not 0.3 s.
        """
        nodes = self.manifest.nodes
        for uid, fields in self.pristine.items():
            node = nodes.get(uid)
            if node is None or not _touched(node, fields):
                continue
            for name, value in fields.items():
                setattr(node, name, _copy(value))


def _touched(node: Any, pristine: dict[str, Any]) -> bool:
    for name in ("compiled", "extra_ctes_injected", "extra_ctes", "_event_status"):
        if name in pristine and getattr(node, name, None) != pristine[name]:
            return True
    return False


def fast_subset(graph: Any, selected: Any, digraph: type) -> Any:
    """The selected nodes, with an edge u→v wherever the graph has a path from u to v through
    unselected nodes only: what dbt's ``get_subset_graph`` returns, found from the selection
    instead of by pruning every other node (O(selected · reach), not O(graph · depth))."""
    include = set(selected)
    new = digraph()
    new.add_nodes_from((n, graph.nodes[n]) for n in graph if n in include)
    for u in list(new):
        seen: set = set()
        stack = list(graph.successors(u))
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            if v in include:
                if v != u and not new.has_edge(u, v):
                    if graph.has_edge(u, v):
                        new.add_edge(u, v, **graph.edges[u, v])
                    else:
                        new.add_edge(u, v)
            else:
                stack.extend(graph.successors(v))
    return new


class ManifestReuse:
    """The kept project of this warm process, and the dbt patches that use it."""

    def __init__(self, note: Note) -> None:
        self.note = note
        self.kept: Kept | None = None
        self.enabled = False
        self.why_off: str | None = None
        self._active: Kept | None = None  # the kept project the current invocation runs on
        self._parsed: list[Kept] = []  # what dbt parsed during the current invocation
        self._state: ProjectState | None = None  # the state read before the current invocation
        self._capturing = False
        self._said_off = False

    # -- set-up ---------------------------------------------------------------------------------
    def install(self, wanted: bool = True) -> None:
        """Patch this dbt, or say (once) why it cannot be done and leave it alone."""
        if not wanted:
            self.why_off = "turned off (MANIFEST_DAG_WARM_KEEP_PROJECT)"
            return
        try:
            import inspect

            import dbt.cli.requires as requires
            from dbt.cli.main import dbtRunner
            from dbt.compilation import Compiler
            from dbt.graph.graph import Graph

            checks = (
                ("dbtRunner(manifest=...)", "manifest" in inspect.signature(dbtRunner.__init__).parameters),
                ("dbt.cli.requires.parse_manifest", callable(getattr(requires, "parse_manifest", None))),
                (
                    "Compiler.compile(manifest, add_test_edges)",
                    _has_params(Compiler.compile, "manifest", "add_test_edges"),
                ),
                ("Graph.get_subset_graph", callable(getattr(Graph, "get_subset_graph", None))),
            )
            missing = [what for what, ok in checks if not ok]
        except Exception as exc:  # noqa: BLE001 - any surprise: today's path
            missing = [f"{type(exc).__name__}: {exc}"]
        if missing:
            self.why_off = "this dbt offers no " + ", ".join(missing)
            return
        self._patch(requires, Compiler, Graph)
        self.enabled = True

    def _patch(self, requires: Any, compiler_cls: Any, graph_cls: Any) -> None:
        reuse = self
        parse_manifest = requires.parse_manifest
        compile_graph = compiler_cls.compile
        subset = graph_cls.get_subset_graph

        def kept_parse_manifest(runtime_config: Any, *args: Any, **kwargs: Any) -> Any:
            manifest = parse_manifest(runtime_config, *args, **kwargs)
            if reuse._capturing:
                reuse._parsed.append(Kept(manifest, runtime_config))
            return manifest

        def kept_compile(self: Any, manifest: Any, write: bool = True, add_test_edges: bool = False) -> Any:
            kept = reuse._active
            if kept is not None and manifest is kept.manifest and add_test_edges in kept.graphs:
                self.initialize()
                return kept.graphs[add_test_edges]
            graph = compile_graph(self, manifest, write=write, add_test_edges=add_test_edges)
            for candidate in (kept, *reuse._parsed):
                if candidate is not None and manifest is candidate.manifest:
                    candidate.graphs[add_test_edges] = graph
            return graph

        def walked_subset(self: Any, selected: Any) -> Any:
            selected = set(selected)
            if len(selected) > _FAST_SUBSET:
                return subset(self, selected)
            return graph_cls(fast_subset(self.graph, selected, type(self.graph)))

        _remember_plugin_modules()
        requires.parse_manifest = kept_parse_manifest
        compiler_cls.compile = kept_compile
        graph_cls.get_subset_graph = walked_subset

    # -- per invocation ---------------------------------------------------------------------------
    def before(self, args: list[str], cwd: str, env: Mapping[str, str], synced: Mapping[str, Any] | None = None) -> Any:
        """The manifest this invocation should run on, or None (dbt parses). May edit ``args``.

        ``synced``: the workspace sync's fingerprint of the project copy (``project_state``)."""
        self._active, self._parsed, self._state, self._capturing = None, [], None, False
        if not self.enabled:
            if self.why_off and not self._said_off:
                self._said_off = True
                self.note(f"warm dbt: not keeping the parsed project between tasks: {self.why_off}")
            return None
        command = args[0] if args else ""
        if command in _CACHE_COMMANDS and not _decides_cache(args, env):
            args.append("--cache-selected-only")
        if command not in REUSING_COMMANDS or any(a.split("=", 1)[0] in _NO_REUSE_OPTIONS for a in args):
            return None
        if _env_off(env, "DBT_PARTIAL_PARSE") or _env_on(env, "DBT_DEFER") or _env_on(env, "DBT_FAVOR_STATE"):
            return None
        kept = self.kept
        state = ProjectState.read(args, cwd, env, kept.env_names() if kept else (), synced=synced)
        if os.path.isfile(os.path.join(state.root, "catalogs.yml")):
            self._drop("the project has catalogs.yml (dbt sets catalogs up only while parsing)")
            return None
        self._state, self._capturing = state, True
        if kept is None or kept.state is None:
            self.note("warm dbt: dbt parses this project (first task in this process); the result is kept for the next")
            return None
        why = state.change_from(kept.state)
        if why is not None:
            self._drop(why)
            return None
        kept.restore()
        kept.served += 1
        self._active = kept
        self.note(
            f"warm dbt: reusing the project parsed in this process ({len(kept.manifest.nodes)} nodes, "
            f"task {kept.served + 1} on it): no msgpack decode, no graph linking"
        )
        return kept.manifest

    def _drop(self, why: str) -> None:
        if self.kept is not None:
            self.note(f"warm dbt: parsing again: {why}; dbt's partial parsing re-reads what changed")
        self.kept = None

    def after(self, env: Mapping[str, str], exception: BaseException | None) -> None:
        """Keep what this invocation parsed (when dbt got through); drop what failed mid-way."""
        active, parsed, state = self._active, self._parsed, self._state
        self._active, self._parsed, self._state, self._capturing = None, [], None, False
        if exception is not None:
            if active is not None or parsed:
                self._drop(f"dbt raised {type(exception).__name__}")
            return
        if active is not None or state is None or len(parsed) != 1:
            return  # reused (still kept), not a reusing command, or no single parse to keep
        kept = parsed[0]
        kept.state = state.with_env_names(env, kept.env_names())
        self.kept = kept


def _remember_plugin_modules() -> None:
    """Look for dbt plugin modules once per process, not once per invocation.

    dbt scans every module on ``sys.path`` for a ``dbt_`` prefix on each invocation (a quarter
    of a second with a large venv); what is installed in a worker venv does not change while
    this process lives.
    """
    try:
        from dbt.plugins.manager import PluginManager
    except ImportError:
        return
    scan = getattr(PluginManager, "get_prefixed_modules", None)
    if scan is None:
        return
    found: dict[str, Any] = {}

    def remembered(cls: Any) -> Any:
        if "modules" not in found:
            found["modules"] = scan()
        return dict(found["modules"])

    PluginManager.get_prefixed_modules = classmethod(remembered)


def _has_params(func: Any, *names: str) -> bool:
    import inspect

    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return all(n in params for n in names)


def _decides_cache(args: list[str], env: Mapping[str, str]) -> bool:
    return (
        "--cache-selected-only" in args
        or "--no-cache-selected-only" in args
        or "--no-populate-cache" in args
        or "DBT_CACHE_SELECTED_ONLY" in env
    )


def _env_on(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_off(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("0", "false", "no", "off")
