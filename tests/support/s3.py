"""A real S3 server for tests: ``moto``'s server as a separate process on loopback."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import urllib3

from appliance.objectstore.s3 import S3ObjectStore
from tests.support.ports import free_tcp_port

ACCESS_KEY, SECRET_KEY = "test-access-key", "test-secret-key-never-logged"


def s3_env(server: S3Server, bucket: str, prefix: str = "") -> dict[str, str]:
    """The settings environment of an appliance keeping its objects in ``bucket``/``prefix``."""
    url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    return {"SQLRS_ARTIFACTS_URL": url, "SQLRS_S3_ENDPOINT": server.endpoint,
            "SQLRS_S3_ACCESS_KEY": ACCESS_KEY, "SQLRS_S3_SECRET_KEY": SECRET_KEY, "SQLRS_S3_SECURE": "false",
            "SQLRS_S3_REGION": "us-east-1"}


class S3Server:
    """``python -m moto.server`` on 127.0.0.1; started once per session."""

    def __init__(self, log: Path) -> None:
        self.port = free_tcp_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self._log = open(log, "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                         "-p", str(self.port)], stdout=self._log, stderr=subprocess.STDOUT)

    def wait_until_ready(self, attempts: int = 300) -> None:
        http = urllib3.PoolManager(retries=False, timeout=1.0)
        for _ in range(attempts):
            if self.process.poll() is not None:
                raise RuntimeError(f"the S3 server exited with {self.process.returncode}")
            try:
                http.request("GET", f"http://{self.endpoint}/")
                return
            except urllib3.exceptions.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the S3 server did not answer")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()

    def store(self, prefix: str = "") -> S3ObjectStore:
        """A store on a fresh bucket, so tests never see each other's objects."""
        return S3ObjectStore(self.endpoint, f"b-{uuid.uuid4().hex[:20]}", prefix, access_key=ACCESS_KEY,
                             secret_key=SECRET_KEY, secure=False, region="us-east-1")
