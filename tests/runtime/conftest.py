"""Fixtures for runtime tests: one real initdb per runtime and session (``cluster_templates`` in
tests/conftest.py), copied for every test.

Directories live under /tmp with 0755 parents because, when we are root, Postgres runs as
an unprivileged user that must be able to traverse to its volume and run dir.
"""
from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.runtime.base import Endpoint
from appliance.runtime.ports import PortPool
from appliance.runtime.process import ProcessRuntime
from appliance.shell import Runner
from tests.support.clusters import ClusterTemplates

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
def template_volume(runtime: ProcessRuntime, cluster_templates: ClusterTemplates) -> Path:
    """The process runtime's template cluster."""
    return cluster_templates.template(runtime)


_counter = itertools.count()


@pytest.fixture
def new_volume(runtime: ProcessRuntime, cluster_templates: ClusterTemplates, workdir: Path) -> Callable[[], Path]:
    """Fresh cluster volumes: `cp -a` of the session's initdb, as a clone would be."""
    return lambda: cluster_templates.copy(runtime, workdir / f"vol{next(_counter)}")


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
def shared_cluster(runtime: ProcessRuntime, cluster_templates: ClusterTemplates, workdir: Path) -> Iterator[Endpoint]:
    """One socket-only cluster for tests that only read, so they need no copy of their own."""
    volume = cluster_templates.copy(runtime, workdir / "shared")
    endpoint = runtime.start(volume, workdir / "run-shared",
                             port=TEST_PORTS.first_free(_taken_ports, "127.0.0.1"), listen_host=None)
    _taken_ports.add(endpoint.port)
    yield endpoint
    runtime.stop(volume, mode="immediate")


# --- docker runtime and the runtime conformance suite ---------------------------------------
from appliance.runtime.base import InstanceRuntime  # noqa: E402
from appliance.settings import Settings  # noqa: E402
from tests.support.docker import BUILD_IMAGE_SCRIPT, NomadDouble  # noqa: E402
from tests.support.docker import docker_unavailable as _docker_unavailable  # noqa: E402


@pytest.fixture(scope="session")
def docker_runtime(runner: Runner, workdir: Path):
    """A DockerRuntime on the local engine with the project's image (built here when missing)."""
    try:
        import docker

        from appliance.runtime.docker import MANAGED_LABEL, VOLUME_LABEL, DockerRuntime
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        _docker_unavailable(f"no Docker engine answers ({exc}); start dockerd (see scripts/install-deps)")
    image = Settings.model_fields["docker_image"].default
    runner([str(BUILD_IMAGE_SCRIPT), "--tag", image], timeout=900)  # no-op when the tag exists
    runtime = DockerRuntime(runner, image=image, memory_mb=Settings.model_fields["instance_memory_mb"].default,
                            cpus=Settings.model_fields["instance_cpus"].default, client=client)
    yield runtime
    # Containers of this session's volumes that a test left behind (e.g. killed on purpose).
    for row in client.api.containers(all=True, filters={"label": f"{MANAGED_LABEL}=true"}):
        if (row.get("Labels") or {}).get(VOLUME_LABEL, "").startswith(str(workdir)):
            client.api.remove_container(row["Id"], force=True)


@pytest.fixture(scope="session", params=["process", "docker", "nomad"])
def any_runtime(request) -> InstanceRuntime:
    """Each runtime in turn: the conformance suite runs the same tests against every one."""
    return request.getfixturevalue("runtime" if request.param == "process" else f"{request.param}_runtime")


@pytest.fixture
def any_new_volume(any_runtime, cluster_templates: ClusterTemplates, workdir: Path) -> Callable[[], Path]:
    """Fresh cluster volumes of an initdb made by the runtime under test (so init_cluster itself is exercised)."""
    return lambda: cluster_templates.copy(any_runtime, workdir / f"vol{next(_counter)}")


@pytest.fixture
def any_volume(any_new_volume: Callable[[], Path]) -> Path:
    return any_new_volume()


@pytest.fixture
def any_start(any_runtime, run_dir_for, free_port) -> Iterator[Callable[..., Endpoint]]:
    """Start a volume's cluster on the runtime under test; stopped again after the test."""
    started: list[Path] = []

    def do_start(volume: Path, *, listen_host: str | None = None, labels=None, tls=None) -> Endpoint:
        started.append(volume)
        return any_runtime.start(volume, run_dir_for(volume), port=free_port(), listen_host=listen_host,
                                 labels=labels, tls=tls)

    yield do_start
    for volume in started:
        any_runtime.stop(volume, mode="immediate")


# --- nomad runtime: the Nomad-API double (fixture `nomad_double` in tests/conftest.py) ---------
@pytest.fixture(scope="session")
def nomad_runtime(runner: Runner, nomad_double: NomadDouble):
    from appliance.runtime.nomad import NomadRuntime

    image = Settings.model_fields["docker_image"].default
    runner([str(BUILD_IMAGE_SCRIPT), "--tag", image], timeout=900)  # no-op when the tag exists
    return NomadRuntime(runner, addr=nomad_double.addr, token=nomad_double.token,
                        namespace=nomad_double.namespace, region=None, datacenters=["dc1"],
                        node_id=nomad_double.node_id, image=image,
                        memory_mb=Settings.model_fields["instance_memory_mb"].default,
                        cpus=Settings.model_fields["instance_cpus"].default)
