"""Bad and edge-case manifests made from a real one, written to a test's tmp dir."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.conftest import JAFFLE

_BASE: dict[str, Any] | None = None


def jaffle_raw() -> dict[str, Any]:
    global _BASE
    if _BASE is None:
        _BASE = orjson.loads(JAFFLE.read_bytes())
    return copy.deepcopy(_BASE)


def write(tmp_path: Path, data: dict[str, Any], name: str = "manifest.json") -> Path:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(data))
    return path


def edited(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = jaffle_raw()
    change(data)
    return write(tmp_path, data)


def uid(name: str) -> str:
    """jaffle_shop's unique id for a model or seed name."""
    kind = "seed" if name.startswith("raw_") else "model"
    return f"{kind}.jaffle_shop.{name}"
