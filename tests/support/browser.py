"""Headless Chromium from Debian, driven by Playwright: never a browser Playwright downloads.

``ensure_chromium`` installs Debian's ``chromium`` package when it is missing (as the Postgres
helper does for ``postgresql``); ``launch`` starts it with the flags that keep it from reaching
out (no component updates, no sync, no background networking) and a fresh profile folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.apt import apt_install

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class BrowserError(RuntimeError):
    """Chromium could not be had; the message says which step failed."""


def ensure_chromium() -> str:
    """The path of Debian's chromium, installing the package (apt-get) when it is missing."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    apt_install("chromium", CHROMIUM, BrowserError)
    if not Path(CHROMIUM).exists():
        raise BrowserError(f"apt-get installed chromium but {CHROMIUM} is not there")
    return CHROMIUM


def launch(playwright: Any, profile_dir: Path, **context: Any) -> Any:
    """A headless Chromium context on a fresh profile folder (Playwright's ``--user-data-dir``)."""
    if profile_dir.exists() and any(profile_dir.iterdir()):
        raise BrowserError(f"{profile_dir} is not a fresh profile folder")
    return playwright.chromium.launch_persistent_context(
        str(profile_dir), executable_path=ensure_chromium(), headless=True, args=FLAGS, **context
    )
