"""Unix-style wildcards as dbt matches them: names with ``fnmatch``, paths as pathlib globs.

Matching is case-sensitive, like dbt on POSIX; a value without ``*?[]`` compares as plain text,
which is most values and the fast path. Matchers are cached because the same few patterns are
tried against every node.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fnmatch import fnmatchcase, translate
from functools import lru_cache

_WILDCARD_CHARS = frozenset("*?[]")


@lru_cache(maxsize=1024)
def pattern(value: str) -> Callable[[str], bool]:
    """A matcher for a Unix-style wildcard pattern (case-sensitive, like dbt on POSIX)."""
    if not (_WILDCARD_CHARS & set(value)):
        return value.__eq__
    return re.compile(translate(value)).match  # type: ignore[return-value]


def has_wildcard(text: str) -> bool:
    return bool(_WILDCARD_CHARS & set(text))


def glob_match(glob: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """pathlib-style glob of one relative path: ``*``/``?``/``[]`` within a part, ``**`` spans parts."""
    if not glob:
        return not path
    head = glob[0]
    if head == "**":
        return any(glob_match(glob[1:], path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    if has_wildcard(head):
        if not fnmatchcase(path[0], head):
            return False
    elif path[0] != head:
        return False
    return glob_match(glob[1:], path[1:])
