"""Run by a worker venv's Python: load generated profiles the way dbt does, without connecting.

Reads a JSON list of ``{"name", "profiles_yml", "env", "profile", "target"}`` on stdin; for each,
puts its env vars in ``os.environ``, renders the profile with dbt's own ``Profile`` and
``ProfileRenderer`` (so ``env_var()`` and ``fromjson()`` resolve and the adapter's credentials class
validates every field), and prints one line, ``RESULT <json>``: the dbt type, the credential fields that are set,
and which env values dbt's rendered credentials hold (by env name: never a secret's value).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import yaml
from dbt.config.profile import Profile
from dbt.config.renderer import ProfileRenderer
from dbt.flags import set_from_args
from dbt_common.context import set_invocation_context


def _values(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):  # dbt-duckdb's Attachment ...
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _values(v)
        yield obj
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _values(v)
    else:
        yield obj


def check(case: dict) -> dict:
    saved = dict(os.environ)
    os.environ.update(case["env"])
    set_invocation_context(dict(os.environ))  # what dbt's env_var() reads
    try:
        raw = yaml.safe_load(case["profiles_yml"])
        profile = Profile.from_raw_profiles(raw, case["profile"], ProfileRenderer({}), target_override=case["target"])
        creds = profile.credentials
        fields = {f.name: getattr(creds, f.name) for f in dataclasses.fields(creds) if not f.name.startswith("_")}
        held = list(_values(fields))
        # a field dbt would silently ignore (a misspelt name) is reported: dbt's credentials
        # classes accept unknown keys, so loading alone would not catch one
        target = raw[case["profile"]]["outputs"][case["target"]]
        known = {f.name for f in dataclasses.fields(creds)} | set(getattr(type(creds), "_ALIASES", {})) | {"type", "threads"}
        found = {}
        for name, text in case["env"].items():
            try:
                as_json = json.loads(text)
            except ValueError:
                as_json = None
            found[name] = any(v == text or (as_json is not None and isinstance(v, dict) and v == as_json) for v in held)
        return {
            "name": case["name"],
            "ok": True,
            "type": creds.type,
            "set": sorted(k for k, v in fields.items() if v not in (None, "", {}, [])),
            "env_resolved": found,
            "threads": profile.threads,
            # a property of the class (dbt-trino's method, http_scheme) is read, not a field
            "unknown": sorted(k for k in set(target) - known if not hasattr(type(creds), k)),
        }
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        return {"name": case["name"], "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    set_from_args(type("Args", (), {})(), None)
    for case in json.load(sys.stdin):
        print("RESULT " + json.dumps(check(case)), flush=True)  # dbt logs to stdout too


if __name__ == "__main__":
    main()
