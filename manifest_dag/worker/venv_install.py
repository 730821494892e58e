"""The installer's command line, and what its failures mean to the person reading the task log.

A venv is filled by uv when the worker has it (much faster than pip, and no pip to seed), else by
the venv's own pip, with every install option of the ``VenvSpec``. When installing fails, the
error names the requirements the installer's output mentions and, for the one failure every
dbt 1.12 user meets, how to avoid it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from manifest_dag.core.secrets import mask_url_credentials
from manifest_dag.core.specs import VenvSpec
from manifest_dag.worker.venv_layout import BIN

EXPERIMENTAL_PARSER_HINT = (
    "dbt-core 1.12+ depends on dbt-core-experimental-parser, which downloads a binary from GitHub "
    "while it is built and fails without that access; pin `dbt-core~=1.11.0` in the venv requirements."
)


def find_uv() -> str | None:
    """The uv executable: on PATH, else next to the running Python; None when neither has it."""
    # A worker started as /path/venv/bin/airflow often lacks that bin dir on PATH, yet has uv there.
    found = shutil.which("uv")
    if found:
        return found
    sibling = Path(sys.executable).parent / "uv"
    return str(sibling) if sibling.is_file() and os.access(sibling, os.X_OK) else None


def install_argv(spec: VenvSpec, reqs: tuple[str, ...], path: Path, uv: str | None) -> tuple[str, list[str]]:
    """(installer name, argv) installing ``reqs`` into the venv at ``path`` with every option of ``spec``."""
    python = str(path / BIN / "python")
    if uv:
        name, argv = "uv", [uv, "pip", "install", "--python", python]
    else:
        name = "pip"
        argv = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    if spec.index_url:
        argv += ["--index-url", spec.index_url]
    for url in spec.extra_index_urls:
        argv += ["--extra-index-url", url]
    for link in spec.find_links:
        argv += ["--find-links", link]
    if spec.constraints:
        argv += ["--constraint", os.path.abspath(spec.constraints)]
    argv += list(spec.pip_args)
    argv += list(reqs)
    return name, argv


def _name_in(name: str, text: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", text) is not None


def _failing_requirements(reqs: Sequence[str], output: str) -> list[str]:
    flat = re.sub(r"[-_.]+", "-", output.lower())
    return [r for r in reqs if _name_in(canonicalize_name(Requirement(r).name), flat)]


def install_error(installer: str, reqs: tuple[str, ...], rc: int, tail: Sequence[str], timed_out: bool) -> str:
    """The message of a failed install: what failed, which requirement, a hint, the output's end."""
    output = "\n".join(tail)
    failing = _failing_requirements(reqs, output)
    what = "timed out" if timed_out else f"failed (exit code {rc})"
    lines = [
        f"installing the venv requirements with {installer} {what}.",
        (f"Failing requirement(s): {', '.join(failing)}" if failing else f"Requirements: {', '.join(reqs)}"),
    ]
    if "dbt-core-experimental-parser" in output:
        lines.append("Hint: " + EXPERIMENTAL_PARSER_HINT)
    elif not failing:
        lines.append("Hint: check the requirement names/versions and the index_url/find_links settings.")
    lines.append("Installer output (last lines):")
    lines += [f"    {line}" for line in tail[-25:]]
    return mask_url_credentials("\n".join(lines))


def summary_line(output: str) -> str:
    """The line of a verify command's output worth logging (the first with a version number)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if re.search(r"\d+\.\d+", line):
            return line
    return lines[0] if lines else "(no output)"
