"""Pay, before any task arrives, what dbt's first invocation in a process pays on top of the next.

A warm dbt process started ahead of its task (``manifest-dag prestart``: a pod's dbt process
starts while Airflow starts) has a second or more of nothing to do. Measured on dbt 1.11 (shop
project, one-model ``run``), a first invocation cost 0.5 s against 0.15-0.25 s for the next one,
after importing dbt. The difference, and what ``warm_up`` does about each part:

- dbt's (de)serialisers are generated on first use (mashumaro's lazy compilation): the project,
  package, selector, credentials, relation and result classes, 0.1 s. ``serialisers`` calls each
  one's ``from_dict``/``to_dict`` once; the first call generates the code, the (failing) call
  itself does nothing.
- an adapter's behaviour flags call ``inspect.stack()``, whose first call maps every loaded
  module to its file: 0.12 s. ``stack`` makes that first call.
- modules a node command imports on first use (``TASK_MODULES``), and dbt's scan of ``sys.path``
  for plugin modules, which imports each ``dbt_*`` module it finds.
- decoding ``partial_parse.msgpack`` (seconds at 2,000 models). ``decode`` decodes the prepared
  copy now (rewritten for the folder of the task's workspace, ``root``, as the workspace will
  rewrite it: ``msgpack_paths.relocate``) and hands the result to the first invocation *only if*
  dbt then reads exactly the same bytes with the same decoder (``Handover``); dbt still makes every partial-parsing decision on it
  (vars, profile, project files), so nothing is trusted that dbt would not have checked.

Every step is best effort (these are dbt's internals; a step a dbt version lacks only leaves its
cost to the invocation) and uses no secret: no profile, no
environment, no vars reach this process before the task's own request.

Runs inside a worker venv's Python (stdlib + dbt; see ``dbt_server.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

try:  # a module of manifest_dag (tests) or a script in a worker venv (siblings on sys.path)
    from .msgpack_paths import relocate
except ImportError:  # pragma: no cover - exercised by the server script
    from msgpack_paths import relocate  # type: ignore[no-redef]

Note = Callable[[str], None]

#: (module, class) whose generated (de)serialisers a first node command uses: the project, its
#: packages and selectors (read), the adapter's query comment and relation policy, the nodes dbt
#: serialises for its run (unit tests included) and the result it writes (listed from a first
#: ``build`` on dbt 1.11; ``tests/e2e/test_e2e_warm_up.py`` fails when one is missing). Not listed:
#: manifest.json's classes, which a task writes only when it asks for dbt's artifacts
#: (``DBT_WRITE_JSON``). Whatever this dbt version lacks is skipped.
SERIALISED = (
    ("dbt.contracts.project", ("ProjectFlags", "Project", "PackageConfig", "LocalPackage", "TarballPackage",
                               "GitPackage", "RegistryPackage", "PrivatePackage")),
    ("dbt.contracts.selection", ("SelectorFile", "SelectorDefinition")),
    ("dbt.adapters.contracts.connection", ("QueryComment", "AdapterResponse")),
    ("dbt.adapters.contracts.relation", ("Policy", "Path")),
    ("dbt.contracts.graph.nodes", ("Macro", "UnitTestDefinition", "UnitTestNode")),
    ("dbt.contracts.graph.model_config", ("UnitTestNodeConfig",)),
    ("dbt.artifacts.resources.v1.components", ("InjectedCTE",)),
    ("dbt.artifacts.resources.v1.macro", ("MacroConfig",)),
    ("dbt.artifacts.resources.v1.unit_test_definition", ("UnitTestInputFixture", "UnitTestOutputFixture",
                                                         "UnitTestConfig")),
    ("dbt_common.helper_types", ("WarnErrorOptionsV2", "WarnErrorOptions")),
    ("dbt.artifacts.schemas.results", ("TimingInfo",)),
    ("dbt.artifacts.schemas.run", ("RunResultsArtifact", "RunResultOutput", "RunResultsMetadata")),
    ("dbt.task.test", ("TestResultData",)),
)  # fmt: skip
#: modules a node command imports on first use (listed from ``sys.modules`` after one, dbt 1.11)
TASK_MODULES = ("dbt.task.run", "dbt.task.build", "dbt.task.test", "dbt.task.seed", "dbt.task.snapshot",
                "dbt.parser.manifest", "dbt.compilation", "dbt.graph.selector", "dbt_common.clients.agate_helper",
                "dbt.adapters.__about__", "google.protobuf.descriptor_pb2", "multiprocessing.dummy",
                "_strptime")  # fmt: skip


class Handover:
    """The manifest ``warm_up`` decoded, for the first ``Manifest.from_msgpack`` of the same bytes.

    One-shot: after the first invocation it is dropped whether used or not (a later invocation
    reuses what that one parsed, or parses itself), so the bytes and the object are not held for
    the process's life. dbt mutates the manifest it loaded, so the object is handed out once only.
    """

    def __init__(self) -> None:
        self.raw: bytes | None = None
        self.decoder: Any = None
        self.manifest: Any = None
        self.seconds = 0.0
        self.note: Note = lambda text: None
        self._installed = False

    def offer(self, raw: bytes, decoder: Any, manifest: Any, seconds: float) -> None:
        """Hold what was decoded, and route dbt's decoding through ``take``. Only now: mashumaro
        replaces ``from_msgpack`` with its generated code at the first call (the decode that
        made ``manifest``), which would undo a patch made before."""
        if self._install():
            self.raw, self.decoder, self.manifest, self.seconds = raw, decoder, manifest, seconds

    def take(self, data: Any, decoder: Any) -> Any:
        """The decoded manifest when ``data`` is byte for byte what was decoded ahead, else None."""
        if self.raw is None or decoder is not self.decoder or not isinstance(data, (bytes, bytearray)):
            return None
        if data != self.raw:
            return None
        manifest = self.manifest
        self.note(
            f"warm dbt: used partial_parse.msgpack as decoded before this task arrived ({self.seconds:.2f} s of decoding done ahead)"
        )
        self.drop()
        return manifest

    def drop(self) -> None:
        self.raw = self.decoder = self.manifest = None

    def _install(self) -> bool:
        """Route ``Manifest.from_msgpack`` through ``take``; False when this dbt has no such method."""
        if self._installed:
            return True
        try:
            from dbt.contracts.graph.manifest import Manifest
        except ImportError:
            return False
        original = getattr(Manifest, "from_msgpack", None)
        if original is None:
            return False
        handover = self

        def from_msgpack(cls: Any, data: Any, **kwargs: Any) -> Any:
            if cls is Manifest:
                manifest = handover.take(data, kwargs.get("decoder"))
                if manifest is not None:
                    return manifest
            return original.__func__(cls, data, **kwargs)

        Manifest.from_msgpack = classmethod(from_msgpack)
        self._installed = True
        return True


def _decoder() -> Any:
    """The decoder dbt reads its partial-parse file with (None where this dbt passes none)."""
    try:
        from dbt.parser import manifest as loader
    except ImportError:
        return None
    return getattr(loader, "extended_mashumuro_decoder", None)


def _compile(cls: Any) -> None:
    """Generate ``cls``'s lazily compiled (de)serialisers: their first call does it. The calls
    themselves are expected to fail (an empty dict, an instance without fields)."""
    for call in (lambda: cls.from_dict({}), lambda: cls.to_dict(object.__new__(cls))):
        try:
            call()
        except Exception:  # noqa: BLE001 - the code is generated before the call fails
            pass


def warm_up(
    msgpack: str,
    handover: Handover | None = None,
    root: str | None = None,
    project: str | None = None,
    waiting: Callable[[], bool] = lambda: False,
) -> str:
    """Run the steps above; returns one line saying what each took and what was skipped.

    Once a task is ``waiting`` the remaining steps are left to its invocation, which pays only
    the parts it uses (not every command needs every class, schema or the flat graph's code). The
    order puts first what every node command pays in full: the decode (handed over), the adapter,
    the serialisers, the stack; then what some commands skip.
    """
    started = time.monotonic()
    skipped: list[str] = []
    state: dict[str, Any] = {}

    took: list[str] = []

    def step(fn: Callable[[], None]) -> None:
        if waiting():
            skipped.append(f"{fn.__name__} (a task is waiting)")
            return
        began = time.monotonic()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - best effort, see the module docstring
            skipped.append(f"{fn.__name__}: {type(exc).__name__}")
        took.append(f"{fn.__name__} {time.monotonic() - began:.2f}")

    def modules() -> None:
        import importlib

        for name in TASK_MODULES:
            try:
                importlib.import_module(name)
            except ImportError:
                continue  # not in this dbt version

    def schemas() -> None:
        from dbt.contracts import project

        for name in ("ProjectFlags", "Project", "PackageConfig", "Configuration", "ProfileConfig"):
            cls = getattr(project, name, None)
            if cls is not None:
                cls.json_schema()
        from dbt.contracts.selection import SelectorFile

        SelectorFile.json_schema()

    def serialisers() -> None:
        import importlib

        for module_name, names in SERIALISED:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            for name in names:
                cls = getattr(module, name, None)
                if cls is not None and hasattr(cls, "from_dict"):
                    _compile(cls)

    def decode() -> None:
        from dbt.contracts.graph.manifest import Manifest

        with open(msgpack, "rb") as fh:
            raw = fh.read()
        if root:  # the task's workspace will hold the file rewritten for its folder: decode that
            moved = relocate(raw, root, project)
            if moved is None:
                raise LookupError(f"no files of project {project} in {msgpack}")
            raw = moved[0]
        decoder = _decoder()
        began = time.monotonic()
        manifest = Manifest.from_msgpack(raw, decoder=decoder) if decoder else Manifest.from_msgpack(raw)
        state["manifest"] = manifest
        if handover is not None:
            handover.offer(raw, decoder, manifest, time.monotonic() - began)

    def adapter() -> None:
        import importlib

        from dbt.adapters import factory

        adapter_type = state["manifest"].metadata.adapter_type
        try:
            importlib.import_module(f"dbt.adapters.{adapter_type}.__version__")  # read at connection time
        except ImportError:
            pass
        credentials = factory.load_plugin(adapter_type)  # the credentials class (dbt-adapters)
        credentials.json_schema()
        _compile(credentials)
        plugin = factory.FACTORY.get_plugin_by_name(adapter_type)
        relation = getattr(getattr(plugin, "adapter", None), "Relation", None)
        if relation is not None:
            _compile(relation)

    def flat_graph() -> None:
        # generates the nodes' serialisers; the handed-over manifest keeps the flat graph it had
        manifest = state["manifest"]
        before = manifest.flat_graph
        try:
            manifest.build_flat_graph()
        finally:
            manifest.flat_graph = before

    def plugins() -> None:
        # dbt imports every ``dbt_*`` module on sys.path looking for plugins; the server remembers
        # the scan (manifest_reuse.py), so this is its one scan
        from dbt.plugins.manager import PluginManager

        PluginManager.get_prefixed_modules()

    def stack() -> None:
        import inspect

        inspect.stack()  # maps every loaded module to its file (inspect's cache), once

    step(modules)
    if msgpack:
        step(decode)
        if "manifest" in state:
            step(adapter)
    step(serialisers)
    step(stack)
    step(plugins)
    step(schemas)
    if "manifest" in state:
        step(flat_graph)
    said = f"warm-up: done in {time.monotonic() - started:.2f} s ({', '.join(took)})"
    return said + (f"; skipped {', '.join(skipped)}" if skipped else "")
