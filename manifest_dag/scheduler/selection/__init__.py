"""dbt's node selection, answered from the manifest alone (no dbt, no Airflow).

``select_nodes`` returns the unique ids that ``dbt ls`` lists for the same ``--select``,
``--exclude``, ``--selector``, ``--resource-type`` and ``--indirect-selection`` arguments
(dbt-core 1.11 semantics, default flags). The differential tests hold it to dbt's own answers.

How an answer is built, the way dbt builds it, one module per step:

1. The arguments become a tree of set operations over *criteria* (``grammar``). A criterion is
   one ``[@][N+]method[.arg...]:value[+N]`` term; a space is a union, a comma an intersection,
   and ``exclude`` a difference. YAML selectors stored in the manifest become the same tree
   (``yaml_selectors``).
2. Each criterion picks nodes with its method (``methods``, over the lookups in ``index``, with
   the wildcards of ``patterns``), adds graph neighbours for its operators, then adds tests (and
   unit tests) attached to what it picked, by its indirect-selection mode (``evaluate``):
   ``eager`` any parent picked, ``cautious`` every parent picked, ``buildable`` every parent
   picked, upstream of what was picked, or a source; ``empty`` none.
3. Set operations combine the criteria's sets; ``cautious``/``buildable`` get a second look at
   tests held back by one criterion whose parents another criterion brought in. Exclusions are
   always eager, so excluding a model excludes its tests too.
4. What remains is filtered by resource type; ``dbt ls`` lists every type but analyses by default
   (``query``, which holds ``select_nodes``).

A few malformed terms that dbt itself only answers with "no nodes selected" (``tag:``, ``1+``,
``++x``, ``config:x``, an empty term between commas) raise ``SelectionError`` here instead: they
can never select anything, and a DAG silently built from nothing helps nobody.

Where dbt releases disagree (see ``methods.LEAF_WILDCARD_SINCE``), the answer is the one the dbt
version that wrote the manifest gives, since that is the dbt the workers run.

The modules are internal; import from the package.
"""

from __future__ import annotations

# The resource-type sets stay importable from here, as before the split; they live in core.dbt.
from manifest_dag.core.dbt import INDIRECT_SELECTION_MODES
from manifest_dag.core.dbt import LS_ALL_RESOURCE_TYPES as LS_ALL_RESOURCE_TYPES
from manifest_dag.core.dbt import LS_DEFAULT_RESOURCE_TYPES as LS_DEFAULT_RESOURCE_TYPES
from manifest_dag.scheduler.selection.query import select_nodes

__all__ = ["select_nodes", "INDIRECT_SELECTION_MODES"]
