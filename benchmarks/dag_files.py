"""The DAG files the benchmarks write, filled in from the templates in ``benchmarks/templates/``.

A measured DAG file must be a real file in a DAG folder (Airflow's DagBag and task runner load it
by path), so the benchmarks write one per case; the templates keep those files readable as the
Python they become. A placeholder ``$key`` takes a Python literal, the ``repr`` of its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from string import Template

TEMPLATES = Path(__file__).resolve().parent / "templates"


def render(name: str, *, code: Mapping[str, str] | None = None, **values: object) -> str:
    """``templates/<name>`` with each ``$key`` of ``values`` replaced by ``repr(value)`` and each
    ``$key`` of ``code`` by that text as it is (Python put in whole: another rendered template)."""
    literals = {key: repr(value) for key, value in values.items()}
    return Template((TEMPLATES / name).read_text()).substitute({**literals, **(code or {})})


def write(path: Path, name: str, *, code: Mapping[str, str] | None = None, **values: object) -> Path:
    """``render`` into ``path`` (its folder made); ``path`` back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(name, code=code, **values))
    return path
