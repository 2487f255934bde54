"""Docker for tests: the engine, the project's offline-built image, and the Nomad-API double
(a separate process that runs Nomad tasks as real containers)."""
from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_IMAGE_SCRIPT = REPO_ROOT / "scripts" / "build-postgres-image"


def docker_unavailable(reason: str) -> None:
    """Skip loudly on a machine where Docker cannot run; in CI it must run, so fail there."""
    message = f"DOCKER RUNTIME TESTS NOT RUN: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_docker() -> None:
    try:
        import docker
        docker.from_env().ping()
    except Exception as exc:
        docker_unavailable(f"no Docker engine answers ({exc}); start dockerd (see scripts/install-deps)")


def ensure_image(tag: str) -> None:
    subprocess.run([str(BUILD_IMAGE_SCRIPT), "--tag", tag], check=True, capture_output=True, timeout=900)


def ensure_liquibase_image(tag: str) -> None:
    subprocess.run([str(BUILD_IMAGE_SCRIPT.parent / "build-liquibase-image"), "--tag", tag], check=True,
                   capture_output=True, timeout=900)


@dataclass(frozen=True)
class NomadDouble:
    addr: str
    token: str
    node_id: str
    namespace: str


@contextlib.contextmanager
def running_nomad_double() -> Iterator[NomadDouble]:
    """``python -m tests.nomad_double`` as a separate process, with an ACL token and a namespace."""
    require_docker()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    double = NomadDouble(f"http://127.0.0.1:{port}", secrets.token_hex(16), str(uuid.uuid4()), "sqlrs-test")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.nomad_double", "--port", str(port), "--node-id", double.node_id,
         "--namespace", "default", "--namespace", double.namespace],
        cwd=REPO_ROOT, env={**os.environ, "NOMAD_DOUBLE_TOKEN": double.token},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first_line = proc.stdout.readline()  # printed once it listens
    if "listening" not in first_line:
        proc.kill()
        pytest.fail(f"the Nomad double did not start: {first_line}{proc.stdout.read()}")
    try:
        yield double
    finally:
        proc.terminate()  # it removes the containers it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
