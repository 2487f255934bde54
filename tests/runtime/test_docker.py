"""What only the docker runtime does: containers, their labels, mounts, limits and reconciliation.

Runs against the real Docker engine and the project's offline-built image (conftest builds it
when missing)."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import docker
import pytest

from appliance.errors import CommandFailed, InvalidArgument
from appliance.runtime.base import Limits
from appliance.runtime.docker import CONTAINER_PGDATA, CONTAINER_RUN_DIR, container_name
from tests.support.clusters import kill_from_outside
from tests.support.polling import eventually

from .pg import socket_psql


@pytest.fixture(scope="module")
def engine(docker_runtime):
    return docker.from_env()


@pytest.fixture(scope="module")
def docker_template(docker_runtime, cluster_templates) -> Path:
    return cluster_templates.template(docker_runtime)


@pytest.fixture
def docker_volume(docker_runtime, cluster_templates, workdir: Path, request) -> Path:
    return cluster_templates.copy(docker_runtime, workdir / f"docker-{request.node.name[:40]}")


@pytest.fixture
def started(docker_runtime, docker_volume: Path, run_dir_for, free_port):
    """A running container for the test's volume, with the labels an orchestrator would set."""
    endpoint = docker_runtime.start(docker_volume, run_dir_for(docker_volume), port=free_port(),
                                    listen_host="127.0.0.1",
                                    labels={"sqlrs.org": "acme", "sqlrs.instance": "i-1", "state": "s-9"})
    yield endpoint
    docker_runtime.stop(docker_volume, mode="immediate")


def _container(engine, volume: Path):
    return engine.containers.get(container_name(volume))


def test_the_container_carries_the_callers_labels_and_the_managed_label(engine, docker_volume, started):
    labels = _container(engine, docker_volume).labels
    assert {k: labels.get(k) for k in ("sqlrs.org", "sqlrs.instance", "sqlrs.state", "sqlrs.managed")} == {
        "sqlrs.org": "acme", "sqlrs.instance": "i-1", "sqlrs.state": "s-9", "sqlrs.managed": "true"}


def test_only_pgdata_and_the_run_dir_are_mounted(engine, docker_volume, started):
    mounts = {(m["Source"], m["Destination"]) for m in _container(engine, docker_volume).attrs["Mounts"]}
    assert mounts == {(os.path.realpath(docker_volume / "pgdata"), CONTAINER_PGDATA),
                      (os.path.realpath(started.socket_dir), CONTAINER_RUN_DIR)}


def test_the_memory_and_cpu_limits_are_applied(docker_runtime, engine, docker_volume, started):
    host_config = _container(engine, docker_volume).attrs["HostConfig"]
    assert host_config["Memory"] == docker_runtime.limits.memory_mb * 1024 * 1024
    assert host_config["NanoCpus"] == int(docker_runtime.limits.cpus * 1e9)


def test_an_orgs_limits_override_the_configured_ones(docker_runtime, engine, docker_volume, run_dir_for, free_port):
    docker_runtime.start(docker_volume, run_dir_for(docker_volume), port=free_port(), listen_host=None,
                         limits=Limits(memory_mb=96, cpus=0.5))
    try:
        host_config = _container(engine, docker_volume).attrs["HostConfig"]
        assert (host_config["Memory"], host_config["NanoCpus"]) == (96 * 1024 * 1024, 500_000_000)
    finally:
        docker_runtime.stop(docker_volume, mode="immediate")


def test_the_container_runs_as_the_owner_of_pgdata_on_the_host_network(engine, docker_volume, started):
    attrs = _container(engine, docker_volume).attrs
    st = (docker_volume / "pgdata").stat()
    assert (attrs["Config"]["User"], attrs["HostConfig"]["NetworkMode"]) == (f"{st.st_uid}:{st.st_gid}", "host")


def test_init_leaves_pgdata_owned_by_the_unprivileged_postgres_user(docker_runtime, docker_template):
    owner = docker_runtime.run_as.uid if docker_runtime.run_as else os.geteuid()
    st = (docker_template / "pgdata").stat()
    assert (st.st_uid, oct(st.st_mode & 0o777)) == (owner, "0o700")


def test_stop_removes_the_container(docker_runtime, engine, docker_volume, started):
    docker_runtime.stop(docker_volume)
    with pytest.raises(docker.errors.NotFound):
        _container(engine, docker_volume)


def test_stop_keeps_the_container_log_in_the_run_dir(docker_runtime, docker_volume, started):
    docker_runtime.stop(docker_volume)
    assert "database system is shut down" in (started.socket_dir / "postgres.log").read_text()


def test_a_container_killed_from_outside_shows_up_in_exited_instances(docker_runtime, docker_volume, started):
    kill_from_outside(docker_runtime, docker_volume)
    assert eventually(lambda: str(os.path.realpath(docker_volume)) in
                      [str(c.volume) for c in docker_runtime.exited_instances()], timeout=30, interval=0.02)


def test_stopping_a_killed_container_removes_it_from_exited_instances(docker_runtime, docker_volume, started):
    kill_from_outside(docker_runtime, docker_volume)
    assert eventually(lambda: not docker_runtime.is_running(docker_volume), timeout=30, interval=0.02)
    docker_runtime.stop(docker_volume)
    assert container_name(docker_volume) not in [c.name for c in docker_runtime.list_managed()]


def test_list_managed_reports_a_running_container_with_its_labels(docker_runtime, docker_volume, started):
    managed = {c.name: c for c in docker_runtime.list_managed()}[container_name(docker_volume)]
    assert (managed.state, managed.labels["sqlrs.org"]) == ("running", "acme")


def test_resolve_image_pins_the_local_image_id(docker_runtime, engine):
    image_id = engine.images.get(docker_runtime.image).id
    assert docker_runtime.resolve_image("postgres:15") == f"postgres:15@{image_id}"


def test_resolve_image_rejects_a_digest_that_is_not_the_local_image(docker_runtime):
    with pytest.raises(InvalidArgument):
        docker_runtime.resolve_image("postgres:15@sha256:" + "0" * 64)


def test_a_label_the_runtime_owns_cannot_be_set_by_the_caller(docker_runtime, docker_volume, run_dir_for, free_port):
    with pytest.raises(InvalidArgument):
        docker_runtime.start(docker_volume, run_dir_for(docker_volume), port=free_port(), listen_host=None,
                             labels={"sqlrs.managed": "false"})


def test_a_failed_start_reports_the_container_log_and_removes_the_container(
        docker_runtime, engine, docker_volume, run_dir_for):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(CommandFailed) as failure:
            docker_runtime.start(docker_volume, run_dir_for(docker_volume), port=busy.getsockname()[1],
                                 listen_host="127.0.0.1")
    assert "could not" in failure.value.stderr.split("--- container log ---", 1)[1]
    with pytest.raises(docker.errors.NotFound):
        _container(engine, docker_volume)


def test_the_executor_reaches_the_container_through_host_psql_on_the_socket(docker_runtime, runner, started):
    assert socket_psql(docker_runtime, runner, started, "show unix_socket_directories") == CONTAINER_RUN_DIR
