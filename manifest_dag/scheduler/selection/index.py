"""Lookup structures over one manifest that the selection methods share, built lazily.

A DAG file calls ``select_nodes`` many times against one manifest (once per task group, once per
test scope ...), and a 25k-node manifest takes tens of milliseconds to index. So each index
(adjacency, nodes by type, fqn names, root-project paths, patch paths) is built the first time a
method asks for it and kept while the manifest object is alive in a small cache.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from manifest_dag.core.dbt import NODE_TYPES
from manifest_dag.core.errors import SelectionError

if TYPE_CHECKING:  # pragma: no cover
    from manifest_dag.scheduler.graph import DbtGraph
    from manifest_dag.scheduler.manifest import DbtNode, Manifest

#: fqn: matches every node but sources (exposures, metrics, unit tests... included).
FQN_TYPES = NODE_TYPES - {"source"}

# Small on purpose: an entry keeps its manifest alive, and the indexes are cheap to rebuild
# (tens of milliseconds on a 25k-node manifest); it pays for repeated calls while one DAG is built.
_CACHE: dict[int, ManifestIndex] = {}
_CACHE_SIZE = 2


def index_for(manifest: Manifest, graph: DbtGraph | None) -> ManifestIndex:
    """The (cached) index of ``manifest``, using ``graph``'s adjacency when one is given."""
    index = _CACHE.get(id(manifest))
    if index is None or index.manifest is not manifest:
        index = ManifestIndex(manifest)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[id(manifest)] = index
    if graph is not None:
        if graph.manifest is not manifest and graph.manifest.nodes.keys() != manifest.nodes.keys():
            raise SelectionError(
                "the graph passed to select_nodes was built from another manifest; pass "
                "DbtGraph(manifest) for the same manifest, or no graph."
            )
        index.use_graph(graph)
    return index


class ManifestIndex:
    """Indexes over one manifest: node families, name lookups, adjacency, paths."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.nodes: Mapping[str, DbtNode] = manifest.nodes
        self.project = manifest.project_name
        self.selectors: Mapping[str, Any] = manifest.selectors or {}
        self._pred: Mapping[str, Iterable[str]] | None = None
        self._succ: Mapping[str, Iterable[str]] | None = None
        self._by_type: dict[str, list[DbtNode]] | None = None
        self._fqn_simple: dict[str, set[str]] | None = None
        self._paths: tuple[frozenset[str], frozenset[str]] | None = None
        self._patch_paths: dict[str, str] | None = None
        self._node_paths: list[tuple[str, str, tuple[str, ...]]] | None = None
        self._sources: frozenset[str] | None = None

    # -- adjacency --------------------------------------------------------------------------
    def use_graph(self, graph: DbtGraph) -> None:
        self._pred, self._succ = graph.pred, graph.succ  # its own adjacency: no networkx graph built

    @property
    def pred(self) -> Mapping[str, Iterable[str]]:
        if self._pred is None:
            self._build_adjacency()
        assert self._pred is not None
        return self._pred

    @property
    def succ(self) -> Mapping[str, Iterable[str]]:
        if self._succ is None:
            self._build_adjacency()
        assert self._succ is not None
        return self._succ

    def _build_adjacency(self) -> None:
        nodes = self.nodes
        pred: dict[str, tuple[str, ...]] = {}
        succ: dict[str, list[str]] = {uid: [] for uid in nodes}
        for uid, node in nodes.items():
            parents = tuple(p for p in node.depends_on if p in nodes)
            pred[uid] = parents
            for p in parents:
                succ[p].append(uid)
        self._pred, self._succ = pred, succ

    # -- families ---------------------------------------------------------------------------
    def of_types(self, types: Collection[str]) -> Iterable[DbtNode]:
        if self._by_type is None:
            by_type: dict[str, list[DbtNode]] = {}
            for node in self.nodes.values():
                by_type.setdefault(node.resource_type, []).append(node)
            self._by_type = by_type
        for t in types:
            yield from self._by_type.get(t, ())

    def all_nodes(self) -> Iterable[DbtNode]:
        return self.nodes.values()

    @property
    def source_ids(self) -> frozenset[str]:
        if self._sources is None:
            self._sources = frozenset(n.unique_id for n in self.of_types(("source",)))
        return self._sources

    # -- fqn --------------------------------------------------------------------------------
    @property
    def fqn_simple(self) -> dict[str, set[str]]:
        """For a plain one-part name: every node that ``fqn:<name>`` selects, by name."""
        if self._fqn_simple is None:
            index: dict[str, set[str]] = {}
            for node in self.of_types(FQN_TYPES):
                for key in _fqn_simple_keys(node):
                    index.setdefault(key, set()).add(node.unique_id)
            self._fqn_simple = index
        return self._fqn_simple

    # -- paths ------------------------------------------------------------------------------
    def root_paths(self) -> tuple[frozenset[str], frozenset[str]]:
        """Files and folders of the root project that its nodes show to exist."""
        if self._paths is None:
            files: set[str] = set()
            dirs: set[str] = set()
            for _, path, parents in self.node_paths():
                files.add(path)
                dirs.update(parents)
            self._paths = (frozenset(files), frozenset(dirs))
        return self._paths

    def node_paths(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(unique id, original_file_path, its folders) for the root project's nodes.

        Paths are relative to the root project, and a package node's ``original_file_path`` is
        relative to its package, so package nodes never match a ``path:`` (dbt ignores them too).
        """
        if self._node_paths is None:
            out = []
            for uid, node in self.nodes.items():
                if node.original_file_path and node.package_name == self.project:
                    path = _norm_path(node.original_file_path)
                    out.append((uid, path, _parents(path)))
            self._node_paths = out
        return self._node_paths

    def patch_paths(self) -> dict[str, str]:
        """unique id → the YAML file that documents the node (``patch_path`` without ``pkg://``)."""
        if self._patch_paths is None:
            self._patch_paths = _read_patch_paths(self.manifest)
        return self._patch_paths


def _fqn_simple_keys(node: DbtNode) -> set[str]:
    fqn = node.fqn
    keys: set[str] = set()
    if not fqn:
        return keys
    if node.version is not None and len(fqn) >= 2:
        keys.add(fqn[-2])
        keys.add(f"{fqn[-2]}_{fqn[-1]}")
    else:
        keys.add(fqn[-1])
    keys.add(fqn[0].split(".")[0])
    if len(fqn) > 1:
        keys.add(fqn[1].split(".")[0])
    return keys


def _norm_path(path: str) -> str:
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def _parents(path: str) -> tuple[str, ...]:
    """The folders holding ``path``, outermost first: a/b/c.sql → (a, a/b)."""
    if "/" not in path:
        return ()
    return _folders(path.rsplit("/", 1)[0])


@lru_cache(maxsize=16384)
def _folders(folder: str) -> tuple[str, ...]:
    if "/" not in folder:
        return (folder,)
    return (*_folders(folder.rsplit("/", 1)[0]), folder)


def _read_patch_paths(manifest: Manifest) -> dict[str, str]:
    """unique id → the YAML file documenting the node, from ``DbtNode.patch_path``."""
    out: dict[str, str] = {}
    for uid, node in manifest.nodes.items():
        value = node.patch_path
        if value:
            out[uid] = _norm_path(value.split("://", 1)[-1])
    return out
