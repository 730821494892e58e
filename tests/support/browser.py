"""Headless Chromium from Debian, driven by Playwright: never a browser Playwright downloads.

``ensure_chromium`` installs Debian's ``chromium`` package when it is missing (as the Postgres
helper does for ``postgresql``); ``launch`` starts it with the flags that keep it from reaching
out (no component updates, no sync, no background networking) and a fresh profile folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

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
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BrowserError(f"{CHROMIUM} is missing and we cannot apt-get it (not root, or no apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode:
            raise BrowserError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
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
