"""Pausing Python's cyclic garbage collector around bulk allocation.

Loading a manifest, unpickling a cached plan and creating thousands of operators allocate
hundreds of thousands of containers and free almost none: every generation-2 collection on the
way walks all of them (and all of Airflow's) again for nothing. A process that has imported
Airflow tracks about a million objects, so each such pass costs tens of milliseconds.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Collect nothing cyclic inside the block; restore the caller's setting after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
