"""The one place that knows where Airflow 3.0-3.3 keep what we use from them.

Airflow 3 moved things between its minor releases (the ``DagBag`` went from ``airflow.models``
to ``airflow.dag_processing``; ``airflow.sdk.timezone`` and ``airflow.sdk.log.mask_secret`` are
3.1+). Every version gate lives here, so a new release means one module to read, and
``make test-matrix`` runs the code on each minor release ``pyproject.toml`` allows. Airflow is
imported only when a function here is called (core imports no Airflow at import time).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Any

__all__ = ["airflow_version", "coerce_datetime", "dag_bag_class", "mask_secret_function", "skip_exception"]


def airflow_version() -> tuple[int, int, int]:
    """The installed Airflow's (major, minor, micro), pre-release tags dropped."""
    from importlib.metadata import version

    parts = []
    for piece in version("apache-airflow").split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit()) or "0"
        parts.append(int(digits))
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def dag_bag_class() -> Any:
    """Airflow's ``DagBag`` (``airflow.dag_processing.dagbag`` in 3.2+, ``airflow.models.dagbag`` before)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0, 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined,unused-ignore]
    return DagBag


def skip_exception() -> type[Exception]:
    """``AirflowSkipException`` (``airflow.sdk.exceptions`` in 3.1+, ``airflow.exceptions`` in 3.0)."""
    try:
        from airflow.sdk.exceptions import AirflowSkipException
    except ImportError:  # Airflow 3.0
        from airflow.exceptions import AirflowSkipException  # type: ignore[no-redef,attr-defined,unused-ignore]
    result: type[Exception] = AirflowSkipException
    return result


def coerce_datetime(value: Any) -> datetime:
    """Airflow's ``coerce_datetime`` (``airflow.sdk.timezone`` in 3.1+, ``airflow.utils.timezone`` in 3.0)."""
    try:
        from airflow.sdk.timezone import coerce_datetime as coerce
    except ImportError:  # Airflow 3.0
        from airflow.utils.timezone import coerce_datetime as coerce  # type: ignore[no-redef,attr-defined,unused-ignore]
    result: datetime = coerce(value)
    return result


def mask_secret_function() -> Callable[[str], None] | None:
    """Airflow's ``mask_secret`` for task logs (``airflow.sdk.log`` in 3.1+), None when there is none."""
    try:
        from airflow.sdk.log import mask_secret

        return mask_secret  # type: ignore[no-any-return,unused-ignore]
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from airflow.sdk.execution_time.secrets_masker import (  # type: ignore[attr-defined,unused-ignore]  # Airflow 3.0
                mask_secret as old_mask_secret,
            )
    except ImportError:
        return None
    return old_mask_secret  # type: ignore[no-any-return,unused-ignore]
