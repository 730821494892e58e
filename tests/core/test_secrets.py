"""What is a secret, and how it is hidden: names, values in text, nested values, YAML, URLs."""

from __future__ import annotations

import pytest

from manifest_dag.core.secrets import MASK, Masker, is_secret_name, mask_url_credentials


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "sslpassword",
        "private_key_passphrase",
        "private_key",
        "api_key",
        "apikey",
        "keyfile_json",
        "token",
        "MOTHERDUCK_TOKEN",
        "client_secret",
        "settings_s3_secret_access_key",
        "Passwd",
        "credentials",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["user", "host", "port", "schema", "database", "dbname", "threads", "keyfile", "role"])
def test_names_that_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_the_longest_secret_is_masked_first() -> None:
    masker = Masker(["abc", "abcdef"])
    assert masker("x abcdef y abc z") == f"x {MASK} y {MASK} z"
    assert Masker(["abcdef", "abc"])("abcdef") == MASK  # order given does not matter


def test_short_and_empty_secrets_are_not_masked_in_text() -> None:
    masker = Masker(["", "ab", "secret"])
    assert masker("ab secret") == f"ab {MASK}"


def test_nested_values() -> None:
    masker = Masker(["hunter2"])
    value = {
        "host": "db.example.com",
        "password": "anything",
        "port": 5432,
        "extras": {"token": "t0k3n", "note": "pw is hunter2", "empty_password": ""},
        "hosts": ["a", "hunter2"],
        "api_key": ["k1", "k2"],
    }
    assert masker.value("target", value) == {
        "host": "db.example.com",
        "password": MASK,
        "port": 5432,
        "extras": {"token": MASK, "note": f"pw is {MASK}", "empty_password": ""},
        "hosts": ["a", MASK],
        "api_key": [MASK, MASK],
    }


def test_yaml_hides_secret_keys_and_known_values_but_keeps_env_var() -> None:
    text = (
        "shop:\n"
        "  target: dev\n"
        "  outputs:\n"
        "    dev:\n"
        "      user: bob\n"
        "      password: plain-text-pw\n"
        "      token: \"{{ env_var('SHOP_TOKEN') }}\"\n"
        "      private_key_passphrase: ~\n"
        "      host: s3cr3tvalue.example.com\n"
    )
    masked = Masker(["s3cr3tvalue"]).yaml(text)
    assert "plain-text-pw" not in masked and "s3cr3tvalue" not in masked
    lines = masked.splitlines()
    assert f"      password: '{MASK}'" in lines
    assert "      token: \"{{ env_var('SHOP_TOKEN') }}\"" in lines
    assert "      private_key_passphrase: ~" in lines
    assert "      user: bob" in lines
    assert f"      host: {MASK}.example.com" in lines


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("https://user:tok@pypi.example.com/simple", "https://user:****@pypi.example.com/simple"),
        ("https://ghp_token@github.com/x.git", "https://****@github.com/x.git"),
        ("git+ssh://git:pw@host/repo", "git+ssh://git:****@host/repo"),
        ("https://pypi.org/simple", "https://pypi.org/simple"),
        ("see a@b.com and https://pypi.org", "see a@b.com and https://pypi.org"),
        (
            "--index-url https://u:p1@a.example --extra-index-url https://u2:p2@b.example",
            "--index-url https://u:****@a.example --extra-index-url https://u2:****@b.example",
        ),
    ],
)
def test_url_credentials(text: str, masked: str) -> None:
    assert mask_url_credentials(text) == masked


def test_a_number_under_a_secret_name_is_masked_too() -> None:
    masker = Masker()
    assert masker.value("vars", {"password": 123456, "api_key": 1.5, "threads": 4, "use_token": True}) == {
        "password": MASK,
        "api_key": MASK,
        "threads": 4,
        "use_token": True,
    }
