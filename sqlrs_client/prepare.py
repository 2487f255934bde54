"""Prepare requests: the files a request reads, packed as the appliance reads them, and the
request that names them.

psql arguments are parsed here as the appliance parses them, so exactly the files they read go
up (``-f``, ``\\i``/``\\ir`` they include, ``-f -`` as ``stdin``); a Liquibase request takes its
whole project directory (what a changelog includes only Liquibase can tell). A bundle is named
by its content: a repeated prepare uploads nothing, the appliance says when it lacks one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.errors import InvalidArgument
from appliance.planning.packing import PackedBundle, pack_directory_bundle, pack_psql_bundle
from appliance.planning.psql.args import parse_psql_args
from sqlrs_client.calls import Call, Flow
from sqlrs_client.errors import ApiError, InvalidInput, JobFailed, SqlrsError
from sqlrs_client.types import Job, JobAccepted, JobResult, SourceAccepted

BUNDLE_TYPE = "application/gzip"
DEFAULT_IMAGE = "postgres:15"  # as sqlrs_client.project's


@dataclass(frozen=True)
class PrepareRequest:
    """A ``PrepareJobRequest`` body and the bundle it names (None when it reads no file)."""
    body: dict[str, Any]
    bundle: PackedBundle | None


def reads_stdin(psql_args: list[str]) -> bool:
    """Whether ``-f -`` asks for standard input."""
    return any(a.kind == "file" and a.value == "-" for a in parse_psql_args(psql_args).actions)


def psql_request(psql_args: list[str], *, image: str = DEFAULT_IMAGE, cwd: Path | str = ".",
                 stdin: str | None = None, plan_only: bool = False, ttl_seconds: int | None = None,
                 name: str | None = None, priority: int | None = None) -> PrepareRequest:
    """What ``psql_args`` read, from ``cwd``, packed; ``stdin`` is what ``-f -`` reads."""
    try:
        packed = pack_psql_bundle(list(psql_args), Path(cwd), stdin=stdin)
    except InvalidArgument as exc:
        raise InvalidInput(exc.message, exc.details) from None
    if not packed.files:
        body = _body("psql", image, plan_only, ttl_seconds, name, priority, psql_args=list(psql_args))
        return PrepareRequest(_with_stdin(body, stdin), None)
    body = _body("psql", image, plan_only, ttl_seconds, name, priority, psql_args=packed.psql_args,
                 source={"source_id": packed.source_id, "work_dir": packed.work_dir})
    return PrepareRequest(_with_stdin(body, stdin), packed)


def liquibase_request(liquibase_args: list[str], project: Path | str, *, image: str = DEFAULT_IMAGE,
                      plan_only: bool = False, ttl_seconds: int | None = None, name: str | None = None,
                      priority: int | None = None) -> PrepareRequest:
    """The whole ``project`` directory packed, Liquibase's arguments relative to it."""
    project = Path(project)
    if not project.is_dir():
        raise InvalidInput(f"{project} is not a directory")
    try:
        packed = pack_directory_bundle(project)
    except InvalidArgument as exc:
        raise InvalidInput(exc.message, exc.details) from None
    body = _body("lb", image, plan_only, ttl_seconds, name, priority, liquibase_args=list(liquibase_args),
                 source={"source_id": packed.source_id, "work_dir": "."})
    return PrepareRequest(body, packed)


def _body(kind: str, image: str, plan_only: bool, ttl_seconds: int | None, name: str | None,
          priority: int | None, **fields: Any) -> dict[str, Any]:
    """Unset optional fields are left out, not sent as null."""
    body: dict[str, Any] = {"prepare_kind": kind, "image_id": image, **fields, "plan_only": plan_only}
    instance = {k: v for k, v in (("ttl_seconds", ttl_seconds), ("name", name)) if v is not None}
    if instance and not plan_only:
        body["instance"] = instance
    if priority is not None:
        body["priority"] = priority
    return body


def _with_stdin(body: dict[str, Any], stdin: str | None) -> dict[str, Any]:
    return body if stdin is None else {**body, "stdin": stdin}


def submit(request: PrepareRequest) -> Flow[JobAccepted]:
    """Create the job. A bundle the appliance does not hold yet (it says so by naming the
    source) is uploaded, and the job created again."""
    try:
        return (yield Call("POST", "/v1/prepare-jobs", json=request.body)).body
    except ApiError as error:
        if request.bundle is None or error.details.get("source_id") != request.bundle.source_id:
            raise
    yield from upload(request.bundle)
    return (yield Call("POST", "/v1/prepare-jobs", json=request.body)).body


def explain(request: PrepareRequest) -> Flow[dict[str, Any]]:
    """What the appliance would reuse and build for ``request`` (its bundle uploaded first)."""
    if request.bundle is not None:
        yield from upload(request.bundle)
    return (yield Call("POST", "/v1/cache/explain/prepare", json=request.body)).body


def upload(bundle: PackedBundle) -> Flow[SourceAccepted]:
    uploaded = (yield Call("POST", "/v1/sources", content=bundle.data,
                           headers={"Content-Type": BUNDLE_TYPE})).body
    if uploaded["source_id"] != bundle.source_id:
        raise SqlrsError("bundle_mismatch", f"the appliance names the uploaded bundle {uploaded['source_id']}, "
                         f"not {bundle.source_id} as this client does (a client and server of different "
                         "versions?)")
    return uploaded


def result_of(job: Job) -> JobResult:
    """The instance a finished prepare job made; ``JobFailed`` for a failed or cancelled job."""
    if job["status"] != "succeeded":
        raise JobFailed(dict(job))
    result = job.get("result")
    if result is None or not result.get("dsn"):
        raise SqlrsError("no_dsn", f"job {job['job_id']} succeeded but its instance has no DSN any more "
                         "(expired or deleted?)")
    return result


def answered_at_admission(accepted: JobAccepted) -> JobResult | None:
    """The instance, when the appliance answered the request with it (a warm pool's clone)."""
    return accepted.get("result")
