"""The shapes of what the appliance answers, as ``TypedDict``s: plain dicts at run time, exactly
the API's JSON (docs/api.md), typed for editors and type checkers. Fields the appliance may add
later are kept, not dropped."""
from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

JobStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class ErrorBody(TypedDict):
    code: str
    message: str
    details: dict | None


class JobResult(TypedDict):
    dsn: str | None
    instance_id: str
    state_id: str
    image_id: str


class JobAccepted(TypedDict):
    job_id: str
    status: JobStatusName
    status_url: str
    events_url: str
    result: NotRequired[JobResult | None]  # set when the job was answered at admission (warm pool)


class TaskInput(TypedDict):
    kind: str
    id: str


class Task(TypedDict):
    task_id: str
    job_id: str
    type: str
    status: JobStatusName
    input: TaskInput | None
    task_hash: str | None
    output_state_id: str | None
    cached: bool | None
    summary: str | None
    started_at: str | None
    finished_at: str | None


class JobEntry(TypedDict):
    job_id: str
    status: JobStatusName
    prepare_kind: str
    image_id: str
    resolved_image_id: str | None
    signature: str | None
    plan_only: bool
    created_at: str
    started_at: str | None
    finished_at: str | None
    org: str
    submitted_by: NotRequired[str | None]  # who submitted it (servers from the web console on)


class Job(JobEntry):
    tasks: list[Task]
    result: JobResult | None
    error: ErrorBody | None


class Event(TypedDict, total=False):
    type: str  # status | task | log
    ts: str
    status: str
    task_id: str
    message: str


class Instance(TypedDict):
    instance_id: str
    state_id: str
    image_id: str
    status: str
    dsn: str | None
    host: str
    port: int | None
    created_at: str
    expires_at: str
    name: str | None
    job_id: str | None
    owner: NotRequired[str | None]  # the submitter of its job (servers from the web console on)
    teardown_error: NotRequired[str | None]
    teardown_attempts: NotRequired[int]
    teardown_retry_at: NotRequired[str | None]


class State(TypedDict):
    state_id: str
    parent_state_id: str | None
    image_id: str
    prepare_kind: str
    summary: str | None
    size_bytes: int
    created_at: str
    last_used_at: str
    use_count: int
    refcount: int
    host: str
    hosts: list[str]
    exported: bool
    shared_from: NotRequired[str | None]


class DeleteNode(TypedDict):
    kind: str
    id: str
    blocked: NotRequired[str | None]
    connections: NotRequired[int | None]
    teardown_error: NotRequired[str | None]
    children: list[DeleteNode]


class DeleteResult(TypedDict):
    dry_run: bool
    outcome: Literal["deleted", "would_delete", "blocked", "deleting"]
    root: DeleteNode


class SourceAccepted(TypedDict):
    source_id: str
    size_bytes: int
    created: bool


class Token(TypedDict):
    token_id: str
    org: str
    name: str
    role: str
    created_by: str | None
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class CreatedToken(Token):
    token: str  # the secret, shown this once


class Share(TypedDict):
    state_id: str
    org: str
    granted_by: str
    created_at: str


class Limits(TypedDict):
    max_running_jobs: int
    max_queued_jobs: int
    max_instances: int
    max_state_bytes: int | None
    max_ttl_seconds: int
    instance_memory_mb: int
    instance_cpus: float


class Usage(TypedDict):
    running_jobs: int
    queued_jobs: int
    instances: int
    state_bytes: int


class OrgUsage(TypedDict):
    org: str
    limits: Limits
    usage: Usage


class Project(TypedDict):
    name: str
    repo_path: str
    org: str
    created_at: str


class AuditEntry(TypedDict):
    at: str
    org: str
    actor: str
    action: str
    object_kind: str | None
    object_id: str | None
    outcome: str
    source: str | None
    details: dict | None


class Manifest(TypedDict):
    format_version: int
    state_id: str
    parent_state_id: str | None
    incremental_from: str | None
    image_id: str
    prepare_kind: str
    task_hash: str
    summary: str | None
    size_bytes: int
    driver: str
    format: str
    stream_sha256: str  # of the stored (compressed) stream
    stream_bytes: int  # of the stored (compressed) stream
    exported_at: str
    compression: str  # "zstd"; "none" in format 1
    raw_bytes: int | None  # the stream before compression
    signature: dict | None  # {algorithm, key_id, value}; None in format 1


class Transfer(TypedDict):
    """An export or import, run by a worker of ``host``; poll it until ``status`` is over."""
    transfer_id: str
    kind: Literal["export", "import"]
    state_id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    host: str
    bytes_done: int
    bytes_total: int | None
    created_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: ErrorBody | None
    manifest: Manifest | None
    status_url: str


class Artifact(TypedDict):
    name: str  # relative to the job: logs/plan.log, report.json, …
    size_bytes: int
    retain_until: str | None
