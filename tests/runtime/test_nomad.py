"""The nomad runtime against the Nomad-API double, whose tasks run as real Docker containers.

The conformance suite (test_conformance.py) covers what every runtime must do; these tests
cover what is Nomad's own: the job spec, Meta, deregistration, allocation state, logs, ACL.
"""
from __future__ import annotations

import copy
import hashlib
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import nomad.api.exceptions as nomad_errors
import pytest

import nomad
from appliance.errors import CommandFailed
from appliance.instances import instance_labels
from appliance.runtime.base import Limits
from appliance.runtime.nomad import NomadAPIError, NomadRuntime
from appliance.runtime.nomad_jobs import DEFAULT_TEMPLATE, MHZ_PER_CPU, JobSettings, instance_job, server_job_id
from appliance.settings import Settings
from tests.support.clusters import nomad_task_container
from tests.support.polling import eventually

from .pg import tcp_psql

README = Path(__file__).resolve().parents[2] / "nomad" / "README.md"
INSTANCE = SimpleNamespace(org="acme", instance_id="5b1c" * 8, state_id="9e0d" * 8, job_id="7a2f" * 8)
# The labels an instance's server is started with, as the appliance gives them.
LABELS = instance_labels(INSTANCE)


@pytest.fixture
def volume(nomad_runtime, new_volume_for_nomad) -> Path:
    return new_volume_for_nomad()


@pytest.fixture
def new_volume_for_nomad(nomad_runtime, cluster_templates, workdir: Path):
    counter = iter(range(10**6))
    return lambda: cluster_templates.copy(nomad_runtime, workdir / f"nomad-vol-{time.monotonic_ns()}-{next(counter)}")


@pytest.fixture
def started(nomad_runtime, volume, run_dir_for, free_port):
    """A TCP instance started with labels; stopped (and its job purged) after the test."""
    endpoint = nomad_runtime.start(volume, run_dir_for(volume), port=free_port(), listen_host="127.0.0.1",
                                   labels=LABELS)
    yield endpoint
    nomad_runtime.stop(volume, mode="immediate")


def job_id(volume: Path) -> str:
    """The ID of the job of an instance started with LABELS."""
    return server_job_id(volume, LABELS)


@pytest.fixture
def api(nomad_double) -> nomad.Nomad:
    """A plain python-nomad client, to look at what the runtime left in Nomad."""
    return nomad.Nomad(address=nomad_double.addr, token=nomad_double.token, namespace=nomad_double.namespace)


def test_an_instance_started_through_nomad_answers_over_tcp_with_its_password(nomad_runtime, runner, started):
    nomad_runtime.set_password(started, "n0mad-secret")
    assert tcp_psql(nomad_runtime, runner, started, "n0mad-secret", "select 6 * 7").stdout.strip() == "42"


def test_the_job_carries_the_meta_the_readme_documents(api, volume, started):
    documented = set(re.findall(r"^\s*\| `(sqlrs_\w+)` \|", README.read_text(), re.MULTILINE))
    assert set(api.job.get_job(job_id(volume))["Meta"]) == documented


def test_the_jobs_meta_names_the_org_instance_state_and_job_of_the_instance(api, volume, started):
    meta = api.job.get_job(job_id(volume))["Meta"]
    assert (meta["sqlrs_org"], meta["sqlrs_instance_id"], meta["sqlrs_state_id"], meta["sqlrs_job_id"]) == (
        INSTANCE.org, INSTANCE.instance_id, INSTANCE.state_id, INSTANCE.job_id)


def test_the_jobs_meta_says_it_is_the_appliances_instance_on_that_volume(api, volume, started):
    meta = api.job.get_job(job_id(volume))["Meta"]
    assert (meta["sqlrs_managed"], meta["sqlrs_purpose"], meta["sqlrs_volume"]) == (
        "true", "instance", os.path.realpath(volume))


def test_an_instances_job_is_named_after_its_org_and_instance(api, volume, started):
    named = api.jobs.get_jobs(prefix=f"sqlrs-{INSTANCE.org}-{INSTANCE.instance_id}-")
    assert [stub["ID"] for stub in named] == [job_id(volume)]


def test_the_job_is_a_batch_job_pinned_to_the_node_that_holds_the_volume(api, nomad_double, volume, started):
    job = api.job.get_job(job_id(volume))
    assert (job["Type"], job["Constraints"]) == (
        "batch", [{"LTarget": "${node.unique.id}", "RTarget": nomad_double.node_id, "Operand": "="}])


def test_the_job_never_restarts_or_reschedules_a_dead_instance(api, volume, started):
    group = api.job.get_job(job_id(volume))["TaskGroups"][0]
    assert (group["RestartPolicy"]["Attempts"], group["RestartPolicy"]["Mode"],
            group["ReschedulePolicy"]["Attempts"], group["ReschedulePolicy"]["Unlimited"]) == (0, "fail", 0, False)


def test_stop_deregisters_and_purges_the_job(nomad_runtime, api, volume, started):
    nomad_runtime.stop(volume)
    with pytest.raises(nomad_errors.URLNotFoundNomadException):
        api.job.get_job(job_id(volume))


def test_a_killed_task_container_shows_a_failed_allocation(api, volume, started):
    nomad_task_container(volume).kill()
    assert eventually(lambda: api.job.get_allocations(job_id(volume))[0]["ClientStatus"] == "failed",
                      timeout=30, interval=0.02)


def test_a_killed_task_container_is_not_running(nomad_runtime, volume, started):
    nomad_task_container(volume).kill()
    assert eventually(lambda: not nomad_runtime.is_running(volume), timeout=30, interval=0.02)


def test_task_logs_come_from_nomad(nomad_runtime, volume, started):
    assert "database system is ready to accept connections" in nomad_runtime.task_logs(volume)


def test_a_job_pinned_to_another_node_is_never_placed(runner, nomad_double, volume, run_dir_for, free_port):
    elsewhere = NomadRuntime(runner, addr=nomad_double.addr, token=nomad_double.token,
                             namespace=nomad_double.namespace, region=None, datacenters=["dc1"],
                             node_id="another-node", image="sqlrs/postgres:15", memory_mb=256, cpus=1.0,
                             start_timeout=1)
    with pytest.raises(CommandFailed, match="placed no allocation"):
        elsewhere.start(volume, run_dir_for(volume), port=free_port(), listen_host="127.0.0.1")


def test_the_double_rejects_a_job_with_a_misspelled_field(api, nomad_double, volume, run_dir_for):
    job = _rendered_job(nomad_double, volume, run_dir_for(volume))
    task = job["Job"]["TaskGroups"][0]["Tasks"][0]
    task["KillTimout"] = task.pop("KillTimeout")
    with pytest.raises(nomad_errors.BadRequestNomadException, match="KillTimout"):
        api.jobs.register_job(job)


def test_the_double_rejects_a_duration_that_is_not_nanoseconds(api, nomad_double, volume, run_dir_for):
    job = _rendered_job(nomad_double, volume, run_dir_for(volume))
    job["Job"]["TaskGroups"][0]["Tasks"][0]["KillTimeout"] = "30s"
    with pytest.raises(nomad_errors.BadRequestNomadException, match="nanoseconds"):
        api.jobs.register_job(job)


def test_the_double_refuses_a_request_without_the_token(nomad_double):
    anonymous = nomad.Nomad(address=nomad_double.addr, namespace=nomad_double.namespace)
    anonymous.job.token = None  # python-nomad would otherwise fall back to NOMAD_TOKEN
    with pytest.raises(nomad_errors.URLNotAuthorizedNomadException):
        anonymous.job.get_allocations("anything")


def test_a_runtime_with_a_wrong_token_fails_without_revealing_it(runner, nomad_double):
    with pytest.raises(NomadAPIError, match="refused the ACL token") as failure:
        NomadRuntime(runner, addr=nomad_double.addr, token="wrong-token-value", namespace=nomad_double.namespace,
                     region=None, datacenters=["dc1"], node_id=None, image="sqlrs/postgres:15",
                     memory_mb=256, cpus=1.0)
    assert "wrong-token-value" not in str(failure.value)


def test_jobs_go_to_the_configured_namespace(api, nomad_double, volume, started):
    in_default = nomad.Nomad(address=nomad_double.addr, token=nomad_double.token, namespace="default")
    assert api.job.get_job(job_id(volume))["Namespace"] == nomad_double.namespace
    with pytest.raises(nomad_errors.URLNotFoundNomadException):
        in_default.job.get_job(job_id(volume))


def _rendered_job(nomad_double, volume: Path, run_dir: Path) -> dict:
    shared = JobSettings(namespace=nomad_double.namespace, region=None, datacenters=("dc1",),
                         node_id=nomad_double.node_id, image="sqlrs/postgres:15", memory_mb=256, cpus=1.0)
    job = instance_job(DEFAULT_TEMPLATE, shared, volume=volume, pgdata=volume / "pgdata", run_dir=run_dir,
                       port=5432, listen="127.0.0.1", tcp=True, user="101:104", labels=LABELS)
    return copy.deepcopy(job)


def test_an_orgs_limits_become_the_jobs_resources(nomad_runtime, api, volume, run_dir_for, free_port):
    nomad_runtime.start(volume, run_dir_for(volume), port=free_port(), listen_host=None,
                        limits=Limits(memory_mb=96, cpus=0.5))
    try:
        resources = api.job.get_job(server_job_id(volume, None))["TaskGroups"][0]["Tasks"][0]["Resources"]
        assert (resources["MemoryMB"], resources["CPU"]) == (96, round(0.5 * MHZ_PER_CPU))
    finally:
        nomad_runtime.stop(volume, mode="immediate")


def test_a_nomad_node_that_is_not_the_configured_one_is_unhealthy(nomad_double, runner):
    other = NomadRuntime(runner, addr=nomad_double.addr, token=nomad_double.token, namespace=nomad_double.namespace,
                         region=None, datacenters=["dc1"], node_id="00000000-0000-0000-0000-000000000000",
                         image="sqlrs/postgres:15", memory_mb=256, cpus=1.0)
    assert other.health().startswith("error: Nomad node 00000000")


# --- finding a volume's job again: from another process, and after an upgrade --------------------
@pytest.fixture
def another_process(runner, nomad_double) -> NomadRuntime:
    """The runtime as another appliance process has it: it has seen none of this one's jobs."""
    return NomadRuntime(runner, addr=nomad_double.addr, token=nomad_double.token, namespace=nomad_double.namespace,
                        region=None, datacenters=["dc1"], node_id=nomad_double.node_id,
                        image=Settings.model_fields["docker_image"].default,
                        memory_mb=Settings.model_fields["instance_memory_mb"].default,
                        cpus=Settings.model_fields["instance_cpus"].default)


def earlier_job_id(volume: Path) -> str:
    """How an appliance before readable job IDs named the job of a volume's server."""
    real = os.path.realpath(volume)
    stem = re.sub(r"[^a-z0-9-]", "-", os.path.basename(real).lower())[:40].strip("-")
    return f"sqlrs-pg-{stem}-{hashlib.sha256(real.encode()).hexdigest()[:16]}"


@pytest.fixture
def started_before_the_upgrade(nomad_runtime, volume, run_dir_for, free_port, monkeypatch):
    """An instance whose job was registered under the name an earlier appliance gave it."""
    def as_named_before(*args, **kwargs) -> dict:
        job = instance_job(*args, **kwargs)
        job["Job"]["ID"] = job["Job"]["Name"] = earlier_job_id(volume)
        return job

    with monkeypatch.context() as patched:
        patched.setattr("appliance.runtime.nomad.instance_job", as_named_before)
        nomad_runtime.start(volume, run_dir_for(volume), port=free_port(), listen_host="127.0.0.1", labels=LABELS)
    yield volume
    nomad_runtime.stop(volume, mode="immediate")


def test_an_instance_started_by_another_process_is_seen_running(another_process, volume, started):
    assert another_process.is_running(volume)


def test_an_instance_started_by_another_process_is_stopped_and_its_job_purged(api, another_process, volume, started):
    another_process.stop(volume, mode="immediate")
    assert api.jobs.get_jobs(prefix=job_id(volume)) == []


def test_an_instance_an_earlier_version_started_is_seen_running_after_the_upgrade(another_process,
                                                                                   started_before_the_upgrade):
    assert another_process.is_running(started_before_the_upgrade)


def test_an_instance_an_earlier_version_started_is_stopped_after_the_upgrade(api, another_process,
                                                                             started_before_the_upgrade):
    another_process.stop(started_before_the_upgrade, mode="immediate")
    assert api.jobs.get_jobs(prefix=earlier_job_id(started_before_the_upgrade)) == []
