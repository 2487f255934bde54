"""A real embedded appliance (`sqlrs-appliance up` in a subprocess) and a small API client."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from appliance.planning.packing import pack_directory_bundle, pack_psql_bundle

TERMINAL = {"succeeded", "failed", "cancelled"}


class Appliance:
    def __init__(self, data_dir: Path, port: int, *, port_range: tuple[int, int],
                 extra_env: dict[str, str] | None = None):
        self.data_dir, self.port = data_dir, port
        self.url = f"http://127.0.0.1:{port}"
        inherited = {k: v for k, v in os.environ.items() if k != "SQLRS_REDIS_URL"}  # a private one, unless given
        self.env = {**inherited, "SQLRS_PORT_MIN": str(port_range[0]), "SQLRS_PORT_MAX": str(port_range[1]),
                    "SQLRS_BTRFS_IMAGE_BYTES": str(4 * 1024**3), **(extra_env or {})}
        self.process: subprocess.Popen | None = None
        self.token = ""
        self.org: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 60.0, *, command: str = "up") -> Appliance:
        """``up`` (API, workers, reconciler) or ``api`` (API and reconciler; workers run apart)."""
        self.log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance.service.main", command, "--listen", f"127.0.0.1:{self.port}"],
            env={**self.env, "SQLRS_DATA_DIR": str(self.data_dir)}, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"appliance exited with {self.process.returncode}: {self.log_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    self.token = (self.data_dir / "admin.token").read_text().strip()
                    if self.get("/v1/ready").status_code == 200:
                        return self
            except (httpx.HTTPError, FileNotFoundError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"appliance did not become ready: {self.log_text()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def destroy(self, keep_logs_in: Path | None = None) -> None:
        self.stop()
        if keep_logs_in is not None and (self.data_dir / "logs").is_dir():
            import shutil
            shutil.rmtree(keep_logs_in, ignore_errors=True)
            shutil.copytree(self.data_dir / "logs", keep_logs_in)
            (keep_logs_in / "appliance.log").write_text(self.log_text())
        subprocess.run([sys.executable, "-m", "appliance.service.main", "destroy", "--data-dir",
                        str(self.data_dir), "--yes"], env=self.env, capture_output=True)

    def log_text(self) -> str:
        path = self.data_dir.parent / f"{self.data_dir.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- HTTP --------------------------------------------------------------------------------
    @property
    def headers(self) -> dict[str, str]:
        org = {"X-Sqlrs-Org": self.org} if self.org else {}
        return {"Authorization": f"Bearer {self.token}", **org}

    @contextlib.contextmanager
    def acting_in(self, org: str):
        """Requests in the block act in ``org`` (the operator token may act in any)."""
        previous, self.org = self.org, org
        try:
            yield self
        finally:
            self.org = previous

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers={**self.headers, **kw.pop("headers", {})}, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, headers={**self.headers, **kw.pop("headers", {})}, timeout=30, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.put(self.url + path, headers={**self.headers, **kw.pop("headers", {})}, timeout=30, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.delete(self.url + path, headers={**self.headers, **kw.pop("headers", {})}, timeout=60, **kw)

    def submit(self, psql_args: list[str], cwd: Path, **fields: Any) -> httpx.Response:
        """What `sqlrs prepare:psql` does: pack, upload, submit (without waiting)."""
        bundle = pack_psql_bundle(psql_args, cwd)
        body: dict[str, Any] = {"prepare_kind": "psql", "image_id": "postgres:15",
                                "psql_args": bundle.psql_args, **fields}
        if bundle.files:
            upload = self.post("/v1/sources", content=bundle.data,
                               headers={"Content-Type": "application/gzip"})
            assert upload.status_code in (200, 201), upload.text
            body["source"] = {"source_id": upload.json()["source_id"], "work_dir": bundle.work_dir}
        return self.post("/v1/prepare-jobs", json=body)

    def submit_lb(self, liquibase_args: list[str], project: Path, **fields: Any) -> httpx.Response:
        """What `sqlrs prepare:lb` does: pack the project directory, upload, submit."""
        return self.post("/v1/prepare-jobs", json=self.lb_request(liquibase_args, project, **fields))

    def lb_request(self, liquibase_args: list[str], project: Path, **fields: Any) -> dict[str, Any]:
        """A Liquibase request body, the project directory uploaded as its source."""
        bundle = pack_directory_bundle(project)
        upload = self.post("/v1/sources", content=bundle.data, headers={"Content-Type": "application/gzip"})
        assert upload.status_code in (200, 201), upload.text
        return {"prepare_kind": "lb", "image_id": "postgres:15", "liquibase_args": liquibase_args,
                "source": {"source_id": upload.json()["source_id"], "work_dir": bundle.work_dir}, **fields}

    def wait(self, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.get(f"/v1/prepare-jobs/{job_id}").json()
            if status["status"] in TERMINAL:
                return status
            time.sleep(0.1)
        raise TimeoutError(f"job {job_id} still {status['status']}")

    def prepare(self, psql_args: list[str], cwd: Path, **fields: Any) -> dict[str, Any]:
        response = self.submit(psql_args, cwd, **fields)
        assert response.status_code == 201, response.text
        return self.wait(response.json()["job_id"])

    def first_event(self, job_id: str, predicate, timeout: float = 120.0) -> dict[str, Any]:
        """Follow the live stream until an event matches (the stream itself never ends early)."""
        with httpx.stream("GET", f"{self.url}/v1/prepare-jobs/{job_id}/events", headers=self.headers,
                          timeout=timeout) as response:
            for line in response.iter_lines():
                if line.strip() and predicate(event := json.loads(line)):
                    return event
        raise AssertionError(f"job {job_id} ended without a matching event")

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """Every event of a job that has ended (on a running job this follows it to the end)."""
        response = self.get(f"/v1/prepare-jobs/{job_id}/events")
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]
