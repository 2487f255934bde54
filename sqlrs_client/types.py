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
