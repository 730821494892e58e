"""``manifest-dag graph``: the plan drawn as svg, png, dot or mermaid, to a file or stdout.

The command's side only (format from the options or the file suffix, where the bytes go); the
pictures themselves are ``draw``'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from manifest_dag.cli import draw
from manifest_dag.cli.selection_args import plan
from manifest_dag.core.errors import CliError

_FORMAT_OF_SUFFIX = {"svg": "svg", "png": "png", "dot": "dot", "gv": "dot", "mmd": "mermaid", "mermaid": "mermaid"}


def run(args: argparse.Namespace) -> int:
    fmt = args.format
    if fmt is None:
        suffix = Path(args.output).suffix.lstrip(".").lower() if args.output else ""
        fmt = _FORMAT_OF_SUFFIX.get(suffix, "svg" if args.output else "dot")
    if fmt == "png" and not args.output:
        raise CliError("--format png writes binary data: give an output file with -o FILE.png")
    manifest, _rc, planned, _selected = plan(args)
    title = f"{manifest.project_name}: {len(planned.tasks)} tasks"
    pic = draw.make_picture(planned, manifest, collapse=args.collapse, depth=args.depth, title=title)
    if pic.collapsed:
        pic.title = f"{title} in {len(pic.nodes)} folders"
    data = draw.render(pic, fmt)
    if args.output and args.output != "-":
        Path(args.output).write_bytes(data)
        what = f"{len(pic.nodes)} folders" if pic.collapsed else f"{len(pic.nodes)} tasks"
        print(f"wrote {args.output} ({fmt}, {what}, {len(pic.edges)} edges)", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
