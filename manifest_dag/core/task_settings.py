"""Per-node Airflow and dbt settings read from a dbt node's ``meta``, checked at the DAG import.

A data team keeps what is special about a model next to the model: its pool, its retries, its
owner, the vars it needs. These are read from three places of ``meta`` (``config.meta`` over the
node's top-level ``meta``), later ones winning:

- ``meta.owner``: the task's owner (the dbt convention cosmos reads too);
- ``meta.cosmos``: cosmos's form, so migrated projects keep working (``operator_kwargs`` with
  cosmos's names ``vars``, ``env``, ``full_refresh``, ``dbt_cmd_flags``, and ``profile_config``);
- ``meta.manifest_dag``: ours (``SETTING_KEYS``).

Everything is checked here, without Airflow: a wrong key or type fails the DAG import with a
``NodeSettingsError`` naming the node and the key, never a worker hours later. What comes out is
plain data (numbers, strings, tuples, dicts) that the plan cache stores; the renderer turns it
into operator arguments (durations into ``timedelta``, callback names into the callables of
``RenderConfig.callbacks``). Nothing read here is ever a Jinja template: the renderer passes the
dbt values to the operator as ``LiteralValue``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from manifest_dag.core.dbt import check_dbt_flags
from manifest_dag.core.errors import ConfigError

#: our own namespace under a node's ``meta``
META_KEY = "manifest_dag"
#: cosmos's namespace under ``meta`` (``operator_kwargs`` and ``profile_config``)
COSMOS_META_KEY = "cosmos"

#: Airflow's callback arguments a node may name (callables come from ``RenderConfig.callbacks``)
CALLBACK_KEYS = (
    "on_execute_callback",
    "on_success_callback",
    "on_failure_callback",
    "on_retry_callback",
    "on_skipped_callback",
)
#: Airflow's trigger rules (``airflow.task.trigger_rule.TriggerRule``; a unit test holds them equal)
TRIGGER_RULES = frozenset(
    {
        "all_success",
        "all_failed",
        "all_done",
        "all_done_min_one_success",
        "all_done_setup_success",
        "one_success",
        "one_failed",
        "one_done",
        "none_failed",
        "none_skipped",
        "always",
        "none_failed_min_one_success",
        "all_skipped",
    }
)
#: Airflow arguments that are durations: seconds (a number) or text such as ``"90s"``, ``"1h30m"``
DURATION_KEYS = ("retry_delay", "max_retry_delay", "execution_timeout")
#: the profile fields a node may override (``ProfileConfig``'s)
PROFILE_KEYS = ("profile_name", "target_name", "profiles_yml_path", "conn_id", "profile_args")

#: every key ``meta.manifest_dag`` (and ``RenderConfig.test_task_args``) may set, and what it is
SETTING_KEYS: Mapping[str, str] = {
    "owner": "the task's owner (text)",
    "pool": "the Airflow pool (text)",
    "pool_slots": "pool slots the task takes (a whole number >= 1)",
    "queue": "the executor queue (text)",
    "retries": "retries after a failure (a whole number >= 0)",
    "retry_delay": "time between retries (seconds, or text such as '90s', '5m', '1h30m')",
    "retry_exponential_backoff": "longer waits between retries (true/false, or Airflow's multiplier)",
    "max_retry_delay": "the longest wait between retries (a duration)",
    "execution_timeout": "the task fails after this long (a duration)",
    "priority_weight": "the task's priority (a whole number)",
    "weight_rule": "how priority adds up: downstream, upstream or absolute",
    "trigger_rule": "when the task runs, by its upstream states (an Airflow trigger rule)",
    **{key: "the name of a callback in RenderConfig.callbacks, or a list of names" for key in CALLBACK_KEYS},
    "dbt_vars": "dbt vars for this node's task (a mapping), over ProjectConfig.dbt_vars",
    "env": "environment variables for dbt (a mapping of names to text), over ProjectConfig.env_vars",
    "dbt_flags": "extra dbt flags (a list of text), after the operator_args ones",
    "full_refresh": "run with --full-refresh (true/false)",
    "profile": f"profile fields to override ({', '.join(PROFILE_KEYS)})",
}
#: keys that shape only the node's own dbt command: its test task does not inherit them
OWN_COMMAND_KEYS = frozenset({"dbt_flags", "full_refresh"})
#: cosmos's ``operator_kwargs`` names that differ from ours
COSMOS_NAMES: Mapping[str, str] = {"vars": "dbt_vars", "dbt_cmd_flags": "dbt_flags"}
_WEIGHT_RULES = frozenset({"downstream", "upstream", "absolute"})
_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$"
)


class NodeSettingsError(ConfigError):
    """A node's ``meta`` (or ``RenderConfig.test_task_args``) sets a task argument wrongly.

    ``where`` names the node (its unique id) or the option, ``key`` the setting at fault.
    """

    def __init__(self, where: str, key: str, message: str) -> None:
        super().__init__(f"{where}: {key} {message}")
        self.where = where
        self.key = key


def parse_duration(value: Any) -> float | None:
    """Seconds from a number or a text such as ``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"``; None if neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        match = _DURATION.match(text)
        if match is None or not any(match.groups()):
            return None
        d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
        return d * 86400 + h * 3600 + m * 60 + s
    return seconds if seconds >= 0 else None


def _whole(value: Any, minimum: int | None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (minimum is None or value >= minimum)


def _names(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        if all(isinstance(v, str) and v for v in value):
            return tuple(value)
    return None


def check_settings(
    raw: Any,
    where: str,
    *,
    prefix: str,
    callbacks: Collection[str] | None,
    command: str | None = None,
) -> dict[str, Any]:
    """``raw`` (a mapping of ``SETTING_KEYS``) checked and made plain; errors name ``where`` and the key.

    ``prefix``: how the keys are shown (``meta.manifest_dag.``); ``callbacks``: the names
    ``RenderConfig.callbacks`` defines (None: not checked yet, e.g. while building the config
    itself); ``command``: the dbt command the flags are for (``check_dbt_flags``).
    """
    if not isinstance(raw, Mapping):
        raise NodeSettingsError(
            where, prefix.rstrip(".") or "settings", f"must be a mapping of settings, got {type(raw).__name__}"
        )
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if not isinstance(key, str) or key not in SETTING_KEYS:
            close = [k for k in SETTING_KEYS if isinstance(key, str) and (k in key or key in k)]
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise NodeSettingsError(
                where, name, f"is not a setting manifest-dag knows{hint}; known: {', '.join(SETTING_KEYS)}"
            )
        out[key] = _checked(key, value, where, name, callbacks, command)
    return out


def _checked(
    key: str, value: Any, where: str, name: str, callbacks: Collection[str] | None, command: str | None
) -> Any:
    def bad(expected: str) -> NodeSettingsError:
        return NodeSettingsError(where, name, f"must be {expected}, got {value!r}")

    if key in ("owner",):
        owners = _names(value)
        if owners is None:
            raise bad("text (or a list of text)")
        return ", ".join(owners)
    if key in ("pool", "queue"):
        if not isinstance(value, str) or not value.strip():
            raise bad("non-empty text")
        return value
    if key == "pool_slots":
        if not _whole(value, 1):
            raise bad("a whole number >= 1")
        return value
    if key == "retries":
        if not _whole(value, 0):
            raise bad("a whole number >= 0")
        return value
    if key == "priority_weight":
        if not _whole(value, None):
            raise bad("a whole number")
        return value
    if key == "retry_exponential_backoff":
        if not isinstance(value, (bool, int, float)) or value < 0:
            raise bad("true, false or a number >= 0")
        return value
    if key == "full_refresh":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if key in DURATION_KEYS:
        seconds = parse_duration(value)
        if seconds is None:
            raise bad("a duration: seconds (a number >= 0) or text such as '90s', '5m', '1h30m'")
        return seconds
    if key == "weight_rule":
        if value not in _WEIGHT_RULES:
            raise bad(f"one of {', '.join(sorted(_WEIGHT_RULES))}")
        return value
    if key == "trigger_rule":
        if value not in TRIGGER_RULES:
            raise bad(f"an Airflow trigger rule ({', '.join(sorted(TRIGGER_RULES))})")
        return value
    if key in CALLBACK_KEYS:
        names = _names(value)
        if names is None:
            raise bad("the name of a callback in RenderConfig.callbacks (or a list of names)")
        if callbacks is not None:
            unknown = [n for n in names if n not in callbacks]
            if unknown:
                known = ", ".join(sorted(callbacks)) or "none defined"
                raise NodeSettingsError(
                    where,
                    name,
                    f"names {unknown[0]!r}, which RenderConfig.callbacks does not define ({known}); "
                    "callbacks are code, so the DAG file names them: RenderConfig(callbacks={name: function})",
                )
        return names
    if key == "dbt_vars":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise bad("a mapping of var names to values")
        return dict(value)
    if key == "env":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
            raise bad("a mapping of variable names to text")
        env: dict[str, str] = {}
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                raise NodeSettingsError(where, f"{name}.{k}", f"must be text (or a number), got {v!r}")
            env[k] = str(v)
        return env
    if key == "dbt_flags":
        if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(f, str) for f in value):
            raise bad("a list of text")
        try:
            return check_dbt_flags(list(value), f"{where}: {name}", command)
        except ConfigError as exc:
            raise NodeSettingsError(where, name, str(exc).split(f"{name}: ", 1)[-1]) from None
    if key == "profile":
        return _checked_profile(value, where, name)
    raise AssertionError(key)  # pragma: no cover - SETTING_KEYS and this function go together


def _checked_profile(value: Any, where: str, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise NodeSettingsError(where, name, f"must be a mapping of {', '.join(PROFILE_KEYS)}, got {value!r}")
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k not in PROFILE_KEYS:
            raise NodeSettingsError(where, f"{name}.{k}", f"is not a profile field; known: {', '.join(PROFILE_KEYS)}")
        if k == "profile_args":
            if not isinstance(v, Mapping) or not all(isinstance(a, str) for a in v):
                raise NodeSettingsError(where, f"{name}.{k}", f"must be a mapping, got {v!r}")
            out[k] = dict(v)
        elif not isinstance(v, str) or not v:
            raise NodeSettingsError(where, f"{name}.{k}", f"must be non-empty text, got {v!r}")
        else:
            out[k] = v
    return out


def _cosmos_settings(raw: Any, where: str) -> dict[str, Any]:
    """cosmos's ``meta.cosmos`` in our names (``operator_kwargs`` and ``profile_config``)."""
    prefix = f"meta.{COSMOS_META_KEY}"
    if not isinstance(raw, Mapping):
        raise NodeSettingsError(where, prefix, f"must be a mapping, got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "operator_kwargs":
            if not isinstance(value, Mapping):
                raise NodeSettingsError(where, f"{prefix}.{key}", f"must be a mapping, got {type(value).__name__}")
            for k, v in value.items():
                ours = COSMOS_NAMES.get(k, k)
                if ours not in SETTING_KEYS or ours == "profile":
                    raise NodeSettingsError(
                        where,
                        f"{prefix}.operator_kwargs.{k}",
                        "is not an argument manifest-dag's tasks take; known: "
                        + ", ".join(sorted({*COSMOS_NAMES, *SETTING_KEYS} - {"profile", *COSMOS_NAMES.values()})),
                    )
                out[ours] = (f"{prefix}.operator_kwargs.{k}", v)
        elif key == "profile_config":
            if not isinstance(value, Mapping):
                raise NodeSettingsError(where, f"{prefix}.{key}", f"must be a mapping, got {type(value).__name__}")
            profile: dict[str, Any] = {}
            for k, v in value.items():
                if k in ("profile_name", "target_name"):
                    profile[k] = v
                elif k == "profiles_yml_filepath":
                    profile["profiles_yml_path"] = v
                elif k == "profile_mapping" and isinstance(v, Mapping):
                    for mk, mv in v.items():
                        if mk not in ("conn_id", "profile_args"):
                            raise NodeSettingsError(
                                where,
                                f"{prefix}.{key}.{k}.{mk}",
                                "is not read; a profile mapping takes conn_id and profile_args",
                            )
                        profile[mk] = mv
                else:
                    raise NodeSettingsError(
                        where,
                        f"{prefix}.{key}.{k}",
                        "is not read; known: profile_name, target_name, profiles_yml_filepath, profile_mapping",
                    )
            out["profile"] = (f"{prefix}.{key}", profile)
        else:
            raise NodeSettingsError(
                where, f"{prefix}.{key}", "is not read; cosmos's keys are operator_kwargs and profile_config"
            )
    return out


def node_settings(
    meta: Mapping[str, Any] | None,
    config_meta: Any,
    where: str,
    *,
    callbacks: Collection[str],
    command: str | None,
) -> dict[str, Any]:
    """A node's settings from its ``meta`` (``config.meta`` over it): ``meta.owner``, then
    ``meta.cosmos``, then ``meta.manifest_dag``, later ones winning key by key. ``{}`` when none."""
    merged: dict[str, Any] = dict(meta or {})
    if isinstance(config_meta, Mapping):
        merged.update(config_meta)
    if not merged or not ({"owner", META_KEY, COSMOS_META_KEY} & merged.keys()):
        return {}
    found: dict[str, tuple[str, Any]] = {}
    if "owner" in merged and merged["owner"] is not None:
        found["owner"] = ("meta.owner", merged["owner"])
    if COSMOS_META_KEY in merged and merged[COSMOS_META_KEY] is not None:
        found.update(_cosmos_settings(merged[COSMOS_META_KEY], where))
    if META_KEY in merged and merged[META_KEY] is not None:
        ours = merged[META_KEY]
        if not isinstance(ours, Mapping):
            raise NodeSettingsError(
                where, f"meta.{META_KEY}", f"must be a mapping of settings, got {type(ours).__name__}"
            )
        found.update((k, (f"meta.{META_KEY}.{k}", v)) for k, v in ours.items())
    out: dict[str, Any] = {}
    for key, (name, value) in found.items():
        if key not in SETTING_KEYS:
            check_settings({key: value}, where, prefix=f"meta.{META_KEY}.", callbacks=callbacks, command=command)
        out[key] = _checked(key, value, where, name, callbacks, command)
    return out
