"""Shared partial-parse state in S3 (moto's real S3 server on loopback): nothing half-written is read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from manifest_dag.worker.partial_parse import ParseState
from manifest_dag.worker.shared_state import SharedParseState, file_sha256, shared_key
from tests.conftest import REPO
from tests.support.moto_s3 import MotoS3

URL = "s3://fleet-state/manifest-dag"
STATE = ParseState(dbt_version="1.11.2", profile_name="shop", target_name="dev", vars_json="", connection="abc")


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3]:
    with MotoS3(tmp_path) as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("MANIFEST_DAG_SHARED_STATE_KEY", raising=False)
        server.bucket("fleet-state")
        yield server


def shared(s3: MotoS3, lines: list[str]) -> SharedParseState:
    return SharedParseState(URL, s3.conn_id, shared_key(STATE, "shop"), lines.append)


def test_the_key_leaves_out_the_project_folder_but_not_what_dbt_checks() -> None:
    assert shared_key(STATE, "shop") == shared_key(STATE, "shop")
    assert shared_key(STATE, "shop") != shared_key(STATE, "other")
    other = ParseState(dbt_version="1.10.0", profile_name="shop", target_name="dev", vars_json="", connection="abc")
    assert shared_key(other, "shop") != shared_key(STATE, "shop")
    assert STATE.key(Path("/a/shop")) != STATE.key(Path("/b/shop"))  # the local key has the folder


def test_published_msgpack_is_fetched_by_another_worker(s3: MotoS3, tmp_path: Path) -> None:
    source = tmp_path / "w1" / "partial_parse.msgpack"
    source.parent.mkdir()
    source.write_bytes(os.urandom(4096))
    lines: list[str] = []
    shared(s3, lines).publish(source)
    assert any("shared state: published the msgpack" in line for line in lines), lines
    dest = tmp_path / "w2" / "partial_parse.msgpack"
    assert shared(s3, lines).fetch(dest)
    assert dest.read_bytes() == source.read_bytes()
    assert dest.stat().st_mode & 0o077 == 0


def test_a_blob_that_does_not_match_its_pointer_is_ignored(s3: MotoS3, tmp_path: Path) -> None:
    source = tmp_path / "partial_parse.msgpack"
    source.write_bytes(b"complete msgpack" * 100)
    lines: list[str] = []
    state = shared(s3, lines)
    state.publish(source)
    # a store where a half-written object is visible: the blob the pointer names is cut short
    key = state._blob_url(file_sha256(source)).removeprefix("s3://fleet-state/")
    s3.put("fleet-state", key, source.read_bytes()[:700])
    dest = tmp_path / "out" / "partial_parse.msgpack"
    assert not state.fetch(dest)
    assert not dest.exists()
    assert any("a half-written or altered object" in line for line in lines), lines


def test_pointer_hmac_is_required_when_the_fleet_has_a_key(
    s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "partial_parse.msgpack"
    source.write_bytes(b"x" * 100)
    lines: list[str] = []
    monkeypatch.setenv("MANIFEST_DAG_SHARED_STATE_KEY", "fleet-secret-1")
    shared(s3, lines).publish(source)
    assert shared(s3, lines).fetch(tmp_path / "a" / "m")
    monkeypatch.setenv("MANIFEST_DAG_SHARED_STATE_KEY", "another-secret")
    assert not shared(s3, lines).fetch(tmp_path / "b" / "m")
    assert any("HMAC does not match" in line for line in lines)
    assert not any("fleet-secret-1" in line or "another-secret" in line for line in lines)


_PUBLISHER = r"""
import sys
from pathlib import Path
from manifest_dag.worker.partial_parse import ParseState
from manifest_dag.worker.shared_state import SharedParseState, shared_key
state = ParseState(dbt_version="1.11.2", profile_name="shop", target_name="dev", vars_json="", connection="abc")
url, conn_id, path = sys.argv[1:4]
SharedParseState(url, conn_id, shared_key(state, "shop"), print).publish(Path(path))
"""


def test_an_upload_killed_midway_is_never_read(s3: MotoS3, tmp_path: Path) -> None:
    good = tmp_path / "good.msgpack"
    good.write_bytes(b"the last complete msgpack" * 1000)
    lines: list[str] = []
    shared(s3, lines).publish(good)
    # a worker publishing a large msgpack is SIGKILLed while its (multipart) upload is under way
    big = tmp_path / "big.msgpack"
    with big.open("wb") as fh:
        for _ in range(40):
            fh.write(os.urandom(1 << 20))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _PUBLISHER, URL, s3.conn_id, str(big)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = s3.client()
    deadline = time.monotonic() + 120
    try:
        while not client.list_multipart_uploads(Bucket="fleet-state").get("Uploads"):
            assert child.poll() is None, "the upload finished before it could be interrupted"
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    uploads = client.list_multipart_uploads(Bucket="fleet-state")["Uploads"]
    assert any(u["Key"].endswith(f"{file_sha256(big)}.msgpack") for u in uploads)  # left unfinished
    dest = tmp_path / "reader" / "partial_parse.msgpack"
    assert shared(s3, lines).fetch(dest)
    assert dest.read_bytes() == good.read_bytes()  # the pointer still names the complete one
    pointer = client.get_object(Bucket="fleet-state", Key=shared(s3, lines).prefix.removeprefix("s3://fleet-state/") + "/latest.json")
    assert orjson.loads(pointer["Body"].read())["body"]["sha256"] == file_sha256(good)


def test_a_msgpack_that_records_a_secret_value_is_not_published(tmp_path: Path) -> None:
    """dbt keeps the values of the env vars a parse read; a secret's value never leaves the worker."""
    from manifest_dag.worker.workspace import Workspace

    lines: list[str] = []
    ws = Workspace(tmp_path, cache_root=tmp_path / "state", state=STATE, secret_values=["pw-9d8f7"], log=lines.append)
    clean, leaky = tmp_path / "clean.msgpack", tmp_path / "leaky.msgpack"
    clean.write_bytes(b"\x81\xa8env_vars\x81\xa4HOME\xa5/root")
    leaky.write_bytes(b"\x81\xa8env_vars\x81\xa2PW\xa8pw-9d8f7")
    assert not ws._records_a_secret(clean)
    assert ws._records_a_secret(leaky)
    assert any("not publishing this msgpack: it records the value of a secret" in line for line in lines)
    assert not any("pw-9d8f7" in line for line in lines)
