"""Strict checks of a Nomad job-register body and of a docker task's ``Config``.

Real Nomad decodes the body with plain ``encoding/json``: unknown keys are silently dropped,
so a typo in our job spec would do nothing at all. This double is stricter on purpose: every
key must be a field of Nomad's ``api`` structs (read from ``nomad-api-schema.json``, Nomad
2.0.5), with the type Go would decode. ``null`` is accepted wherever the Go client sends it
(pointers, slices, maps); durations must be integer nanoseconds. Docker ``Config`` keys are
checked the way the Nomad client checks them against the driver's hclspec.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).with_name("nomad-api-schema.json")

JOB_TYPES = ("service", "batch", "system", "sysbatch")
RESTART_MODES = ("delay", "fail")
VOLUME_TYPES = ("host", "csi")
CONSTRAINT_OPERANDS = ("=", "==", "is", "!=", "not", ">", ">=", "<", "<=", "regexp", "version", "semver",
                       "set_contains", "set_contains_all", "set_contains_any", "distinct_hosts",
                       "distinct_property", "is_set", "is_not_set")
_INT_RANGES = {"int": 64, "int64": 64, "uint64": 64, "int8": 8, "uint8": 8, "uint16": 16, "uint32": 32}


class InvalidJob(ValueError):
    """The body would be rejected (HTTP 400) or, for driver config, fail task validation."""


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def validate_register_body(body: Any) -> dict:
    """Check a ``JobRegisterRequest`` and return its ``Job``; raise :class:`InvalidJob`."""
    if body is None or body == {}:
        raise InvalidJob("Request body is empty")
    _check_value(body, "JobRegisterRequest", "JobRegisterRequest")
    job = body.get("Job")
    if job is None:
        raise InvalidJob("Job must be specified")
    if not job.get("ID"):
        raise InvalidJob("Job ID hasn't been provided")
    _check_job_semantics(job)
    return job


def _check_value(value: Any, go_type: str, where: str) -> None:
    structs = schema()["structs"]
    named = schema()["named_types"]
    nullable = go_type.startswith(("*", "[]", "map[")) or go_type in ("any", "map[string]any")
    if value is None:
        if nullable:
            return
        raise InvalidJob(f"json: cannot unmarshal null into Go struct field {where} of type {go_type}")
    base = go_type[1:] if go_type.startswith("*") else go_type
    if base in ("any",):
        return
    if base in ("time.Duration",):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidJob(f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} "
                             f"of type time.Duration (durations are integer nanoseconds)")
        return
    if base == "[]byte":
        if not isinstance(value, str):
            raise InvalidJob(f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} of type []uint8")
        return
    if base.startswith("[]"):
        if not isinstance(value, list):
            raise InvalidJob(f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} of type {base}")
        for i, item in enumerate(value):
            _check_value(item, base[2:], f"{where}[{i}]")
        return
    if base.startswith("map[string]"):
        if not isinstance(value, dict):
            raise InvalidJob(f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} of type {base}")
        for key, item in value.items():
            _check_value(item, base[len("map[string]"):], f"{where}[{key}]")
        return
    if base in structs:
        if not isinstance(value, dict):
            raise InvalidJob(f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} of type api.{base}")
        fields = structs[base]
        for key, item in value.items():
            if key not in fields:
                raise InvalidJob(f"json: unknown field {key!r} in {where} (api.{base})")
            _check_value(item, fields[key], f"{where}.{key}")
        return
    if base in named or base == "string":
        if not isinstance(value, str):
            raise InvalidJob(f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} of type string")
        return
    if base == "bool":
        if not isinstance(value, bool):
            raise InvalidJob(f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} of type bool")
        return
    if base == "float64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidJob(f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} of type float64")
        return
    if base in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidJob(f"json: cannot unmarshal {_json_kind(value)} into Go struct field {where} of type {base}")
        bits = _INT_RANGES[base]
        low, high = (0, 2**bits - 1) if base.startswith("u") else (-(2**(bits - 1)), 2**(bits - 1) - 1)
        if not low <= value <= high:
            raise InvalidJob(f"json: cannot unmarshal number {value} into Go struct field {where} of type {base}")
        return
    raise InvalidJob(f"{where}: the double does not know Go type {go_type}")  # schema gap: be loud


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check_job_semantics(job: dict) -> None:
    """The ``job.Validate()`` errors Nomad answers a register with."""
    errors: list[str] = []
    job_type = job.get("Type") or "service"
    if job_type not in JOB_TYPES:
        errors.append(f"Invalid job type: {job_type!r}")
    if not job.get("TaskGroups"):
        errors.append("Missing job task groups")
    if job.get("Meta") is not None and any(not isinstance(v, str) for v in job["Meta"].values()):
        errors.append("Meta values must be strings")
    for constraint in job.get("Constraints") or []:
        errors += _constraint_errors(constraint)
    for group in job.get("TaskGroups") or []:
        name = group.get("Name") or "?"
        if not group.get("Name"):
            errors.append("Task group name must be set")
        if not group.get("Tasks"):
            errors.append(f"Task group {name} missing tasks")
        restart = group.get("RestartPolicy") or {}
        if restart.get("Mode") is not None and restart["Mode"] not in RESTART_MODES:
            errors.append(f"Task group {name}: unsupported restart mode: {restart['Mode']!r}")
        if (restart.get("Attempts") or 0) < 0:
            errors.append(f"Task group {name}: restart attempts must be >= 0")
        for key, volume in (group.get("Volumes") or {}).items():
            if volume is not None and volume.get("Type") not in VOLUME_TYPES:
                errors.append(f"Task group {name}: volume {key} has unrecognised type {volume.get('Type')!r}")
        for constraint in group.get("Constraints") or []:
            errors += _constraint_errors(constraint)
        volumes = group.get("Volumes") or {}
        for task in group.get("Tasks") or []:
            if not task.get("Name"):
                errors.append(f"Task group {name}: task name must be set")
            if not task.get("Driver"):
                errors.append(f"Task {task.get('Name')}: missing driver")
            if (task.get("KillTimeout") or 0) < 0:
                errors.append(f"Task {task.get('Name')}: KillTimeout must be a positive value")
            for mount in task.get("VolumeMounts") or []:
                if mount and mount.get("Volume") not in volumes:
                    errors.append(f"Task {task.get('Name')}: volume mount references unknown volume "
                                  f"{mount.get('Volume')!r}")
    if errors:
        raise InvalidJob(f"{len(errors)} error(s) occurred:\n\n" + "\n".join(f"* {e}" for e in errors))


def _constraint_errors(constraint: dict | None) -> list[str]:
    if constraint is None:
        return []
    operand = constraint.get("Operand") or "="
    if operand not in CONSTRAINT_OPERANDS:
        return [f"Unknown constraint type {operand!r}"]
    if operand in ("regexp",):
        try:
            re.compile(constraint.get("RTarget", ""))
        except re.error as exc:
            return [f"Regular expression failed to compile: {exc}"]
    return []


# --- docker driver Config (checked on the client, when the task starts) -----------------------
def validate_docker_config(config: Any) -> None:
    """Raise :class:`InvalidJob` with Nomad's "failed to parse config" text for a bad Config."""
    if not isinstance(config, dict):
        raise InvalidJob("failed to parse config: config must be an object")
    spec = schema()["docker_config"]
    for required in schema()["docker_config_details"]["required"]:
        if not config.get(required):
            raise InvalidJob(f'failed to parse config: Missing required argument: The argument "{required}" is required')
    _check_hcl_body(config, spec, "config")


def _check_hcl_body(body: dict, spec: dict, where: str) -> None:
    for key, value in body.items():
        if key not in spec:
            raise InvalidJob(f'failed to parse config: {where}: Unsupported argument; '
                             f'An argument named "{key}" is not expected here.')
        _check_hcl_value(value, spec[key], f"{where}.{key}")


def _check_hcl_value(value: Any, kind: Any, where: str) -> None:
    if value is None:
        return  # HCL treats null as unset
    if isinstance(kind, dict):  # a block
        items = value if isinstance(value, list) else [value]
        if kind["block"] == "single" and len(items) > 1:
            raise InvalidJob(f"failed to parse config: {where}: Duplicate block; only one is allowed")
        for item in items:
            if not isinstance(item, dict):
                raise InvalidJob(f"failed to parse config: {where}: Incorrect JSON value type; a JSON object is required")
            _check_hcl_body(item, kind["fields"], where)
        return
    if kind == "string":
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)  # HCL converts numbers
    elif kind == "bool":
        ok = isinstance(value, bool) or value in ("true", "false")
    elif kind == "number":
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) or _is_number_text(value)
    elif kind == "list(string)":
        ok = isinstance(value, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value)
    elif kind in ("list(map(string))", "list(map(number))"):
        ok = isinstance(value, list) and all(isinstance(v, dict) for v in value)
    elif kind == "map(string)":
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    else:
        ok = False
    if not ok:
        raise InvalidJob(f"failed to parse config: {where}: Incorrect attribute value type; {kind} required")


def _is_number_text(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value) is not None
