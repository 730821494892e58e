"""The dbt profile a task uses: a user's ``profiles.yml``, or one made from an Airflow Connection.

A Connection becomes one dbt target. Secrets (passwords, tokens, private keys, key files) never
reach the YAML text: they go into environment variables named ``MANIFEST_DAG_<CONN_ID>_<FIELD>``
that the YAML reads with ``env_var()``, and the operator hands those variables to the dbt
subprocess only. So the ``profiles.yml`` on the worker's disk holds no secret in clear, and the
secret values are registered with Airflow's log masker.

Adapters sit in one table, ``ADAPTERS`` (Airflow ``conn_type`` → :class:`AdapterMapping`); the
built-in ones live in ``adapters/``, one module per warehouse, and are registered by importing
that package here, so no module of ``profiles`` can be used before they are. Add one with
:func:`register_adapter` (also ``manifest_dag.register_adapter``), or from an installed package's
entry point (group ``manifest_dag.profile_mappings``). No Airflow import at module level (only :func:`fetch_connection`
imports ``airflow.sdk``), and no dbt import at all.

This package's names are the ones other modules import; where each lives:

- ``rendered``: :class:`RenderedProfile`, the result;
- ``yaml_text``: :class:`EnvRef` and the YAML dumper;
- ``view``: :class:`ConnectionView`, what a mapping reads, and ``ENV_PREFIX``;
- ``registry``: :class:`AdapterMapping`, ``ADAPTERS``, :func:`register_adapter`;
- ``coerce``: number and boolean fields from strings;
- ``from_connection``: :func:`profile_from_connection`;
- ``fetch``: :func:`fetch_connection`;
- ``files``: checking a user's ``profiles.yml``, :func:`write_profile`, ``PROFILES_FILE``;
- ``resolve``: :func:`resolve_profile`.
"""

from __future__ import annotations

from manifest_dag.worker.profiles import adapters  # noqa: F401 - registers the built-in adapters
from manifest_dag.worker.profiles.fetch import fetch_connection
from manifest_dag.worker.profiles.files import PROFILES_FILE, write_profile
from manifest_dag.worker.profiles.from_connection import profile_from_connection
from manifest_dag.worker.profiles.registry import (
    ADAPTERS,
    ENTRY_POINT_GROUP,
    AdapterMapping,
    Builder,
    find_mapping,
    register_adapter,
    supported_conn_types,
)
from manifest_dag.worker.profiles.rendered import RenderedProfile
from manifest_dag.worker.profiles.resolve import resolve_profile
from manifest_dag.worker.profiles.view import ENV_PREFIX, ConnectionView
from manifest_dag.worker.profiles.yaml_text import EnvRef

__all__ = [
    "ADAPTERS",
    "ENTRY_POINT_GROUP",
    "ENV_PREFIX",
    "PROFILES_FILE",
    "AdapterMapping",
    "Builder",
    "ConnectionView",
    "EnvRef",
    "RenderedProfile",
    "fetch_connection",
    "find_mapping",
    "profile_from_connection",
    "register_adapter",
    "resolve_profile",
    "supported_conn_types",
    "write_profile",
]
