"""Golden files: a DAG's shape as stable text, compared with a file kept in the repository.

Whether a change to a manifest, a render config or manifest-dag itself changed a DAG is easiest
to review as a diff: :func:`dag_shape` prints the groups, tasks (with their dbt arguments) and
edges sorted, and :func:`assert_matches_golden` fails with a unified diff against the committed
file, or rewrites it when asked (``--manifest-dag-update-golden``).
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

from manifest_dag.core import settings

__all__ = ["UPDATE_GOLDEN", "assert_matches_golden", "dag_shape"]

#: Set here by the pytest plugin from ``--manifest-dag-update-golden`` (``manifest_dag.testing``
#: shows this value); the environment variable ``MANIFEST_DAG_UPDATE_GOLDEN=1`` does the same
#: outside pytest.
UPDATE_GOLDEN = False


def _set_on_package() -> bool:
    """``manifest_dag.testing.UPDATE_GOLDEN = True`` (the switch's old home) still counts."""
    package = sys.modules.get("manifest_dag.testing")
    return bool(package is not None and package.__dict__.get("UPDATE_GOLDEN", False))


def dag_shape(dag: Any, *, commands: bool = True) -> str:
    """A stable, sorted text form of ``dag``'s groups, tasks and edges, for golden files.

    Each task shows its operator class and, for manifest-dag operators, its dbt arguments
    (``commands=False`` leaves those out).
    """
    groups = sorted(gid for gid in dag.task_group.get_task_group_dict() if gid)
    lines = [f"dag {dag.dag_id}", f"groups ({len(groups)}):"]
    lines += [f"  {g}" for g in groups]
    task_ids = sorted(dag.task_dict)
    lines.append(f"tasks ({len(task_ids)}):")
    for tid in task_ids:
        task = dag.task_dict[tid]
        text = f"  {tid}: {type(task).__name__}"
        if commands and callable(getattr(task, "dbt_args", None)):
            text += " dbt " + " ".join(str(a) for a in task.dbt_args())
        lines.append(text)
    edges = sorted((up, tid) for tid in task_ids for up in dag.task_dict[tid].upstream_task_ids)
    lines.append(f"edges ({len(edges)}):")
    lines += [f"  {a} >> {b}" for a, b in edges]
    return "\n".join(lines) + "\n"


def assert_matches_golden(text: str, path: str | Path, *, update: bool | None = None) -> None:
    """Compare ``text`` with the golden file ``path``; fail with a unified diff.

    With ``update`` (default: pytest's ``--manifest-dag-update-golden`` or the environment
    variable ``MANIFEST_DAG_UPDATE_GOLDEN=1``) the file is (re)written instead.
    """
    __tracebackhide__ = True
    path = Path(path)
    if update is None:
        update = UPDATE_GOLDEN or _set_on_package() or settings.is_on(settings.UPDATE_GOLDEN)
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        raise AssertionError(
            f"golden file {path} does not exist; run pytest with --manifest-dag-update-golden to write it"
        )
    golden = path.read_text(encoding="utf-8")
    if golden == text:
        return
    diff = "".join(
        difflib.unified_diff(
            golden.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{path} (golden)",
            tofile="actual",
        )
    )
    raise AssertionError(
        f"does not match golden file {path}:\n{diff}\n"
        "If the change is intended, run pytest with --manifest-dag-update-golden and commit the file."
    )
