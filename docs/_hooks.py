"""MkDocs hooks: pages generated from the code, so they cannot drift from it.

- ``reference/config-objects.md``: every field of the config dataclasses (type and default read from
  ``manifest_dag/core/config.py``; the meaning from the field's ``#:`` comment, else from the field's row
  in ``configuration.md``), and the enums with their members' comments. A field documented in
  neither place, or a row in ``configuration.md`` naming a field the code does not have, is a
  warning, so ``mkdocs build --strict`` fails.
- ``reference/cli.md``: the ``--help`` of every ``manifest-dag`` command.
- ``reference/examples.md``: the example DAG files under ``examples/dags/``.

Pages that colleagues add later (``testing.md``, ``performance.md``) join the nav when present.
"""

from __future__ import annotations

import ast
import logging
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.manifest_dag")

ROOT = Path(__file__).resolve().parent.parent
CONFIG_PY = ROOT / "manifest_dag" / "core" / "config.py"
CONFIG_CLASSES = ("ProjectConfig", "ProfileConfig", "VenvConfig", "RenderConfig", "DocsConfig")
ENUMS = ("TestBehavior", "SourceRendering")
OPTIONAL_PAGES = {"testing.md": "Testing your DAGs", "performance.md": "Performance"}


# -- nav ------------------------------------------------------------------------------------------------
def on_config(config: Any) -> Any:
    docs = Path(config["docs_dir"])
    nav = config["nav"]
    listed = set(_pages(nav))
    for page, title in OPTIONAL_PAGES.items():
        if (docs / page).is_file() and page not in listed:
            nav.insert(len(nav) - 1, {title: page})  # before Troubleshooting
    return config


def _pages(nav: Any) -> Any:
    for item in nav:
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for value in item.values():
                yield from _pages(value) if isinstance(value, list) else [value]


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for path, text in (
        ("reference/config-objects.md", config_reference(Path(config["docs_dir"]) / "configuration.md")),
        ("reference/cli.md", cli_reference()),
        ("reference/examples.md", examples_page()),
    ):
        files.append(File.generated(config, path, content=text))
    return files


# -- config objects -------------------------------------------------------------------------------------
def _comment_above(lines: list[str], lineno: int) -> str:
    """The ``#:`` comment lines right above line ``lineno`` (1-based), joined."""
    out: list[str] = []
    i = lineno - 2
    while i >= 0 and lines[i].strip().startswith("#:"):
        out.insert(0, lines[i].strip()[2:].strip())
        i -= 1
    return " ".join(out)


def _trailing_comment(line: str) -> str:
    m = re.search(r"#:\s*(.*)$", line)
    return m.group(1).strip() if m else ""


def _default(node: ast.expr | None, source: str) -> str:
    if node is None:
        return "required"
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "field":
        for kw in node.keywords:
            if kw.arg == "default_factory":
                return {"dict": "{}", "list": "[]", "tuple": "()"}.get(getattr(kw.value, "id", ""), "(factory)")
            if kw.arg == "default":
                return ast.get_source_segment(source, kw.value) or ""
    return ast.get_source_segment(source, node) or ""


def _documented_rows(configuration_md: Path) -> dict[str, dict[str, str]]:
    """``configuration.md``'s table rows: class -> field -> meaning (the last column)."""
    rows: dict[str, dict[str, str]] = {}
    current = None
    for line in configuration_md.read_text(encoding="utf-8").splitlines():
        head = re.match(r"^## `(\w+)`", line)
        if head:
            current = head.group(1) if head.group(1) in CONFIG_CLASSES else None
            continue
        if line.startswith("## "):
            current = None
        row = re.match(r"^\| `(\w+)` \|", line)
        if current and row:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            rows.setdefault(current, {})[row.group(1)] = cells[-1]
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _from_reference(text: str) -> str:
    """Relative links written for ``docs/`` pages, seen from ``docs/reference/``."""
    return re.sub(r"\]\((?!https?:|#|/)([^)]+)\)", r"](../\1)", text)


def config_reference(configuration_md: Path) -> str:
    source = CONFIG_PY.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    documented = _documented_rows(configuration_md)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    out = [
        "# Config objects",
        "",
        "Generated from `manifest_dag/core/config.py` when the docs are built: the fields, their types and",
        "defaults as the code declares them. The meaning is the field's comment in the code, or else its",
        "row in [Configuration](../configuration.md), which also explains how the fields work together.",
        "",
    ]
    for name in CONFIG_CLASSES:
        cls = classes[name]
        doc = ast.get_docstring(cls) or ""
        out += [f"## `{name}`", "", doc, "", "| field | type | default | meaning |", "|---|---|---|---|"]
        seen = set()
        for stmt in cls.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            field_name = stmt.target.id
            seen.add(field_name)
            meaning = _comment_above(lines, stmt.lineno) or _from_reference(documented.get(name, {}).get(field_name, ""))
            if not meaning:
                log.warning("config reference: %s.%s has no #: comment in config.py and no row in configuration.md", name, field_name)
            if field_name not in documented.get(name, {}):
                log.warning("configuration.md: the table of %s has no row for the field %r", name, field_name)
            annotation = ast.get_source_segment(source, stmt.annotation) or ""
            default = _default(stmt.value, source)
            default = "required" if default == "required" else f"`{_cell(default)}`"
            out.append(f"| `{field_name}` | `{_cell(annotation)}` | {default} | {_cell(meaning)} |")
        for extra in sorted(set(documented.get(name, {})) - seen):
            log.warning("configuration.md: the table of %s documents %r, which %s does not have", name, extra, name)
        out.append("")
    out += ["## Enums", ""]
    for name in ENUMS:
        cls = classes[name]
        out += [f"### `{name}`", "", ast.get_docstring(cls) or "", "", "| member | value | meaning |", "|---|---|---|"]
        for stmt in cls.body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name) and isinstance(stmt.value, ast.Constant):
                member = stmt.targets[0].id
                if member.startswith("_"):
                    continue
                comment = _trailing_comment(lines[stmt.lineno - 1])
                out.append(f"| `{member}` | `{stmt.value.value!r}` | {_cell(comment)} |")
        out.append("")
    return "\n".join(out)


# -- command line ---------------------------------------------------------------------------------------
def cli_reference() -> str:
    import argparse

    os.environ["COLUMNS"] = "100"  # argparse wraps help text to the terminal width
    from manifest_dag.cli.app import build_parser

    parser = build_parser()
    out = [
        "# Command line",
        "",
        "Generated from `manifest_dag/cli/app.py` when the docs are built: the `--help` of every command.",
        "Errors print `manifest-dag: error: <what was wrong and how to mend it>` and exit with code 2.",
        "See [Check and draw a DAG before deploying](../how-to/check-and-draw.md) for how to use them.",
        "",
    ]

    def walk(p: argparse.ArgumentParser, words: list[str]) -> None:
        title = " ".join(["manifest-dag", *words])
        out.extend([f"## `{title}`" if words else "## `manifest-dag`", "", "```text", p.format_help().rstrip(), "```", ""])
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*words, name])

    walk(parser, [])
    return "\n".join(out)


# -- examples -------------------------------------------------------------------------------------------
def examples_page() -> str:
    out = [
        "# Example DAGs",
        "",
        "Generated from `examples/dags/` when the docs are built. Each file is loaded by the tests",
        "(`tests/test_docs.py`) the way Airflow's DAG processor loads it, with dbt blocked.",
        "`make demo` runs the first one.",
        "",
    ]
    files = sorted((ROOT / "examples" / "dags").glob("*.py"), key=lambda p: (p.name != "shop_dag.py", p.name))
    for path in files:
        text = path.read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(text)) or ""
        out += [f"## `{path.name}`", "", doc, "", "```python", text.rstrip(), "```", ""]
    return "\n".join(out)
