"""The ``manifest-dag`` command. Each command imports only what it needs (see ``main``)."""

from manifest_dag.cli.app import main

__all__ = ["main"]
