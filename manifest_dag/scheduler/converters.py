"""Converters: the DAG author's own task for a node, instead of the default one.

``RenderConfig(node_converters={key: converter})``, where ``key`` is a resource type (``"seed"``,
``"exposure"``, ``"test"`` ...) or a node's unique id, and::

    def converter(node: DbtNodeView, default: DefaultTask) -> BaseOperator | TaskGroup | None

``node`` is the node as the plan keeps it (read-only; the tested node for a test task, None for
the one ``after_all`` test task); ``default`` is the task the renderer would create: its operator
class and keyword arguments, with ``build()`` to create it (another class, other arguments) and
``airflow_kwargs`` for any other operator (id, group, DAG, docs, the node's pool, retries ...).
Returning ``None`` drops the task: what waited for it waits for what it waited for. A converter is
called wherever the task is built: in the DAG processor, and in a task's own parse on a worker.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from airflow.sdk import DAG, TaskGroup
from airflow.sdk.bases.operator import BaseOperator

from manifest_dag.core.config import FrozenMap
from manifest_dag.core.errors import ConfigError
from manifest_dag.scheduler.plan import DbtNodeView, TaskSpec

Converter = Callable[[DbtNodeView | None, "DefaultTask"], Any]


@cache
def base_operator_arguments() -> frozenset[str]:
    """The keyword arguments every Airflow operator takes (``BaseOperator.__init__``'s)."""
    params = inspect.signature(BaseOperator.__init__).parameters.items()
    named = {name for name, p in params if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return frozenset(named | {"task_group", "dag"})


@dataclass(frozen=True)
class DefaultTask:
    """The task the renderer would create for a node: what a converter builds on."""

    #: the operator class (``EmptyOperator`` for a node that has no dbt task, e.g. an exposure)
    operator_class: type[BaseOperator]
    #: its keyword arguments (read-only: copy with ``dict(default.kwargs)``)
    kwargs: Mapping[str, Any]
    #: ``model``, ``seed``, ``snapshot``, ``source``, ``function``, ``exposure`` ... or ``test``
    kind: str
    #: the dbt command it runs (``""`` for a node without a dbt task)
    command: str = ""
    #: the dbt nodes the task runs (a test task: its tests)
    node_ids: tuple[str, ...] = ()
    _airflow: Mapping[str, Any] = field(default_factory=FrozenMap, repr=False)

    @property
    def task_id(self) -> str:
        return str(self.kwargs["task_id"])

    @property
    def airflow_kwargs(self) -> dict[str, Any]:
        """The arguments any operator takes: task id, task group, DAG, docs, outlets and the
        node's Airflow settings (pool, retries, owner ...). ``MySensor(..., **default.airflow_kwargs)``."""
        return {k: v for k, v in self.kwargs.items() if k in base_operator_arguments()}

    def build(self, operator_class: type[BaseOperator] | None = None, **overrides: Any) -> BaseOperator:
        """The default task, or ``operator_class`` with the same arguments (and ``overrides``).

        Another class than the default gets only ``airflow_kwargs`` (plus ``overrides``), unless it
        is a manifest-dag operator, which takes them all.
        """
        cls = operator_class or self.operator_class
        from manifest_dag.operators import DbtVenvOperator

        base = (
            dict(self.kwargs) if issubclass(cls, DbtVenvOperator) or cls is self.operator_class else self.airflow_kwargs
        )
        return cls(**{**base, **overrides})


def converter_for(spec: TaskSpec, converters: Mapping[str, Converter]) -> tuple[str, Converter] | None:
    """The converter for a task: the first of its nodes' ids that has one, else its kind's."""
    for uid in spec.node_ids:
        if uid in converters:
            return uid, converters[uid]
    kind = spec.kind
    return (kind, converters[kind]) if kind in converters else None


def convert(
    spec: TaskSpec,
    operator_class: type[BaseOperator],
    kwargs: Mapping[str, Any],
    converters: Mapping[str, Converter],
    dag: DAG,
) -> BaseOperator | TaskGroup | None:
    """The task for ``spec``: its converter's, or the default one."""
    found = converter_for(spec, converters)
    if found is None:
        return operator_class(**kwargs)
    key, fn = found
    default = DefaultTask(
        operator_class=operator_class,
        kwargs=FrozenMap(kwargs),
        kind=spec.kind,
        command=spec.command,
        node_ids=spec.node_ids,
    )
    result = fn(spec.node, default)
    where = f"RenderConfig.node_converters[{key!r}] for task {kwargs.get('task_id')!r}"
    if result is None:
        return None
    if isinstance(result, BaseOperator):
        if not result.has_dag() or result.dag is not dag:
            raise ConfigError(
                f"{where} returned a task outside the DAG; create it with **default.airflow_kwargs "
                "(or default.build(...)), which carry the DAG and the task group"
            )
        return result
    if isinstance(result, TaskGroup):
        if result.dag is not dag or not result.children:
            raise ConfigError(f"{where} returned a task group that is empty or outside the DAG")
        return result
    raise ConfigError(f"{where} must return an operator, a TaskGroup or None, got {type(result).__name__}")
