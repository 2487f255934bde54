"""Fixtures for runtime tests: one real initdb per session, copied for every test.

Directories live under /tmp with 0755 parents because, when we are root, Postgres runs as
an unprivileged user that must be able to traverse to its volume and run dir.
"""
from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest

from appliance.runtime.base import Endpoint
from appliance.runtime.ports import PortPool
from appliance.runtime.process import ProcessRuntime
from appliance.shell import Runner

# A range away from the appliance's default pool, so a running appliance is not disturbed.
TEST_PORTS = PortPool(26000, 26999)


@pytest.fixture(scope="session")
def runtime(runner: Runner) -> ProcessRuntime:
    return ProcessRuntime(runner)


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sqlrs-runtime-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def template_volume(runtime: ProcessRuntime, workdir: Path) -> Path:
    volume = workdir / "template"
    volume.mkdir()
    runtime.init_cluster(volume, "postgres")
    return volume


_counter = itertools.count()


@pytest.fixture
def new_volume(template_volume: Path, workdir: Path, runner: Runner) -> Callable[[], Path]:
    """Fresh cluster volumes: `cp -a` of the session's initdb, as a clone would be."""
    def make() -> Path:
        target = workdir / f"vol{next(_counter)}"
        runner(["cp", "-a", str(template_volume), str(target)])
        return target
    return make


@pytest.fixture
def volume(new_volume: Callable[[], Path]) -> Path:
    return new_volume()


@pytest.fixture
def run_dir_for(workdir: Path) -> Callable[[Path], Path]:
    return lambda volume: workdir / f"run-{volume.name}"


_taken_ports: set[int] = set()


@pytest.fixture
def free_port() -> Callable[[], int]:
    def pick() -> int:
        port = TEST_PORTS.first_free(_taken_ports, "127.0.0.1")
        _taken_ports.add(port)
        return port
    return pick


@pytest.fixture
def start(runtime: ProcessRuntime, run_dir_for, free_port) -> Iterator[Callable[..., Endpoint]]:
    """Start a volume's cluster; every cluster a test started is stopped afterwards."""
    started: list[Path] = []

    def do_start(volume: Path, *, listen_host: str | None = None) -> Endpoint:
        started.append(volume)
        return runtime.start(volume, run_dir_for(volume), port=free_port(), listen_host=listen_host)

    yield do_start
    for volume in started:
        runtime.stop(volume, mode="immediate")


@pytest.fixture(scope="session")
def shared_cluster(runtime: ProcessRuntime, template_volume: Path, workdir: Path, runner: Runner) -> Iterator[Endpoint]:
    """One socket-only cluster for tests that only read, so they need no copy of their own."""
    volume = workdir / "shared"
    runner(["cp", "-a", str(template_volume), str(volume)])
    endpoint = runtime.start(volume, workdir / "run-shared",
                             port=TEST_PORTS.first_free(_taken_ports, "127.0.0.1"), listen_host=None)
    _taken_ports.add(endpoint.port)
    yield endpoint
    runtime.stop(volume, mode="immediate")
