"""The dbt import blocker: ``import dbt`` fails, naming the chain of modules that tried.

dbt lives only in the worker's virtualenvs; a DAG file (or anything it imports) that reaches for
it breaks on the scheduler and the DAG processor, where dbt is not installed, and often only
there, since a developer's machine has dbt. Blocking the import in tests turns that into a
failure in CI, and the chain (the DAG file, then each module on the way, then ``import dbt``)
says which line to move.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

__all__ = ["BlockedImport", "DbtImportBlocked", "NoDbt", "block_dbt"]


class DbtImportBlocked(ImportError):
    """``import dbt`` while dbt is blocked; the message names the chain of importing modules."""


@dataclass(frozen=True)
class BlockedImport:
    """One blocked ``import dbt...``: the module asked for and who asked, outermost first."""

    name: str
    chain: tuple[str, ...]

    def __str__(self) -> str:
        return " → ".join([*self.chain, f"import {self.name}"])


_IMPORT_MACHINERY = ("<frozen importlib", "importlib/__init__.py", "importlib/_bootstrap")


def _is_dbt(name: str) -> bool:
    return name == "dbt" or name.startswith("dbt.")


def _import_chain(skip_file: str) -> tuple[str, ...]:
    """Who imported dbt: the code that started the imports, each module being imported
    (outermost first), then the function that ran ``import dbt`` when it was not module code."""
    frame: FrameType | None = sys._getframe(1)
    frames: list[FrameType] = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()

    def machinery(f: Any) -> bool:
        return any(m in f.f_code.co_filename for m in _IMPORT_MACHINERY)

    chain: list[str] = []
    innermost: Any = None
    for i, f in enumerate(frames):
        if f.f_code.co_filename == skip_file or machinery(f):
            continue
        imported = f.f_code.co_name == "<module>" and i > 0 and machinery(frames[i - 1])
        if imported:
            if not chain and innermost is not None and not _third_party(innermost.f_code.co_filename):
                chain.append(_describe_frame(innermost))
            chain.append(_describe_module(f.f_globals.get("__name__", "?"), f.f_code.co_filename, f.f_lineno))
        innermost = f
    if innermost is not None and innermost.f_code.co_name != "<module>":  # imported inside a function
        chain.append(_describe_frame(innermost))
    return tuple(chain)


def _third_party(filename: str) -> bool:
    return "site-packages" in filename or "dist-packages" in filename or filename.startswith("<")


def _describe_frame(f: Any) -> str:
    name = f.f_code.co_name
    where = f"{_short(f.f_code.co_filename)}:{f.f_lineno}"
    return where if name == "<module>" else f"{name}() at {where}"


def _short(filename: str) -> str:
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if rel.startswith("..") else rel


def _describe_module(name: str, filename: str, line: int) -> str:
    short = _short(filename)
    if name.startswith("unusual_prefix_") or name == "__main__":  # Airflow's name for a DAG file
        return f"{short}:{line}"
    return f"{name} ({short}:{line})"


class NoDbt(importlib.abc.MetaPathFinder):
    """A finder that refuses ``dbt`` and ``dbt.*``; ``attempts`` records every refused import."""

    def __init__(self) -> None:
        self.attempts: list[BlockedImport] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if not _is_dbt(fullname):
            return None
        attempt = BlockedImport(fullname, _import_chain(__file__))
        self.attempts.append(attempt)
        raise DbtImportBlocked(
            f"dbt is blocked here (manifest-dag no_dbt): {attempt}. DAG files, and everything they "
            "import, run on the scheduler and DAG processor, where dbt is not installed; dbt runs "
            "only on workers, in manifest-dag's virtualenvs. Remove this import, or move it into code "
            "that runs inside a task.",
            name=fullname,
        )

    def find_module(self, fullname: str, path: Any = None) -> None:  # pragma: no cover - legacy API
        return None

    def __repr__(self) -> str:
        return f"NoDbt(attempts={[str(a) for a in self.attempts]})"


@contextlib.contextmanager
def block_dbt() -> Iterator[NoDbt]:
    """Within the block, ``import dbt`` and ``import dbt.<x>`` raise :class:`DbtImportBlocked`.

    Already-imported dbt modules are hidden for the block and restored after it.
    """
    hidden = {name: sys.modules.pop(name) for name in [m for m in sys.modules if _is_dbt(m)]}
    finder = NoDbt()
    sys.meta_path.insert(0, finder)
    try:
        yield finder
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        for name in [m for m in sys.modules if _is_dbt(m)]:
            del sys.modules[name]
        sys.modules.update(hidden)
