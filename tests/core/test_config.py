"""The frozen configs: each wrong value fails when the config is built, naming ``Class.field``."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from manifest_dag import (
    ConfigError,
    ProfileConfig,
    ProjectConfig,
    RenderConfig,
    SourceRendering,
    TestBehavior,
    VenvConfig,
)
from manifest_dag.core.naming import DbtNaming
from manifest_dag.core.specs import VenvSpec

REQS = ["dbt-core~=1.11.0", "dbt-duckdb~=1.11.0"]


@pytest.mark.parametrize(
    ("build", "where"),
    [
        (lambda: ProjectConfig(manifest_path=3), "ProjectConfig.manifest_path"),
        (lambda: ProjectConfig(manifest_path=""), "ProjectConfig.manifest_path"),
        (lambda: ProjectConfig(manifest_path="m.json", project_dir=1), "ProjectConfig.project_dir"),
        (lambda: ProjectConfig(manifest_path="m.json", partial_parse_path=[]), "ProjectConfig.partial_parse_path"),
        (lambda: ProjectConfig(manifest_path="m.json", plan_cache_dir=3), "ProjectConfig.plan_cache_dir"),
        (lambda: ProjectConfig(manifest_path="m.json", dbt_vars={1: "x"}), "ProjectConfig.dbt_vars"),
        (lambda: ProjectConfig(manifest_path="m.json", env_vars={"A": 1}), "ProjectConfig.env_vars"),
        (lambda: ProjectConfig(manifest_path="m.json", install_deps="yes"), "ProjectConfig.install_deps"),
        (lambda: ProfileConfig(profile_name=None), "ProfileConfig.profile_name"),
        (lambda: ProfileConfig(profile_name="p", target_name=""), "ProfileConfig.target_name"),
        (lambda: ProfileConfig(profile_name="p", profiles_yml_path=5), "ProfileConfig.profiles_yml_path"),
        (lambda: ProfileConfig(profile_name="p", conn_id=""), "ProfileConfig.conn_id"),
        (lambda: ProfileConfig(profile_name="p", profile_args=["schema"]), "ProfileConfig.profile_args"),
        (lambda: VenvConfig(py_requirements=()), "VenvConfig.py_requirements"),
        (lambda: VenvConfig(py_requirements=[1]), "VenvConfig.py_requirements"),
        (lambda: VenvConfig(py_requirements=REQS, python=3.12), "VenvConfig.python"),
        (lambda: VenvConfig(py_requirements=REQS, index_url=b"https://x"), "VenvConfig.index_url"),
        (lambda: VenvConfig(py_requirements=REQS, extra_index_urls=[None]), "VenvConfig.extra_index_urls"),
        (lambda: VenvConfig(py_requirements=REQS, find_links=[1]), "VenvConfig.find_links"),
        (lambda: VenvConfig(py_requirements=REQS, pip_args=[1]), "VenvConfig.pip_args"),
        (lambda: VenvConfig(py_requirements=REQS, constraints=7), "VenvConfig.constraints"),
        (lambda: VenvConfig(py_requirements=REQS, cache_dir=7), "VenvConfig.cache_dir"),
        (lambda: VenvConfig(py_requirements=REQS, py_system_site_packages=1), "VenvConfig.py_system_site_packages"),
        (lambda: VenvConfig(py_requirements=REQS, warm_processes=-1), "VenvConfig.warm_processes"),
        (lambda: VenvConfig(py_requirements=REQS, warm_processes=True), "VenvConfig.warm_processes"),
        (lambda: VenvConfig(py_requirements=REQS, warm_processes=1.5), "VenvConfig.warm_processes"),
        (lambda: RenderConfig(exclude=[None]), "RenderConfig.exclude"),
        (lambda: RenderConfig(selector=""), "RenderConfig.selector"),
        (lambda: RenderConfig(test_behavior="sometimes"), "RenderConfig.test_behavior"),
        (lambda: RenderConfig(source_rendering="all"), "RenderConfig.source_rendering"),
        (lambda: RenderConfig(indirect_selection="lazy"), "RenderConfig.indirect_selection"),
        (lambda: RenderConfig(include_packages=None), "RenderConfig.include_packages"),
        (lambda: RenderConfig(allow_empty=0), "RenderConfig.allow_empty"),
        (lambda: RenderConfig(task_scoped="no"), "RenderConfig.task_scoped"),
    ],
)
def test_a_wrong_value_names_the_field(build: Callable[[], Any], where: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(where)):
        build()


def test_an_enum_error_lists_the_allowed_values() -> None:
    with pytest.raises(ConfigError) as info:
        RenderConfig(test_behavior="sometimes")
    for behavior in TestBehavior:
        assert repr(behavior.value) in str(info.value)


def test_defaults() -> None:
    project = ProjectConfig(manifest_path="target/manifest.json")
    assert project.project_dir is None and project.partial_parse_path is None and project.plan_cache_dir is None
    assert dict(project.dbt_vars) == {} and dict(project.env_vars) == {} and project.install_deps is False
    profile = ProfileConfig(profile_name="shop")
    assert (profile.target_name, profile.profiles_yml_path, profile.conn_id) == ("dev", None, None)
    render = RenderConfig()
    assert render.test_behavior is TestBehavior.AFTER_EACH
    assert render.source_rendering is SourceRendering.NONE
    assert (render.select, render.exclude, render.selector) == ((), (), None)
    assert render.indirect_selection == "eager"
    assert (render.include_packages, render.allow_empty, render.emit_assets, render.task_scoped) == (
        True,
        False,
        False,
        True,
    )
    assert type(render.naming) is DbtNaming
    venv = VenvConfig(py_requirements=REQS)
    assert venv.python is None and venv.index_url is None and venv.warm_processes is None and venv.cache_dir is None
    assert (venv.extra_index_urls, venv.find_links, venv.pip_args) == ((), (), ())


def test_values_are_normalised() -> None:
    project = ProjectConfig(manifest_path="m.json", project_dir="/srv/dbt", plan_cache_dir="plans", dbt_vars=None)
    assert project.manifest_path == Path("m.json") and project.project_dir == Path("/srv/dbt")
    assert project.plan_cache_dir == Path("plans") and dict(project.dbt_vars) == {}
    assert ProjectConfig(manifest_path="m.json", plan_cache_dir=False).plan_cache_dir is False
    render = RenderConfig(select="tag:nightly", exclude=["a", "b"], test_behavior="build", source_rendering="freshness")
    assert render.select == ("tag:nightly",) and render.exclude == ("a", "b")
    assert render.test_behavior is TestBehavior.BUILD and render.source_rendering is SourceRendering.FRESHNESS
    assert VenvConfig(py_requirements="dbt-duckdb").py_requirements == ("dbt-duckdb",)


def test_configs_are_frozen_and_their_mappings_read_only() -> None:
    project = ProjectConfig(manifest_path="m.json", dbt_vars={"day": "{{ ds }}"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        project.install_deps = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        project.dbt_vars["day"] = "x"  # type: ignore[index]
    vars_in = {"a": "1"}
    profile = ProfileConfig(profile_name="p", profile_args=vars_in)
    vars_in["a"] = "2"
    assert profile.profile_args["a"] == "1"  # a copy, not the caller's dict
    for config in (profile, RenderConfig(), VenvConfig(py_requirements=REQS)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.select = ()  # type: ignore[misc,union-attr]


def test_venv_config_repr_masks_index_credentials() -> None:
    venv = VenvConfig(
        py_requirements=REQS,
        index_url="https://deploy:s3cr3t-token@pypi.example.com/simple",
        extra_index_urls=["https://ghp_abcdef123@mirror.example.com/simple"],
    )
    text = repr(venv)
    assert "s3cr3t-token" not in text and "ghp_abcdef123" not in text
    assert "https://deploy:****@pypi.example.com/simple" in text
    assert "https://****@mirror.example.com/simple" in text
    assert text.startswith("VenvConfig(py_requirements=") and "dbt-duckdb~=1.11.0" in text
    assert venv.index_url == "https://deploy:s3cr3t-token@pypi.example.com/simple"  # only the repr hides it


@pytest.mark.parametrize(
    ("dbt_version", "adapter", "requirements"),
    [
        ("1.8.3", "postgres", ("dbt-core==1.8.3", "dbt-postgres~=1.8.0")),
        ("1.11.2", "duckdb", ("dbt-core==1.11.2", "dbt-duckdb~=1.11.0")),
        ("1.10.0", None, ("dbt-core==1.10.0",)),
    ],
)
def test_for_manifest_pins_the_dbt_that_wrote_it(
    dbt_version: str, adapter: str | None, requirements: tuple[str, ...]
) -> None:
    assert VenvConfig.for_manifest(dbt_version, adapter).py_requirements == requirements


def test_to_spec_carries_every_venv_field() -> None:
    venv = VenvConfig(
        py_requirements=REQS,
        python="/usr/bin/python3.12",
        index_url="https://pypi.example.com/simple",
        extra_index_urls=["https://extra.example.com/simple"],
        find_links=["/wheels"],
        constraints=Path("/etc/constraints.txt"),
        py_system_site_packages=True,
        pip_args=["--no-cache"],
        warm_processes=2,
        cache_dir="/var/cache/venvs",
    )
    assert venv.to_spec() == VenvSpec(
        requirements=tuple(REQS),
        python="/usr/bin/python3.12",
        index_url="https://pypi.example.com/simple",
        extra_index_urls=("https://extra.example.com/simple",),
        find_links=("/wheels",),
        constraints="/etc/constraints.txt",
        system_site_packages=True,
        pip_args=("--no-cache",),
    )
    # where the venv is cached and how many warm processes it gets do not key it
    assert (
        VenvConfig(py_requirements=REQS).to_spec()
        == VenvConfig(py_requirements=REQS, warm_processes=0, cache_dir="/x").to_spec()
    )


@pytest.mark.parametrize(
    ("build", "where"),
    [
        (
            lambda: ProjectConfig(manifest_path="m.json", project_dir="dbt/shop"),
            "ProjectConfig.project_dir: must be an absolute path",
        ),
        (
            lambda: ProjectConfig(manifest_path="https://x.example"),
            "ProjectConfig.manifest_path: must name an object",
        ),
        (
            # a URL made a Path folds its "//": neither a local file nor a URL any more
            lambda: ProjectConfig(manifest_path=Path("s3://bucket/manifest.json")),
            "ProjectConfig.manifest_path: must be a local file path or an object-store URL",
        ),
        (
            lambda: ProjectConfig(manifest_path="/srv/m.json", manifest_conn_id="aws"),
            "ProjectConfig.manifest_conn_id: is for a manifest_path or partial_parse_path in object storage",
        ),
        (
            lambda: ProjectConfig(manifest_path="/srv/m.json", shared_state_url="/srv/state"),
            "ProjectConfig.shared_state_url: must be an object-store URL",
        ),
        (lambda: VenvConfig(py_requirements=REQS, index_url=""), "VenvConfig.index_url: must be a URL"),
        (
            lambda: VenvConfig(py_requirements=REQS, index_url="pypi.example/simple"),
            "VenvConfig.index_url: must be a URL",
        ),
        (lambda: VenvConfig(py_requirements=REQS, extra_index_urls=[""]), "VenvConfig.extra_index_urls: must be a URL"),
        (lambda: VenvConfig(py_requirements=REQS, constraints=""), "VenvConfig.constraints"),
        (
            lambda: VenvConfig(py_requirements=REQS, constraints="constraints.txt"),
            "VenvConfig.constraints: must be an absolute path",
        ),
    ],
)
def test_mistakes_that_would_only_fail_inside_the_task_fail_at_import(build: Callable[[], Any], where: str) -> None:
    """Issue 19 item 18: each of these used to pass the DAG import and fail on the worker."""
    with pytest.raises(ConfigError) as raised:
        build()
    assert str(raised.value).startswith(where), str(raised.value)


def test_what_lives_only_on_workers_is_not_checked_for_existence(tmp_path: Path) -> None:
    """The scheduler has no project dir and no constraints file: absolute paths are enough."""
    project = ProjectConfig(manifest_path="m.json", project_dir="/srv/dbt/does-not-exist-here")
    assert project.project_dir == Path("/srv/dbt/does-not-exist-here")
    venv = VenvConfig(
        py_requirements=REQS,
        index_url="https://pypi.example/simple",
        constraints="/etc/worker/constraints.txt",
        extra_index_urls=["file:///wheels/simple"],
    )
    assert venv.to_spec().constraints == "/etc/worker/constraints.txt"
    assert (
        VenvConfig(py_requirements=REQS, constraints="https://x.example/c.txt").constraints == "https://x.example/c.txt"
    )


# -- yes/no settings decided per run (issue 21 items 2 and 9) --------------------------------------------
def test_a_switch_is_a_bool_or_a_template() -> None:
    from manifest_dag.core.config import check_switch

    assert check_switch(True, "x.full_refresh") is True and check_switch("{{ params.fr }}", "x") == "{{ params.fr }}"
    for bad in ("yes", "", None, 1):
        with pytest.raises(
            ConfigError,
            match=re.escape("x.full_refresh must be True, False or a template such as '{{ params.full_refresh }}'"),
        ):
            check_switch(bad, "x.full_refresh")


@pytest.mark.parametrize(
    ("value", "wanted"),
    [(True, True), (False, False), ("True", True), (" yes ", True), ("ON", True), ("1", True), ("False", False),
     ("no", False), ("off", False), ("0", False), ("", False), ("None", False), (None, False), (1, True), (0, False)],
)  # fmt: skip
def test_a_rendered_switch_says_true_or_false(value: Any, wanted: bool) -> None:
    from manifest_dag.core.config import rendered_switch

    assert rendered_switch(value, "here") is wanted


@pytest.mark.parametrize("value", ["maybe", 2, [True], "{{ params.x }}"])
def test_a_rendered_switch_that_says_neither_is_refused(value: Any) -> None:
    from manifest_dag.core.config import rendered_switch

    with pytest.raises(ConfigError, match="here"):
        rendered_switch(value, "here")


def test_project_install_deps_may_be_a_template() -> None:
    assert ProjectConfig(manifest_path="/m.json", install_deps="{{ params.deps }}").install_deps == "{{ params.deps }}"
    with pytest.raises(ConfigError, match=re.escape("ProjectConfig.install_deps must be True, False or a template")):
        ProjectConfig(manifest_path="/m.json", install_deps="yes")
