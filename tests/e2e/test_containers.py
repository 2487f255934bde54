"""Container runtimes in a real appliance: containers and Nomad jobs follow their instances."""
from __future__ import annotations

import sqlite3
import time

import docker
import pytest

from appliance.runtime.docker import container_name
from tests.support.appliance import appliance_on
from tests.support.clusters import nomad_task_containers


@pytest.fixture(scope="module", params=["docker", "nomad"])
def appliance(request):
    yield from appliance_on(request, request.param)


def volume_of(appliance, instance_id: str):
    with sqlite3.connect(appliance.data_dir / "control.db") as db:
        (volume_id,) = db.execute("select volume_id from instance where instance_id = ?", (instance_id,)).fetchone()
    return next((appliance.data_dir / "store" / "orgs").glob(f"*/volumes/{volume_id}"))


def containers_of(appliance, volume) -> list:
    client = docker.from_env()
    if appliance.env["SQLRS_RUNTIME"] == "docker":
        return client.containers.list(all=True, filters={"name": container_name(volume)})
    return nomad_task_containers(volume)


def test_deleting_an_instance_removes_its_container_or_nomad_job_and_its_clone(appliance, scripts):
    status = appliance.prepare(["-f", "schema.sql"], scripts)
    instance_id = status["result"]["instance_id"]
    volume = volume_of(appliance, instance_id)
    assert len(containers_of(appliance, volume)) == 1
    assert appliance.delete(f"/v1/instances/{instance_id}").status_code == 200
    assert containers_of(appliance, volume) == []
    assert not volume.exists()


def test_a_container_killed_from_outside_fails_its_instance_and_is_cleaned_up(appliance, scripts):
    status = appliance.prepare(["-f", "schema.sql"], scripts)
    instance_id = status["result"]["instance_id"]
    volume = volume_of(appliance, instance_id)
    (container,) = containers_of(appliance, volume)
    container.kill()
    deadline = time.monotonic() + 30
    while appliance.get(f"/v1/instances/{instance_id}").json()["status"] != "failed":
        assert time.monotonic() < deadline, "the killed container was not noticed"
        time.sleep(0.3)
    assert not volume.exists()


def test_an_orgs_instance_memory_quota_is_the_containers_limit(appliance, scripts):
    assert appliance.put("/v1/orgs/default/quota", json={"instance_memory_mb": 160}).status_code == 200
    try:
        status = appliance.prepare(["-f", "schema.sql", "-f", "more.sql"], scripts)
        volume = volume_of(appliance, status["result"]["instance_id"])
        (container,) = containers_of(appliance, volume)
        assert container.attrs["HostConfig"]["Memory"] == 160 * 1024 * 1024
    finally:
        appliance.put("/v1/orgs/default/quota", json={"instance_memory_mb": None})
