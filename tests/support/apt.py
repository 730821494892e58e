"""Debian packages that an end-to-end test's server needs, installed when missing (as root)."""

from __future__ import annotations

import os
import shutil
import subprocess


def apt_install(package: str, what: str, error: type[Exception] = RuntimeError) -> None:
    """``apt-get update`` then ``apt-get install package``; ``error`` (naming ``what`` is missing)
    when we cannot (not root, no apt-get) or a step fails, with apt's last words."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise error(f"{what} is not installed and we cannot apt-get {package} (not root, or no apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise error(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
