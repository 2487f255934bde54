"""Request and response schemas of the v1 API: they validate input and generate /openapi.json."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from appliance.api.paging import OrderedPageQuery, PageQuery
from appliance.ids import HEX_ID_PATTERN, ID_PREFIX_PATTERN, JOB_PREFIX_PATTERN, PROJECT_NAME_PATTERN, SOURCE_ID_PATTERN

TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceRef(Strict):
    source_id: str | None = Field(None, pattern=SOURCE_ID_PATTERN, description="An uploaded bundle")
    project: str | None = Field(None, description="A project registered on the server")
    ref: str | None = Field(None, description="Git ref of the project (branch, tag or commit)")
    work_dir: str = Field(".", max_length=1024, description="psql's working directory inside the bundle")

    @model_validator(mode="after")
    def _one_kind(self) -> SourceRef:
        if bool(self.source_id) == bool(self.project or self.ref):
            raise ValueError("give either source_id, or project and ref")
        if self.project and not self.ref or self.ref and not self.project:
            raise ValueError("project and ref go together")
        return self


class InstanceOptions(Strict):
    ttl_seconds: int | None = Field(None, gt=0)
    name: str | None = Field(None, pattern=PROJECT_NAME_PATTERN)


class PrepareJobRequest(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "create table t (id int)"],
         "instance": {"ttl_seconds": 600}},
        {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"], "plan_only": True},
    ]})
    prepare_kind: str = Field(description="psql or lb")
    image_id: str = Field(min_length=1, max_length=255)
    psql_args: list[str] | None = Field(None, max_length=1000)
    liquibase_args: list[str] | None = None
    source: SourceRef | None = None
    stdin: str | None = Field(None, max_length=16 * 1024 * 1024)
    plan_only: bool = False
    instance: InstanceOptions | None = None
    priority: int = Field(0, ge=-100, le=100)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict | None = None


class TaskInput(BaseModel):
    kind: str
    id: str


class TaskEntry(BaseModel):
    task_id: str
    job_id: str
    type: str
    status: TaskStatus
    input: TaskInput | None
    task_hash: str | None
    output_state_id: str | None
    cached: bool | None
    summary: str | None
    started_at: str | None
    finished_at: str | None


class PrepareJobEntry(BaseModel):
    job_id: str
    status: TaskStatus
    prepare_kind: str
    image_id: str
    resolved_image_id: str | None
    signature: str | None
    plan_only: bool
    created_at: str
    started_at: str | None
    finished_at: str | None
    org: str
    submitted_by: str | None = Field(None, description="Who submitted it: `token:<token_id>` or `oidc:<subject>`")


class PrepareJobResult(BaseModel):
    dsn: str | None
    instance_id: str
    state_id: str
    image_id: str


class PrepareJobAccepted(BaseModel):
    job_id: str
    status: TaskStatus
    status_url: str
    events_url: str
    result: PrepareJobResult | None = None  # set when the job was answered at admission (warm pool)


class PrepareJobStatus(PrepareJobEntry):
    tasks: list[TaskEntry]
    result: PrepareJobResult | None
    error: ErrorBody | None


class DeleteTreeNode(BaseModel):
    kind: str
    id: str
    blocked: str | None = None
    connections: int | None = None
    teardown_error: str | None = None
    children: list[DeleteTreeNode] = []


class DeleteResult(BaseModel):
    dry_run: bool
    outcome: Literal["deleted", "would_delete", "blocked", "deleting"]
    root: DeleteTreeNode


class StateEntry(BaseModel):
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
    host: str = Field(description="The host holding the first copy")
    hosts: list[str] = Field(description="Every host holding a copy of the state")
    exported: bool
    shared_from: str | None = Field(None, description="The org that shared this state with you (read-only)")


class InstanceEntry(BaseModel):
    instance_id: str
    state_id: str
    image_id: str
    status: str
    dsn: str | None = None
    host: str
    port: int | None
    created_at: str
    expires_at: str
    name: str | None
    job_id: str | None
    owner: str | None = Field(None, description="Who asked for it: the submitter of its prepare job")
    teardown_error: str | None = None
    teardown_attempts: int = 0
    teardown_retry_at: str | None = None


class ExtendRequest(Strict):
    ttl_seconds: int = Field(gt=0, description="New lifetime counted from now")


class SourceAccepted(BaseModel):
    source_id: str
    size_bytes: int
    created: bool


class ProjectRequest(Strict):
    name: str = Field(pattern=PROJECT_NAME_PATTERN)
    repo_path: str = Field(min_length=1, max_length=4096)


class ProjectEntry(BaseModel):
    name: str
    repo_path: str
    org: str
    created_at: str


class DeleteQuery(BaseModel):
    force: bool = False
    dry_run: bool = False
    recurse: bool = False


class JobListQuery(OrderedPageQuery):
    job: str | None = Field(None, pattern=JOB_PREFIX_PATTERN)
    status: TaskStatus | None = None


class TaskListQuery(PageQuery):
    job: str | None = Field(None, pattern=HEX_ID_PATTERN)


class IdPrefixQuery(PageQuery):
    id_prefix: str | None = Field(None, pattern=ID_PREFIX_PATTERN)


class StateListQuery(IdPrefixQuery):
    pass


class InstanceListQuery(IdPrefixQuery, OrderedPageQuery):
    pass


class Health(BaseModel):
    ok: bool
    version: str


class Isolation(BaseModel):
    level: str  # os | none
    reason: str
    one_org_only: bool


class Readiness(BaseModel):
    ok: bool
    checks: dict[str, str]
    store_driver: str
    store_reason: str
    warnings: list[str]
    isolation: Isolation | None = None


class CacheEviction(BaseModel):
    completed_at: str
    trigger: str
    evicted_count: int
    freed_bytes: int
    blocked_count: int
    usage_bytes_before: int
    usage_bytes_after: int


class EvictionQueueEntry(BaseModel):
    state_id: str
    size_bytes: int
    last_used_at: str
    blocked_by: Literal["in_use", "job", "too_young"] | None = Field(
        description="What keeps it: an instance runs on it, a job builds on it, or it is younger than "
                    "`min_state_age_seconds`; null: it goes when the cache needs room")


class CacheStatus(BaseModel):
    usage_bytes: int
    org_usage_bytes: int
    configured_max_bytes: int | None
    effective_max_bytes: int
    reserve_bytes: int
    high_watermark: float
    low_watermark: float
    min_state_age_seconds: int
    store_total_bytes: int
    store_free_bytes: int
    state_count: int
    reclaimable_bytes: int
    blocked_count: int
    pressure_reasons: list[str]
    eviction_queue: list[EvictionQueueEntry] = Field(description=(
        "Your org's leaf states on this host in the order eviction would take them (least recently used "
        "first, at most 20), each with what blocks it; other orgs' states are counted above, never listed"))
    last_eviction: CacheEviction | None


class ExplainStep(BaseModel):
    task_id: str
    summary: str
    state_id: str
    cached: bool


class CacheExplainResponse(BaseModel):
    decision: Literal["hit", "miss", "unknown"]
    reason_code: str = Field(description="exact_state_match | step_changed:<n> | image_changed | no_matching_state"
                                         " | liquibase_not_planned")
    signature: str
    resolved_image_id: str
    matched_state_id: str | None
    host: str | None = Field(description="The host a prepare would run on now, whose cache the answer describes "
                                         "(none for decision unknown)")
    steps: list[ExplainStep]


class TransferEntry(BaseModel):
    transfer_id: str
    kind: Literal["export", "import"]
    state_id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    host: str = Field(description="The host whose worker runs (or ran) it")
    bytes_done: int
    bytes_total: int | None = Field(description="Export: the state's size while it runs (an estimate), the bytes "
                                                "streamed once done; import: the stored bytes of the chain")
    created_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: ErrorBody | None
    manifest: dict | None = Field(description="The state's manifest once the transfer succeeded")
    status_url: str
