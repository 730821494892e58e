"""Pictures of a ``RenderPlan``: Graphviz DOT, Mermaid, and SVG/PNG through Graphviz's ``dot``.

Two views of the same plan:

- **tasks**: one box per task, each model's TaskGroup drawn as a cluster, layers left to right.
  Node names are the task ids, so an SVG's ``<title>`` elements are exactly the DAG's tasks.
- **folders**: for large projects, one box per folder of the dbt project (``models/staging``,
  ``seeds``, ...) with the number of tasks in it, and an edge wherever a task in one folder waits
  for a task in another. Folders are clustered by their parent folder.

No Airflow import; the only outside program is ``dot`` (package ``graphviz``), and only for SVG/PNG.
"""

from __future__ import annotations

import math
import posixpath
import shutil
import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from manifest_dag.core.errors import DrawError
from manifest_dag.scheduler.manifest import Manifest
from manifest_dag.scheduler.plan import RenderPlan, TaskSpec

FORMATS = ("svg", "png", "dot", "mermaid")
#: above this many tasks, ``collapse="auto"`` draws folders instead of tasks
AUTO_COLLAPSE_TASKS = 150
#: ``depth=None`` picks the deepest folder level that gives at most this many boxes
MAX_FOLDER_BOXES = 40

_STYLE = {  # command -> (shape, fill colour)
    "run": ("box", "#dbeafe"),
    "test": ("box", "#dcfce7"),
    "seed": ("cylinder", "#fef3c7"),
    "snapshot": ("box3d", "#ede9fe"),
    "build": ("box", "#ffedd5"),
    "source freshness": ("cds", "#fce7f3"),
}


@dataclass
class Picture:
    """A drawable graph: nodes with labels, optional clusters, directed edges."""

    title: str
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> attributes
    clusters: dict[str, str] = field(default_factory=dict)  # cluster id -> label
    member_of: dict[str, str] = field(default_factory=dict)  # node id -> cluster id
    edges: dict[tuple[str, str], int] = field(default_factory=dict)  # (up, down) -> weight
    collapsed: bool = False


# -- building ---------------------------------------------------------------------------------------
def task_picture(plan: RenderPlan, title: str = "") -> Picture:
    """One node per task; each TaskGroup a cluster."""
    pic = Picture(title=title)
    for group in plan.groups:
        pic.clusters[group.group_id] = group.group_id
    for task in plan.tasks:
        shape, fill = _STYLE.get(task.command, ("box", "#f3f4f6"))
        pic.nodes[task.task_id] = {
            "label": task.local_id if task.group_id else _wrap(task.task_id),
            "shape": shape,
            "fillcolor": fill,
            "tooltip": "dbt " + " ".join(task.dbt_args()),
        }
        if task.group_id:
            pic.member_of[task.task_id] = task.group_id
    for up, down in plan.edges():
        pic.edges[(up, down)] = 1
    return pic


def _wrap(text: str, width: int = 32) -> str:
    """Break a long task id at underscores so one long test name does not widen a whole layer."""
    if len(text) <= width:
        return text
    lines, line = [], ""
    for part in text.replace("__", "_\x00").split("_"):
        piece = part.replace("\x00", "_")
        candidate = f"{line}_{piece}" if line else piece
        if line and len(candidate) > width:
            lines.append(line + "_")
            line = piece
        else:
            line = candidate
    lines.append(line)
    return "\n".join(lines)


def task_folder(task: TaskSpec, manifest: Manifest, depth: int) -> str:
    """The folder a task's first node lives in, cut to ``depth`` levels (``models/staging``)."""
    node = next((manifest.nodes[u] for u in task.node_ids if u in manifest.nodes), None)
    if node is None:
        return "(project)"
    folder = posixpath.dirname(node.original_file_path.replace("\\", "/")) or "."
    parts = folder.split("/")[: max(depth, 1)]
    key = "/".join(parts)
    if node.package_name != manifest.project_name:
        key = f"{node.package_name}: {key}"
    return key


def choose_depth(plan: RenderPlan, manifest: Manifest, max_boxes: int = MAX_FOLDER_BOXES) -> int:
    """The deepest folder level (1-6) that gives at most ``max_boxes`` boxes."""
    best = 1
    for depth in range(1, 7):
        count = len({task_folder(t, manifest, depth) for t in plan.tasks})
        if count > max_boxes:
            break
        best = depth
        if depth > 1 and count == len({task_folder(t, manifest, depth - 1) for t in plan.tasks}):
            break  # no deeper folders to split
    return best


def folder_picture(plan: RenderPlan, manifest: Manifest, depth: int | None = None, title: str = "") -> Picture:
    """One node per folder, labelled with its task count; edges summed between folders."""
    depth = depth or choose_depth(plan, manifest)
    pic = Picture(title=title, collapsed=True)
    folder_of = {t.task_id: task_folder(t, manifest, depth) for t in plan.tasks}
    counts = Counter(folder_of.values())
    commands: dict[str, Counter[str]] = defaultdict(Counter)
    for t in plan.tasks:
        commands[folder_of[t.task_id]][t.command] += 1
    for folder, n in counts.items():
        parent = folder.rsplit("/", 1)[0] if "/" in folder else ""
        leaf = folder.rsplit("/", 1)[-1] if parent else folder
        what = ", ".join(f"{c} {cmd}" for cmd, c in sorted(commands[folder].items()))
        pic.nodes[folder] = {
            "label": f"{leaf}\n{n} task{'s' if n != 1 else ''}",
            "shape": "box",
            "fillcolor": "#dbeafe",
            "tooltip": f"{folder}: {what}",
        }
        if parent:
            pic.clusters.setdefault(parent, parent)
            pic.member_of[folder] = parent
    weights: Counter[tuple[str, str]] = Counter()
    for up, down in plan.edges():
        a, b = folder_of[up], folder_of[down]
        if a != b:
            weights[(a, b)] += 1
    pic.edges.update(weights)
    return pic


def make_picture(
    plan: RenderPlan,
    manifest: Manifest,
    *,
    collapse: str = "auto",
    depth: int | None = None,
    title: str = "",
) -> Picture:
    """``collapse``: ``none`` (tasks), ``folder`` (folders) or ``auto`` (folders above 150 tasks)."""
    if collapse not in ("auto", "none", "folder"):
        raise DrawError(f"collapse must be auto, none or folder, got {collapse!r}")
    if collapse == "folder" or (collapse == "auto" and len(plan.tasks) > AUTO_COLLAPSE_TASKS):
        return folder_picture(plan, manifest, depth, title)
    return task_picture(plan, title)


# -- writing ----------------------------------------------------------------------------------------
def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(pic: Picture) -> str:
    """Graphviz DOT, left to right, clusters for groups (or parent folders)."""
    out = [
        "digraph manifest_dag {",
        "  rankdir=LR; newrank=true; ranksep=0.5; nodesep=0.15;"
        + (" concentrate=true; ranksep=1.2;" if pic.collapsed else ""),
        '  graph [fontname="Helvetica", fontsize=11, labelloc=t, labeljust=l'
        + (f", label={_q(pic.title)}" if pic.title else "")
        + "];",
        '  node [fontname="Helvetica", fontsize=10, style="filled,rounded", color="#6b7280", height=0.3];',
        '  edge [color="#9ca3af", arrowsize=0.6];',
    ]
    members: dict[str, list[str]] = defaultdict(list)
    for node, cluster in pic.member_of.items():
        members[cluster].append(node)

    def node_line(node_id: str, indent: str) -> str:
        attrs = ", ".join(f"{k}={_q(v)}" for k, v in pic.nodes[node_id].items())
        return f"{indent}{_q(node_id)} [{attrs}];"

    for i, (cluster, label) in enumerate(pic.clusters.items()):
        if not members.get(cluster):
            continue
        out.append(f"  subgraph cluster_{i} {{")
        out.append(f'    label={_q(label)}; style="rounded,filled"; fillcolor="#f9fafb"; color="#d1d5db";')
        out.extend(node_line(n, "    ") for n in members[cluster])
        out.append("  }")
    out.extend(node_line(n, "  ") for n in pic.nodes if n not in pic.member_of)
    for (up, down), weight in pic.edges.items():
        extra = ""
        if pic.collapsed:
            width = min(1 + math.log2(weight) / 2, 4.0)
            extra = f' [penwidth={width:.1f}, tooltip="{weight} task dependencies"]'
        out.append(f"  {_q(up)} -> {_q(down)}{extra};")
    out.append("}")
    return "\n".join(out) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", "<br/>")


def to_mermaid(pic: Picture) -> str:
    """A Mermaid ``flowchart LR``; groups become subgraphs."""
    ids = {node: f"n{i}" for i, node in enumerate(pic.nodes)}
    out = ["flowchart LR"]
    members: dict[str, list[str]] = defaultdict(list)
    for node, cluster in pic.member_of.items():
        members[cluster].append(node)

    def node_line(node: str) -> str:
        attrs = pic.nodes[node]
        label = _mermaid_text(attrs["label"])
        shape = attrs.get("shape")
        if shape == "cylinder":
            return f'{ids[node]}[("{label}")]'
        return f'{ids[node]}["{label}"]'

    for i, (cluster, label) in enumerate(pic.clusters.items()):
        if not members.get(cluster):
            continue
        out.append(f'  subgraph g{i}["{_mermaid_text(label)}"]')
        out.extend(f"    {node_line(n)}" for n in members[cluster])
        out.append("  end")
    out.extend(f"  {node_line(n)}" for n in pic.nodes if n not in pic.member_of)
    for (up, down), weight in pic.edges.items():
        arrow = f"-->|{weight}|" if pic.collapsed and weight > 1 else "-->"
        out.append(f"  {ids[up]} {arrow} {ids[down]}")
    return "\n".join(out) + "\n"


def dot_executable() -> str | None:
    return shutil.which("dot")


def render(pic: Picture, fmt: str) -> bytes:
    """The picture as bytes in ``fmt`` (svg, png, dot or mermaid)."""
    if fmt == "dot":
        return to_dot(pic).encode()
    if fmt == "mermaid":
        return to_mermaid(pic).encode()
    if fmt not in ("svg", "png"):
        raise DrawError(f"unknown picture format {fmt!r}; use one of {', '.join(FORMATS)}")
    dot = dot_executable()
    if dot is None:
        raise DrawError(
            f"--format {fmt} needs Graphviz's `dot` program, which is not on PATH. Install Graphviz "
            "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz), or write "
            "--format dot or --format mermaid, which need nothing else"
        )
    done = subprocess.run(  # noqa: S603 - an argv list, never a shell string
        [dot, f"-T{fmt}"], input=to_dot(pic).encode(), capture_output=True, timeout=600
    )
    if done.returncode != 0:
        raise DrawError(
            f"`dot -T{fmt}` failed (exit code {done.returncode}): {done.stderr.decode(errors='replace')[-500:]}"
        )
    return done.stdout
