"""``profiles.yml`` on disk: checking a user's file before dbt reads it, writing a generated one.

A user's file is checked for the profile and target the task asks for, so a typo fails with the
names found rather than deep inside dbt. A generated file is created 0600 from the start, so the
window where another user could read it never opens.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from manifest_dag.core.config import ProfileConfig
from manifest_dag.core.errors import ProfileError
from manifest_dag.worker.profiles.rendered import RenderedProfile

PROFILES_FILE = "profiles.yml"


def check_profiles_file(path: Path, config: ProfileConfig, project_dir: Path | str | None) -> Path:
    """The user's profiles file (relative to ``project_dir``; a directory means its profiles.yml).

    Raises ProfileError unless it is YAML defining ``config.profile_name`` with target
    ``config.target_name``.
    """
    if not path.is_absolute() and project_dir is not None:
        path = Path(project_dir) / path
    if path.is_dir():
        path = path / PROFILES_FILE
    where = f"ProfileConfig.profiles_yml_path={str(config.profiles_yml_path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(
            f"{path}: no such profiles file ({where}); give the path of an existing profiles.yml"
        ) from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profiles file ({where}): {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get(config.profile_name), Mapping):
        found = sorted(str(k) for k in data if k != "config") if isinstance(data, Mapping) else []
        raise ProfileError(
            f"{path}: defines no profile {config.profile_name!r} (profiles in the file: "
            f"{', '.join(map(str, found)) or 'none'}); fix ProfileConfig.profile_name or the file"
        )
    outputs = data[config.profile_name].get("outputs")
    if not isinstance(outputs, Mapping) or config.target_name not in outputs:
        found = sorted(map(str, outputs)) if isinstance(outputs, Mapping) else []
        raise ProfileError(
            f"{path}: profile {config.profile_name!r} has no target {config.target_name!r} under 'outputs' "
            f"(targets: {', '.join(found) or 'none'}); fix ProfileConfig.target_name or the file"
        )
    return path


def write_profile(profile: RenderedProfile, directory: Path | str) -> Path:
    """Write ``directory/profiles.yml`` readable by its owner only (0600) and return ``directory``.

    The file is created with mode 0600 from the start, never loosened-then-tightened; an
    existing file is replaced.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PROFILES_FILE
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise ProfileError(f"{path}: cannot write the profiles file: {exc}") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(profile.profiles_yml)
    return directory
