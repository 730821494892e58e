"""A real S3-compatible server on loopback for the tests: moto in server mode.

Each ``MotoS3`` is its own ``moto_server`` process on a free 127.0.0.1 port, started and stopped
by the test, with an Airflow Connection (as an ``AIRFLOW_CONN_*`` variable) whose id is unique to
that server: Airflow caches one filesystem per Connection id in a process, so two servers never
share a cached client. ``pause``/``resume`` stop the process with SIGSTOP/SIGCONT: the kernel
still accepts connections, nobody answers, as with a store behind a broken network.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

#: distinctive credentials: the tests assert they never reach a log, an error or a file
ACCESS_KEY = "AKIAMANIFESTDAGTEST1"
SECRET_KEY = "moto-secret-7f3a9c-never-logged"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoS3:
    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.conn_id = f"moto_s3_{self.port}"
        self.log_path = log_dir / f"moto-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoS3:
        server = Path(sys.executable).with_name("moto_server")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(server), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start; log:\n{self.log_path.read_text()[-2000:]}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def __enter__(self) -> MotoS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a test needs ----------------------------------------------------------------------
    def connection_uri(self) -> str:
        """The Connection as Airflow's JSON form (for ``AIRFLOW_CONN_<ID>``)."""
        return json.dumps(
            {
                "conn_type": "aws",
                "login": ACCESS_KEY,
                "password": SECRET_KEY,
                "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            }
        )

    def env(self) -> dict[str, str]:
        return {f"AIRFLOW_CONN_{self.conn_id.upper()}": self.connection_uri()}

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=body)

    def gets(self, key_suffix: str) -> int:
        """How many GET requests for an object ending in ``key_suffix`` the server logged."""
        text = self.log_path.read_text(errors="replace")
        paths = re.findall(r"GET (/\S*) HTTP/", text)  # the lines may carry colour codes
        return sum(1 for path in paths if path.split("?", 1)[0].endswith(key_suffix))
