"""What the DAG will hold, as plain data, before any Airflow object exists.

Planning is separate from rendering so that the same answer serves the DAG build, the CLI's
``inspect`` and offline tests, and so that one task can be built alone later. No Airflow import.

Rules (see ``docs/concepts.md``):
- models, seeds, snapshots and functions (``dbt build``, the one command that creates them) get
  tasks; ephemeral models, sources (unless freshness is rendered), exposures, saved queries,
  analyses and unselected nodes do not, but the order they imply is kept;
- ``after_each``: a TaskGroup per model with tests (``run`` then ``test``), a plain ``<name>_run``
  task for a model without (``RenderConfig.group_every_model`` groups those too); a seed or
  snapshot is a task of its own, followed by a ``<name>_test`` task when it has tests;
- ``RenderConfig.folder_groups``: models, seeds, snapshots and functions sit in a TaskGroup per
  folder of their ``path``, nested as the folders are (sources and tests of several nodes stay at
  the top);
- a test with several parents (or whose only parent has no task) runs in a task of its own,
  after every rendered node it waits for; tests sharing the same parents share that task; every
  model, seed and snapshot downstream of all its parents waits for that task, as in ``dbt build``
  (``RenderConfig.tests_gate_downstream``).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from manifest_dag.core.config import AssetUriStyle, FrozenMap, RenderConfig, SourceRendering, TestBehavior
from manifest_dag.core.dbt import COMMAND_FOR_TYPE, EXECUTABLE_TYPES, NODE_TYPES, TEST_TYPES, command_args
from manifest_dag.core.errors import ConfigError
from manifest_dag.core.naming import AIRFLOW_MAX_ID, fit_id
from manifest_dag.core.task_settings import OWN_COMMAND_KEYS, NodeSettingsError, node_settings

if TYPE_CHECKING:  # planning needs them; reading a cached plan (a task's parse) does not
    from manifest_dag.scheduler.graph import DbtGraph
    from manifest_dag.scheduler.manifest import DbtNode

log = logging.getLogger(__name__)


#: node types that never get a task of their own, but do when a converter is given for them
#: (``RenderConfig.node_converters``): exposures as sensors, sources as sensors ...
CONVERTIBLE_TYPES = frozenset({"exposure", "source", "saved_query", "semantic_model", "metric", "analysis"})


@dataclass(frozen=True, slots=True)
class DbtNodeView:
    """A node as a converter sees it (``RenderConfig.node_converters``): read-only, and small
    enough to keep in the cached plan, so a task's parse on a worker has it without the manifest."""

    unique_id: str
    resource_type: str
    name: str
    package_name: str
    fqn: tuple[str, ...] = ()
    path: str = ""
    original_file_path: str = ""
    tags: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=FrozenMap)
    config: Mapping[str, Any] = field(default_factory=FrozenMap)
    description: str = ""
    database: str | None = None
    schema: str | None = None
    alias: str | None = None
    depends_on: tuple[str, ...] = ()

    @classmethod
    def of(cls, node: DbtNode) -> DbtNodeView:
        meta = {**node.meta, **(node.config.get("meta") or {})} if node.config.get("meta") else dict(node.meta)
        return cls(
            node.unique_id,
            node.resource_type,
            node.name,
            node.package_name,
            node.fqn,
            node.path,
            node.original_file_path,
            node.tags,
            FrozenMap(meta),
            FrozenMap(node.config),
            node.description,
            node.database,
            node.schema,
            node.alias,
            node.depends_on,
        )

    @property
    def materialized(self) -> str | None:
        value = self.config.get("materialized")
        return value if isinstance(value, str) else None

    def __reduce__(self) -> tuple[type[DbtNodeView], tuple[object, ...]]:
        return DbtNodeView, tuple(getattr(self, f) for f in _VIEW_FIELDS)


_VIEW_FIELDS = tuple(DbtNodeView.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task to create: its id (relative to the DAG or the DbtTaskGroup) and its dbt call."""

    task_id: str
    command: str
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    selector: str | None = None
    indirect_selection: str | None = None
    group_id: str | None = None
    node_ids: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    doc_md: str | None = None
    outlet_uri: str | None = None
    #: Airflow and dbt settings from the nodes' meta and ``RenderConfig.test_task_args``, checked
    #: and plain (``manifest_dag.core.task_settings``); None when there are none
    settings: Mapping[str, Any] | None = None
    #: what the UI shows instead of the id (Airflow's ``task_display_name``); None: the id
    display_name: str | None = None
    #: the node the task is for, as converters see it (only when ``RenderConfig.node_converters``
    #: is given): the node for its own task, the tested node for its test task, else None
    node: DbtNodeView | None = None

    @property
    def kind(self) -> str:
        """What converters are keyed by: ``test`` for test tasks, else the node's resource type."""
        if self.command == "test":
            return "test"
        if self.node is not None:
            return self.node.resource_type
        return "source" if self.command == "source freshness" else self.command

    @property
    def local_id(self) -> str:
        """The id inside its group (what the operator is constructed with)."""
        return self.task_id.rsplit(".", 1)[-1] if self.group_id else self.task_id

    def dbt_args(self) -> list[str]:
        """The dbt argv after ``dbt``: command and selection (flags are added by the operator);
        empty for a task only a converter makes (an exposure's)."""
        if not self.command:
            return []
        return command_args(self.command, self.select, self.exclude, self.selector, self.indirect_selection)

    def __reduce__(self) -> tuple[type[TaskSpec], tuple[object, ...]]:
        """A plain constructor call: slotted dataclasses otherwise unpickle through
        ``dataclasses.fields()`` per object, which made reading a cached plan 10× slower."""
        return TaskSpec, (
            self.task_id,
            self.command,
            self.select,
            self.exclude,
            self.selector,
            self.indirect_selection,
            self.group_id,
            self.node_ids,
            self.upstream,
            self.doc_md,
            self.outlet_uri,
            self.settings,
            self.display_name,
            self.node,
        )


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A TaskGroup: a model's (``node_id``), or a folder's (``node_id`` empty).

    ``group_id`` is the whole dotted id relative to the DAG or the DbtTaskGroup, as Airflow names
    a nested group; ``parent_id`` the group it sits in (created before it in ``RenderPlan.groups``).
    """

    group_id: str
    node_id: str
    tooltip: str = ""
    parent_id: str | None = None
    display_name: str | None = None

    @property
    def local_id(self) -> str:
        """The id inside its parent group (what the TaskGroup is constructed with)."""
        return self.group_id[len(self.parent_id) + 1 :] if self.parent_id else self.group_id

    def __reduce__(self) -> tuple[type[GroupSpec], tuple[str, str, str, str | None, str | None]]:
        return GroupSpec, (self.group_id, self.node_id, self.tooltip, self.parent_id, self.display_name)


@dataclass(frozen=True)
class RenderPlan:
    """The tasks (in dependency order) and groups a selection renders to."""

    tasks: tuple[TaskSpec, ...]
    groups: tuple[GroupSpec, ...] = ()
    _index: dict[str, TaskSpec] = field(default_factory=dict, repr=False, compare=False)
    _group_index: dict[str, GroupSpec] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update((t.task_id, t) for t in self.tasks)
        self._group_index.update((g.group_id, g) for g in self.groups)

    def __len__(self) -> int:
        return len(self.tasks)

    def task(self, task_id: str) -> TaskSpec:
        return self._index[task_id]

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._index

    def group_of(self, task_id: str) -> GroupSpec | None:
        """The TaskGroup a task sits in (None: directly in the DAG or the DbtTaskGroup)."""
        group_id = self._index[task_id].group_id
        return self._group_index.get(group_id) if group_id else None

    def groups_of(self, task_id: str) -> tuple[GroupSpec, ...]:
        """The TaskGroups around a task, outermost first (folders, then the model's group)."""
        chain: list[GroupSpec] = []
        group = self.group_of(task_id)
        while group is not None:
            chain.append(group)
            group = self._group_index.get(group.parent_id) if group.parent_id else None
        return tuple(reversed(chain))

    def edges(self) -> Iterator[tuple[str, str]]:
        for task in self.tasks:
            for up in task.upstream:
                yield up, task.task_id

    def __str__(self) -> str:
        lines = [f"{len(self.tasks)} tasks in {len(self.groups)} groups"]
        for t in self.tasks:
            after = f"  after {', '.join(t.upstream)}" if t.upstream else ""
            what = f"dbt {' '.join(t.dbt_args())}" if t.command else f"converter for {t.kind} {t.node_ids[0]}"
            lines.append(f"  {t.task_id}: {what}{after}")
        return "\n".join(lines)


#: what a test outside a node's own tasks holds back: dbt's non-test nodes that build something
#: (dbt gates the nodes of ``manifest.nodes``; sources and functions live elsewhere and never wait)
_GATED_TYPES = frozenset({"model", "seed", "snapshot"})
#: the nodes ``RenderConfig.folder_groups`` puts in their folders' groups (their ``path`` is
#: relative to the project's model, seed, snapshot or function paths; a source's is not)
_FOLDERED_TYPES = frozenset({"model", "seed", "snapshot", "function"})
#: characters a folder group's whole id leaves free for what sits in it (a model's group and task)
_ROOM_IN_FOLDER = 60


def unrunnable_nodes(graph: DbtGraph, selected: Iterable[str]) -> list[DbtNode]:
    """Nodes of a resource type this release does not know (a newer dbt's), selected or upstream
    of a selected node: ``dbt build`` may run them, the DAG would not, so what reads them fails.

    Every type dbt 1.5-1.12 writes is known: models, seeds, snapshots and functions get tasks,
    tests run as tests, and the rest (sources, exposures, saved queries, semantic models, metrics,
    analyses, hooks) have nothing a ``dbt build`` would run (exposures and saved queries are
    no-ops in it).
    """
    nodes = graph.nodes
    unknown = [n for n in nodes.values() if n.resource_type not in NODE_TYPES]
    if not unknown:
        return []
    chosen = set(selected)
    return [n for n in unknown if n.unique_id in chosen or not chosen.isdisjoint(graph.descendants(n.unique_id))]


def plan_tasks(graph: DbtGraph, selected: Iterable[str], config: RenderConfig, *, id_prefix: int = 0) -> RenderPlan:
    """Turn the selected node ids into the task plan ``config`` asks for.

    ``id_prefix``: the length of the ``<task group>.`` the ids get when rendered into a
    ``DbtTaskGroup``; every id is kept short enough that the whole stays within Airflow's limit.
    """
    planner = _Planner(graph, frozenset(selected), config, EXECUTABLE_TYPES, TEST_TYPES)
    planner.max_id = AIRFLOW_MAX_ID - id_prefix
    return planner.plan()


class _Planner:
    def __init__(
        self,
        graph: DbtGraph,
        selected: frozenset[str],
        config: RenderConfig,
        executable_types: frozenset[str],
        test_types: frozenset[str],
    ) -> None:
        self.executable_types = executable_types
        self.test_types = test_types
        self.graph = graph
        self.nodes = graph.nodes
        self.selected = selected
        self.config = config
        self.naming = config.naming
        self.behavior = TestBehavior(config.test_behavior)
        self.tasks: dict[str, dict] = {}  # task_id -> TaskSpec kwargs, in creation order
        self.groups: list[GroupSpec] = []
        self.exit: dict[str, str] = {}  # node id -> the task its dependents wait for
        self.entry: dict[str, str] = {}  # node id -> the task that waits for its parents
        self.used_ids: set[str] = set()
        self.max_id = AIRFLOW_MAX_ID  # for a plan id, the DbtTaskGroup prefix taken off
        self.extra_parents: dict[str, tuple[str, ...]] = {}  # source -> seeds whose table it names
        self.folder_ids: dict[tuple[str, ...], str | None] = {}  # folders -> their group's id
        self.asset_namespace = self._asset_namespace()
        self._node_settings: dict[str, dict[str, Any]] = {}  # node id -> its checked meta settings
        self.converter_keys = frozenset(config.node_converters)  # resource types and node ids
        self.skippable: set[str] = set()  # seed tasks that may skip themselves (skip_unchanged_seeds)

    # -- per-node settings (meta) ----------------------------------------------------------------
    def _settings(self, uid: str, command: str | None) -> dict[str, Any]:
        """A node's checked settings from its meta (``core.task_settings``), read once per node;
        ``command`` is the one its own task runs (its dbt_flags are checked against it)."""
        found = self._node_settings.get(uid)
        if found is None:
            node = self.nodes[uid]
            found = self._node_settings[uid] = node_settings(
                node.meta, node.config.get("meta"), uid, callbacks=self.config.callbacks, command=command
            )
        return found

    def _own_settings(self, uid: str, command: str | None) -> FrozenMap | None:
        found = self._settings(uid, command)
        return FrozenMap(found) if found else None

    def _test_settings(self, tests: Iterable[str], tested: str | None, task_id: str) -> FrozenMap | None:
        """A test task's settings: the tested node's (but its own dbt flags and full refresh),
        then ``RenderConfig.test_task_args``, then the tests' own meta, which must agree when
        several tests share the task."""
        merged: dict[str, Any] = {}
        if tested is not None:
            base = self._node_settings.get(tested) or {}
            _overlay(merged, {k: v for k, v in base.items() if k not in OWN_COMMAND_KEYS})
        _overlay(merged, self.config.test_task_args)
        own: dict[str, tuple[str, Any]] = {}
        for t in tests:
            for key, value in self._settings(t, "test").items():
                if key in own and own[key][1] != value:
                    raise NodeSettingsError(
                        t,
                        key,
                        f"is {value!r} in this test's meta but {own[key][1]!r} in {own[key][0]}'s; both run "
                        f"in the task {task_id}, so they must agree (or set it on the tested node, or in "
                        "RenderConfig.test_task_args)",
                    )
                own[key] = (t, value)
        _overlay(merged, {k: v for k, (_t, v) in own.items()})
        return FrozenMap(merged) if merged else None

    def _asset_namespace(self) -> str | None:
        """The OpenLineage namespace of ``asset_uri_style="openlineage"`` Asset URIs: given, or
        one that needs no connection details (BigQuery's); else the DAG import fails saying what
        to give (the scheduler reads no profile or Connection)."""
        config = self.config
        if not config.emit_assets or AssetUriStyle(config.asset_uri_style) is not AssetUriStyle.OPENLINEAGE:
            return None
        from manifest_dag.core.openlineage import default_namespace, namespace_form

        adapter = self.graph.manifest.adapter_type
        namespace = config.asset_namespace or default_namespace(adapter)
        if namespace is None:
            raise ConfigError(
                f"RenderConfig.asset_uri_style='openlineage' names Assets after the warehouse: give "
                f"RenderConfig.asset_namespace, for this {adapter or 'unknown'} project {namespace_form(adapter)!r} "
                "(the dbt target's, as OpenLineage names it; the scheduler reads no profile or Connection); "
                "manifest_dag.openlineage_namespace(target_fields) builds it"
            )
        return namespace

    # -- what gets a task --------------------------------------------------------------------------
    def _keeps_package(self, node: DbtNode) -> bool:
        return self.config.include_packages or node.package_name == self.graph.manifest.project_name

    def _renders(self, node: DbtNode) -> bool:
        if not self._keeps_package(node):
            return False
        if node.resource_type in self.executable_types:
            return not node.is_ephemeral
        return (
            node.resource_type == "source"
            and node.has_freshness
            and SourceRendering(self.config.source_rendering) is SourceRendering.FRESHNESS
        )

    def _converts(self, node: DbtNode) -> bool:
        """A node that gets no task of its own, but a converter is given for it (by id or type)."""
        keys = self.converter_keys
        return node.resource_type in CONVERTIBLE_TYPES and bool(
            keys and (node.unique_id in keys or node.resource_type in keys)
        )

    def plan(self) -> RenderPlan:
        order = self.graph.topological_order()
        selected, nodes = self.selected, self.nodes
        tests = [
            u
            for u in order
            if u in selected and nodes[u].resource_type in self.test_types and self._keeps_package(nodes[u])
        ]
        attaches = self.behavior in (TestBehavior.AFTER_EACH, TestBehavior.BUILD)
        # A source's tests gate what reads the source, as in `dbt build`: such a source becomes a
        # unit of its own (its test task), even when its freshness is not rendered.
        tested_sources = set()
        if attaches:
            for t in tests:
                parents = self.graph.test_parents(t)
                if len(parents) == 1 and nodes[parents[0]].resource_type == "source":
                    tested_sources.add(parents[0])
        converted = {u for u in order if u in selected and self._keeps_package(nodes[u]) and self._converts(nodes[u])}
        rendered = [
            u for u in order if (u in selected and self._renders(nodes[u])) or u in tested_sources or u in converted
        ]
        rendered_set = set(rendered)
        self.extra_parents = self._seeds_under_sources(rendered_set)
        waits = self.graph.nearest_rendered(rendered_set, self.extra_parents)
        names = self._unique_names(rendered)

        attached: dict[str, list[str]] = defaultdict(list)
        loose: dict[tuple[str, ...], list[str]] = defaultdict(list)
        if attaches:
            for t in tests:
                parents = self.graph.test_parents(t)
                if len(parents) == 1 and parents[0] in rendered_set:
                    attached[parents[0]].append(t)
                else:
                    loose[parents].append(t)

        for uid in rendered:
            self._add_node(nodes[uid], names[uid], attached.get(uid, ()))
        for uid in rendered:
            entry = self.entry[uid]
            self.tasks[entry]["upstream"].update(self.exit[p] for p in waits[uid])
        loose_tasks = [
            (parents, self._add_loose_tests(parents, group, rendered_set, waits)) for parents, group in loose.items()
        ]
        if loose_tasks and self.config.tests_gate_downstream:
            self._gate_on_tests(loose_tasks, rendered_set)
        if self.behavior is TestBehavior.AFTER_ALL and tests:
            self._add_final_tests(rendered, waits)
        return self._finish()

    def _seeds_under_sources(self, rendered: set[str]) -> dict[str, tuple[str, ...]]:
        """Sources that name a seed's table, each made to wait for that seed (when it has a task),
        so what reads the source runs after the seed is loaded; said in the log, as dbt does not."""
        if not self.config.order_sources_after_seeds:
            return {}
        from manifest_dag.scheduler.graph import sources_over_seeds

        found = sources_over_seeds(self.graph.manifest)
        nodes = self.nodes
        for source, seeds in found.items():
            loaded = [s for s in seeds if s in rendered]
            if not loaded:
                continue
            node = nodes[source]
            log.info(
                "manifest-dag: source %s names the table of seed %s (%s.%s.%s): what reads the source "
                "runs after the seed task, which dbt does not order; "
                "RenderConfig(order_sources_after_seeds=False) turns this off",
                node.label,
                ", ".join(nodes[s].label for s in loaded),
                node.database or "",
                node.schema,
                node.identifier or node.name,
            )
        return found

    # -- ids ---------------------------------------------------------------------------------------
    def _unique_names(self, rendered: list[str]) -> dict[str, str]:
        naming, nodes = self.naming, self.nodes
        base = {u: naming.group_id(nodes[u]) for u in rendered}
        seen: dict[str, int] = defaultdict(int)
        for name in base.values():
            seen[name] += 1
        names: dict[str, str] = {}
        taken: set[str] = set()
        for u in rendered:
            name = base[u] if seen[base[u]] == 1 else naming.qualified_name(nodes[u])
            if name in taken:  # deterministic across processes: the worker re-plans the same DAG
                name = f"{name}_{hashlib.sha1(u.encode()).hexdigest()[:8]}"
            taken.add(name)
            names[u] = name
        return names

    def _claim(self, local: str, reserve: int = 0, parent: str | None = None) -> str:
        """A free id for ``local`` inside group ``parent`` (its whole dotted id), within
        ``max_id`` less ``reserve`` (a group's ``.<task>``). Only ``local`` is shortened, so the
        id keeps its groups' prefix."""
        prefix = f"{parent}." if parent else ""
        try:
            limit = self.max_id - reserve - len(prefix)
            candidate, n = prefix + fit_id(local, limit), 1
            while candidate in self.used_ids:
                n += 1
                candidate = prefix + fit_id(f"{local}_{n}", limit)
        except ValueError as exc:
            raise ConfigError(
                f"task id {prefix + local!r}: {exc}; use a shorter DbtTaskGroup group_id"
                + (" or RenderConfig(folder_groups=False)" if parent and self.config.folder_groups else "")
            ) from None
        self.used_ids.add(candidate)
        return candidate

    def _task(self, local: str, group_id: str | None = None, *, view_of: str | None = None, **spec) -> str:
        task_id = self._claim(local, parent=group_id)
        spec.setdefault("upstream", set())
        if view_of is not None and self.converter_keys:
            spec["node"] = DbtNodeView.of(self.nodes[view_of])
        self.tasks[task_id] = {"task_id": task_id, "group_id": group_id, **spec}
        return task_id

    def _folder_group(self, node: DbtNode) -> str | None:
        """The folder TaskGroup ``node``'s tasks go in (created with its parents on first use),
        or None: not grouping by folder, or the node sits at the top of its paths.

        A folder whose group id would leave less than ``_ROOM_IN_FOLDER`` characters of Airflow's
        limit for what sits in it is not nested further: its nodes go in the deepest that fit.
        """
        if not self.config.folder_groups or node.resource_type not in _FOLDERED_TYPES:
            return None
        folders = self.naming.folders(node, self.graph.manifest.project_name)
        parent: str | None = None
        for depth in range(1, len(folders) + 1):
            key = tuple(folders[:depth])
            if key not in self.folder_ids:
                room = self.max_id - _ROOM_IN_FOLDER - (len(parent) + 1 if parent else 0)
                if room < 12:
                    self.folder_ids[key] = None
                else:
                    gid = self._claim(self.naming.folder_group_id(key[-1]), reserve=_ROOM_IN_FOLDER, parent=parent)
                    self.folder_ids[key] = gid
                    self.groups.append(
                        GroupSpec(
                            group_id=gid,
                            node_id="",
                            tooltip="/".join(key),
                            parent_id=parent,
                            display_name=self.naming.folder_display_name(key),
                        )
                    )
            found = self.folder_ids[key]
            if found is None:
                break
            parent = found
        return parent

    # -- nodes -------------------------------------------------------------------------------------
    def _unselected_tests_of(self, uid: str) -> tuple[str, ...]:
        """Tests of ``uid`` that the selection left out: excluded from its ``dbt test`` too."""
        nodes, graph = self.nodes, self.graph
        return tuple(
            self.naming.dbt_selector(nodes[c])
            for c in graph.children(uid)
            if c not in self.selected and nodes[c].resource_type in self.test_types and len(graph.test_parents(c)) == 1
        )

    def _add_node(self, node: DbtNode, name: str, tests: Iterable[str]) -> None:
        naming, behavior = self.naming, self.behavior
        uid = node.unique_id
        select = (naming.dbt_selector(node),)
        tests = tuple(tests)
        doc = naming.doc_md(node)
        outlet = None
        if self.config.emit_assets and node.resource_type in ("model", "seed", "snapshot"):
            if self.asset_namespace is not None:
                outlet = naming.openlineage_asset_uri(node, self.asset_namespace)
            else:
                outlet = naming.asset_uri(node, self.graph.manifest.adapter_type)
        if node.resource_type == "source":
            self._add_source(node, name, select, tests, doc)
            return
        folder = self._folder_group(node)
        if node.resource_type == "function":
            self._add_function(node, name, tests, doc, folder)
            return
        if node.resource_type in CONVERTIBLE_TYPES:  # an exposure ... that a converter makes a task of
            tid = self._task(
                naming.task_id(name, node.resource_type, False),
                command="",
                node_ids=(uid,),
                doc_md=doc,
                settings=self._own_settings(uid, None),
                view_of=uid,
            )
            self.entry[uid] = self.exit[uid] = tid
            return
        if behavior is TestBehavior.BUILD:
            tid = self._task(
                naming.task_id(name, "build", False),
                folder,
                command="build",
                select=select,
                exclude=self._unselected_tests_of(uid),
                indirect_selection="cautious",
                node_ids=(uid, *tests),
                doc_md=doc,
                outlet_uri=outlet,
                settings=self._own_settings(uid, "build"),
                display_name=naming.task_display_name(node, "build", False),
                view_of=uid,
            )
            self.entry[uid] = self.exit[uid] = tid
            return
        command = COMMAND_FOR_TYPE[node.resource_type]
        # a model's group holds its run and its tests; one without tests is a plain task, unless
        # the user wants every model alike (RenderConfig.group_every_model)
        in_group = (
            behavior is TestBehavior.AFTER_EACH
            and node.resource_type == "model"
            and (bool(tests) or self.config.group_every_model)
        )
        group_id = folder
        if in_group:
            local_ids = (naming.task_id(name, command, True), naming.task_id(name, "test", True))
            group_id = self._claim(name, reserve=1 + max(map(len, local_ids)), parent=folder)
            self.groups.append(
                GroupSpec(
                    group_id=group_id,
                    node_id=uid,
                    tooltip=node.description[:500],
                    parent_id=folder,
                    display_name=naming.group_display_name(node),
                )
            )
        tid = self._task(
            naming.task_id(name, command, in_group),
            group_id,
            command=command,
            select=select,
            node_ids=(uid,),
            doc_md=doc,
            outlet_uri=outlet,
            settings=self._seed_settings(node, self._own_settings(uid, command))
            if command == "seed"
            else self._own_settings(uid, command),
            display_name=naming.task_display_name(node, command, in_group),
            view_of=uid,
        )
        self.entry[uid] = self.exit[uid] = tid
        if command == "seed" and self.config.skip_unchanged_seeds and self._seed_file(node):
            self.skippable.add(tid)
        if tests:
            test_local = naming.task_id(name, "test", in_group)
            test_tid = self._task(
                test_local,
                group_id,
                command="test",
                select=select,
                exclude=self._unselected_tests_of(uid),
                indirect_selection="cautious",
                node_ids=tests,
                doc_md=f"Tests of `{node.unique_id}`",
                upstream={tid},
                settings=self._test_settings(tests, uid, f"{group_id}.{test_local}" if group_id else test_local),
                display_name=naming.task_display_name(node, "test", in_group),
                view_of=uid,
            )
            self.exit[uid] = test_tid

    def _add_function(self, node: DbtNode, name: str, tests: tuple[str, ...], doc: str, folder: str | None) -> None:
        """A function (a UDF, dbt 1.11+): ``dbt build`` is the only command that creates one.

        Its selection is narrowed to functions, since a model or a folder of models may share its
        fully qualified name and ``build`` would build them too. Tests on it (dbt has none so far)
        ride along under ``after_each``/``build``; otherwise ``--indirect-selection empty`` keeps
        ``build`` from running any.
        """
        uid = node.unique_id
        tid = self._task(
            self.naming.task_id(name, "build", False),
            folder,
            command="build",
            display_name=self.naming.task_display_name(node, "build", False),
            select=(f"{self.naming.dbt_selector(node)},resource_type:function",),
            exclude=self._unselected_tests_of(uid) if tests else (),
            indirect_selection="cautious" if tests else "empty",
            node_ids=(uid, *tests),
            doc_md=doc,
            settings=self._own_settings(uid, "build"),
            view_of=uid,
        )
        self.entry[uid] = self.exit[uid] = tid

    def _seed_file(self, node: DbtNode) -> str | None:
        """The CSV a seed task loads, relative to the project folder (a package's seeds: None)."""
        if node.package_name != self.graph.manifest.project_name or not node.original_file_path:
            return None
        return node.original_file_path

    def _seed_settings(self, node: DbtNode, own: FrozenMap | None) -> FrozenMap | None:
        """``skip_unchanged_seeds``: what the seed task needs to decide at run time whether its CSV
        (and the config that shapes its table) changed since its last successful load."""
        path = self._seed_file(node) if self.config.skip_unchanged_seeds else None
        if path is None:
            return own
        shape = {
            k: node.config.get(k)
            for k in ("column_types", "delimiter", "quote_columns", "full_refresh")
            if k in node.config
        }
        shape["relation"] = [node.database, node.schema, node.alias or node.name]
        digest = hashlib.sha256(repr(sorted(shape.items())).encode()).hexdigest()[:16]
        return FrozenMap({**(own or {}), "skip_unchanged": True, "seed_files": (path,), "seed_config": digest})

    def _add_source(self, node: DbtNode, name: str, select: tuple[str, ...], tests: tuple[str, ...], doc: str) -> None:
        """A source: its freshness check (when rendered), then its tests; dependents wait for both."""
        uid = node.unique_id
        first: str | None = None
        if uid in self.selected and self._renders(node):
            first = self._task(
                self.naming.task_id(name, "source freshness", False),
                command="source freshness",
                select=select,
                node_ids=(uid,),
                doc_md=doc,
                settings=self._own_settings(uid, "source freshness"),
                display_name=self.naming.task_display_name(node, "source freshness", False),
                view_of=uid,
            )
        elif uid in self.selected and self._converts(node):  # a converter makes a task of it
            first = self._task(
                self.naming.task_id(name, "source", False),
                command="",
                node_ids=(uid,),
                doc_md=doc,
                settings=self._own_settings(uid, None),
                view_of=uid,
            )
        else:
            self._settings(uid, "source freshness")  # its tests' task inherits them
        last: str | None
        if tests:
            last = self._task(
                self.naming.task_id(name, "test", False),
                command="test",
                select=tuple(self.naming.dbt_selector(self.nodes[t]) for t in tests),
                node_ids=tests,
                doc_md=f"Tests of `{uid}`",
                upstream={first} if first else set(),
                settings=self._test_settings(tests, uid, f"{name}_test"),
                display_name=self.naming.task_display_name(node, "test", False),
                view_of=uid,
            )
        else:
            last = first
        assert last is not None
        self.entry[uid] = first or last
        self.exit[uid] = last

    # -- tests outside model groups ------------------------------------------------------------
    def _add_loose_tests(
        self,
        parents: tuple[str, ...],
        tests: list[str],
        rendered: set[str],
        waits: dict[str, frozenset[str]],
    ) -> str:
        nodes, naming = self.nodes, self.naming
        after: set[str] = set()
        for p in parents:
            after.update((p,) if p in rendered else waits[p])
        test_nodes = [nodes[t] for t in tests]
        task_id = naming.tests_task_id([nodes[p] for p in parents], test_nodes)
        return self._task(
            task_id,
            command="test",
            select=tuple(naming.dbt_selector(t) for t in test_nodes),
            node_ids=tuple(tests),
            doc_md="Tests of " + ", ".join(f"`{p}`" for p in parents) if parents else "Tests",
            upstream={self.exit[u] for u in after},
            settings=self._test_settings(tests, None, task_id),
        )

    def _gate_on_tests(self, loose: list[tuple[tuple[str, ...], str]], rendered: set[str]) -> None:
        """``dbt build``'s rule for tests outside a node's own tasks: such a test holds back every
        model, seed and snapshot downstream of *all* of its parents (dbt-core's ``add_test_edges``).

        A node downstream of only some parents is not held back (dbt's "Drawback 1", kept for the
        same answer as dbt), nor is a node that is itself a parent. Only the first such nodes on
        each path get an edge: the rest wait through them. One pass in topological order, with
        bit sets over the tests' parents (``anc``: which of them a node descends from), the tests a
        node may be held back by (``opened``: one of their parents is above it) and the tests it
        already waits for through a node above it (``covered``).
        """
        bit: dict[str, int] = {}  # a parent of a loose test -> its bit
        opens: dict[str, int] = defaultdict(int)  # a parent -> the loose tests it belongs to
        needs: list[int] = []  # per loose test: the bits of all its parents
        for i, (parents, _task) in enumerate(loose):
            need = 0
            for p in parents:
                need |= bit.setdefault(p, 1 << len(bit))
                opens[p] |= 1 << i
            needs.append(need)
        anc: dict[str, int] = {}
        opened: dict[str, int] = {}
        covered: dict[str, int] = {}
        nodes, pred, test_types = self.nodes, self.graph.pred, self.test_types
        for uid in self.graph.topological_order():
            node = nodes.get(uid)
            if node is None or node.resource_type in test_types:
                continue  # nothing depends on a test
            a = o = c = 0
            for p in (*pred[uid], *self.extra_parents.get(uid, ())):
                a |= anc.get(p, 0) | bit.get(p, 0)
                o |= opened.get(p, 0) | opens.get(p, 0)
                c |= covered.get(p, 0)
            candidates = o & ~c
            if candidates and uid in rendered and node.resource_type in _GATED_TYPES:
                upstream = self.tasks[self.entry[uid]]["upstream"]
                while candidates:
                    low = candidates & -candidates
                    candidates ^= low
                    i = low.bit_length() - 1
                    if needs[i] & ~a == 0:  # below every parent of test i
                        upstream.add(loose[i][1])
                        c |= low
            anc[uid], opened[uid], covered[uid] = a, o, c

    def _add_final_tests(self, rendered: list[str], waits: dict[str, frozenset[str]]) -> None:
        waited_for = set().union(*(waits[u] for u in rendered)) if rendered else set()
        leaves = {self.exit[u] for u in rendered if u not in waited_for}
        config = self.config
        exclude = list(config.exclude)
        if not config.include_packages:
            project = self.graph.manifest.project_name
            exclude += sorted({f"package:{n.package_name}" for n in self.nodes.values() if n.package_name != project})
        tests = tuple(u for u in self.selected if self.nodes[u].resource_type in self.test_types)
        self._task(
            "dbt_test",
            command="test",
            select=tuple(config.select),
            exclude=tuple(exclude),
            selector=config.selector,
            indirect_selection=config.indirect_selection if config.indirect_selection != "eager" else None,
            node_ids=tests,
            doc_md="All selected dbt tests, after every model.",
            upstream=leaves,
            settings=self._test_settings(sorted(tests), None, "dbt_test"),
        )

    def _finish(self) -> RenderPlan:
        specs = []
        for kwargs in self.tasks.values():
            if self.skippable and not self.skippable.isdisjoint(kwargs["upstream"]):
                # a seed left unchanged is skipped: what follows it must still run (a failed seed
                # still stops it); a trigger rule from the node's meta wins
                settings = dict(kwargs.get("settings") or {})
                settings.setdefault("trigger_rule", "none_failed")
                kwargs["settings"] = FrozenMap(settings)
            kwargs["upstream"] = tuple(sorted(kwargs["upstream"]))
            specs.append(TaskSpec(**kwargs))
        return RenderPlan(tasks=tuple(specs), groups=tuple(self.groups))


#: settings merged key by key when both sides set them (a test task's vars add to its node's)
_MERGED_KEYS = frozenset({"dbt_vars", "env", "profile"})


def _overlay(base: dict[str, Any], top: Mapping[str, Any]) -> None:
    for key, value in top.items():
        if key in _MERGED_KEYS and isinstance(base.get(key), Mapping):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
