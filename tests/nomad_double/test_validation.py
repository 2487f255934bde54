"""The double's checks must reject what Nomad would reject (or silently drop) and accept what
the Go client really sends, or the runtime's tests would prove nothing about the job spec."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from appliance.runtime.nomad_jobs import DEFAULT_TEMPLATE, JobSettings, initdb_job, instance_job

from .validation import InvalidJob, schema, validate_docker_config, validate_register_body

SHARED = JobSettings(namespace="default", region=None, datacenters=("dc1",), node_id="node-1",
                     image="sqlrs/postgres:15", memory_mb=256, cpus=1.0)


def _instance() -> dict:
    return instance_job(DEFAULT_TEMPLATE, SHARED, volume=Path("/srv/store/vol1"), pgdata=Path("/srv/store/vol1/pgdata"),
                        run_dir=Path("/run/sqlrs/vol1"), port=6500, listen="127.0.0.1", tcp=True, user="101:104",
                        labels={"org": "acme", "instance_id": "i-1"})


def _task(body: dict) -> dict:
    return body["Job"]["TaskGroups"][0]["Tasks"][0]


def test_the_instance_job_the_runtime_renders_is_accepted():
    assert validate_register_body(_instance())["Type"] == "batch"


def test_the_initdb_job_the_runtime_renders_is_accepted():
    body = initdb_job(DEFAULT_TEMPLATE, SHARED, volume=Path("/srv/store/vol1"), pgdata=Path("/srv/store/vol1/pgdata"),
                      user="101:104", initdb_args=["-U", "sqlrs"])
    validate_register_body(body)
    validate_docker_config(_task(body)["Config"])


def test_the_rendered_docker_config_passes_the_driver_checks():
    validate_docker_config(_task(_instance())["Config"])


def test_an_unknown_job_field_is_rejected():
    body = _instance()
    body["Job"]["Datacenter"] = ["dc1"]
    with pytest.raises(InvalidJob, match="unknown field 'Datacenter'"):
        validate_register_body(body)


def test_a_misspelled_task_field_is_rejected():
    body = _instance()
    _task(body)["KillTimout"] = _task(body).pop("KillTimeout")
    with pytest.raises(InvalidJob, match="KillTimout"):
        validate_register_body(body)


def test_a_field_with_the_wrong_case_is_rejected():
    body = _instance()
    body["Job"]["id"] = body["Job"].pop("ID")
    with pytest.raises(InvalidJob, match="unknown field 'id'"):
        validate_register_body(body)


def test_a_count_given_as_a_string_is_rejected():
    body = _instance()
    body["Job"]["TaskGroups"][0]["Count"] = "1"
    with pytest.raises(InvalidJob, match="cannot unmarshal string"):
        validate_register_body(body)


@pytest.mark.parametrize("duration", ["30s", 30.5, True])
def test_a_duration_that_is_not_integer_nanoseconds_is_rejected(duration):
    body = _instance()
    _task(body)["KillTimeout"] = duration
    with pytest.raises(InvalidJob, match="nanoseconds"):
        validate_register_body(body)


def test_a_meta_value_that_is_not_a_string_is_rejected():
    body = _instance()
    body["Job"]["Meta"]["port"] = 6500
    with pytest.raises(InvalidJob, match="Meta"):
        validate_register_body(body)


def test_an_unknown_job_type_is_rejected():
    body = _instance()
    body["Job"]["Type"] = "batches"
    with pytest.raises(InvalidJob, match="Invalid job type"):
        validate_register_body(body)


def test_an_unknown_restart_mode_is_rejected():
    body = _instance()
    body["Job"]["TaskGroups"][0]["RestartPolicy"]["Mode"] = "never"
    with pytest.raises(InvalidJob, match="restart mode"):
        validate_register_body(body)


def test_a_job_without_an_id_is_rejected():
    body = _instance()
    del body["Job"]["ID"]
    with pytest.raises(InvalidJob, match="Job ID hasn't been provided"):
        validate_register_body(body)


def test_a_body_without_a_job_is_rejected():
    with pytest.raises(InvalidJob, match="Job must be specified"):
        validate_register_body({"Job": None, "EnforceIndex": False})


def test_null_is_accepted_for_every_pointer_slice_and_map_field_as_the_go_client_sends_it():
    """The Go client marshals every key; nil pointers, slices and maps go out as null."""
    body = _instance()
    job = body["Job"]
    for name, go_type in schema()["structs"]["Job"].items():
        if go_type.startswith(("*", "[]", "map[")) and name not in job:
            job[name] = None
    task = _task(body)
    for name, go_type in schema()["structs"]["Task"].items():
        if go_type.startswith(("*", "[]", "map[")) and name not in task:
            task[name] = None
    body.update({"EnforceIndex": False, "JobModifyIndex": 0, "PolicyOverride": False, "PreserveCounts": False,
                 "PreserveResources": False, "EvalPriority": 0, "Region": "", "Namespace": "", "SecretID": "",
                 "Submission": None})
    validate_register_body(body)


def test_null_for_a_plain_string_field_is_rejected():
    body = _instance()
    body["Job"]["Constraints"][0]["Operand"] = None
    with pytest.raises(InvalidJob, match="null"):
        validate_register_body(body)


def test_a_removed_field_is_rejected():
    body = _instance()
    body["Job"]["VaultToken"] = None  # removed from api.Job in Nomad 1.10
    with pytest.raises(InvalidJob, match="VaultToken"):
        validate_register_body(body)


def test_an_unknown_docker_config_key_fails_validation():
    config = copy.deepcopy(_task(_instance())["Config"])
    config["network"] = "host"
    with pytest.raises(InvalidJob, match='failed to parse config: .*"network"'):
        validate_docker_config(config)


def test_an_unknown_key_in_a_docker_mount_block_fails_validation():
    config = copy.deepcopy(_task(_instance())["Config"])
    config["mount"][0]["read_only"] = True
    with pytest.raises(InvalidJob, match='"read_only"'):
        validate_docker_config(config)


def test_a_docker_config_without_an_image_fails_validation():
    config = copy.deepcopy(_task(_instance())["Config"])
    del config["image"]
    with pytest.raises(InvalidJob, match='"image" is required'):
        validate_docker_config(config)


def test_docker_args_that_are_not_a_list_fail_validation():
    config = copy.deepcopy(_task(_instance())["Config"])
    config["args"] = "-c port=5432"
    with pytest.raises(InvalidJob, match="list\\(string\\) required"):
        validate_docker_config(config)
