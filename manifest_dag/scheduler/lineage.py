"""What a finished task read and wrote, as OpenLineage datasets: from the manifest and dbt's results.

Called by the operator's ``get_openlineage_facets_on_complete`` (and ``..._on_failure``) on the
worker, after dbt ran, only when Airflow's OpenLineage provider is installed and enabled: it reads
the manifest as the planner does (no dbt), and imports the provider's classes then and only then.

- outputs: the models, seeds and snapshots dbt built in the task (status ``success``), with their
  row count where the adapter reported one (``outputStatistics``);
- inputs: what those read (their parents in the manifest: models, seeds, snapshots, sources,
  through ephemeral models to what those read), what the task's tests tested, and the sources
  whose freshness it checked.

Names and namespace follow OpenLineage's dataset naming (``core.openlineage``), the same as the
task's Asset outlets with ``RenderConfig(asset_uri_style="openlineage")``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from manifest_dag.core.dbt import TEST_TYPES
from manifest_dag.core.openlineage import dataset_name

if TYPE_CHECKING:
    from manifest_dag.scheduler.manifest import DbtNode, Manifest

log = logging.getLogger(__name__)

#: nodes that are tables or views dbt builds (what a task outputs)
_BUILT = frozenset({"model", "seed", "snapshot"})
#: nodes a task may read
_READ = frozenset({"model", "seed", "snapshot", "source"})


@dataclass(frozen=True)
class TaskDatasets:
    """A task's OpenLineage dataset names: read and written, and rows written where known."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    rows: Mapping[str, int] = field(default_factory=dict)


def relation_name(node: DbtNode) -> str | None:
    """A node's OpenLineage dataset name (``database.schema.table``), None for an ephemeral model."""
    if node.is_ephemeral:
        return None
    table = (node.identifier or node.name) if node.resource_type == "source" else (node.alias or node.name)
    return dataset_name(node.database, node.schema, table)


def task_datasets(manifest: Manifest, results: Iterable[tuple[str, str, int | None]]) -> TaskDatasets:
    """``results``: (unique id, dbt status, rows affected or None) per node dbt reported on."""
    nodes = manifest.nodes
    inputs: dict[str, None] = {}
    outputs: dict[str, None] = {}
    rows: dict[str, int] = {}

    def read(uid: str, seen: set[str]) -> None:
        node = nodes.get(uid)
        if node is None or uid in seen:
            return
        seen.add(uid)
        if node.is_ephemeral:  # no table: what it reads is what the reader reads
            for parent in node.depends_on:
                read(parent, seen)
            return
        if node.resource_type in _READ and (name := relation_name(node)) is not None:
            inputs[name] = None

    for uid, status, affected in results:
        node = nodes.get(uid)
        if node is None:
            continue
        if node.resource_type in TEST_TYPES or node.resource_type == "source":
            targets: Sequence[str] = node.depends_on if node.resource_type in TEST_TYPES else (uid,)
            for target in targets:
                read(target, set())
            continue
        if node.resource_type not in _BUILT:
            continue
        for parent in node.depends_on:
            read(parent, set())
        name = relation_name(node)
        if name is not None and status == "success":
            outputs[name] = None
            if affected is not None and affected > 0:
                rows[name] = affected
    return TaskDatasets(
        inputs=tuple(n for n in inputs if n not in outputs),
        outputs=tuple(outputs),
        rows=rows,
    )


@lru_cache(maxsize=2)
def _manifest(path: str, mtime_ns: int) -> Manifest:
    from manifest_dag.scheduler.manifest import load_manifest

    return load_manifest(path)


def openlineage_facets(
    manifest_path: str | Path | None,
    namespace: str | None,
    results: Sequence[tuple[str, str, int | None]],
    *,
    where: str,
) -> Any:
    """The provider's ``OperatorLineage`` for a task, or None when there is nothing to say (no
    manifest, no namespace, dbt reported on no node). Never raises: lineage must not fail a task."""
    if not manifest_path or not namespace or not results:
        if results and not namespace:
            log.info(
                "manifest-dag: %s: no OpenLineage namespace (RenderConfig.asset_namespace, or a dbt target "
                "OpenLineage can name): no lineage datasets",
                where,
            )
        return None
    try:
        path = Path(manifest_path)
        found = task_datasets(_manifest(str(path), path.stat().st_mtime_ns), results)
    except Exception as exc:  # noqa: BLE001 - a lineage problem is logged, never a task failure
        log.warning("manifest-dag: %s: no OpenLineage datasets: %s: %s", where, type(exc).__name__, exc)
        return None
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import datasource_dataset, output_statistics_output_dataset

    def source() -> dict[str, Any]:
        return {"dataSource": datasource_dataset.DatasourceDatasetFacet(name=namespace, uri=namespace)}

    outputs = []
    for name in found.outputs:
        stats: dict[str, Any] = {}
        if name in found.rows:
            stats["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=found.rows[name]
            )
        outputs.append(OutputDataset(namespace=namespace, name=name, facets=source(), outputFacets=stats))
    inputs = [InputDataset(namespace=namespace, name=name, facets=source()) for name in found.inputs]
    return OperatorLineage(inputs=inputs, outputs=outputs)
