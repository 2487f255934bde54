"""peewee models. Every user-visible row carries an ``org``.

Hosts: every row that names something on one host's disk or port pool carries that host's id
(``State.host``, ``BaseImage.host_id``, ``Volume.host_id``, ``Instance.host_id``), and only that
host's workers and reconciler touch it. A ``State`` row is one host's copy of a state, so the
same state id may have a row per host; ``Instance.host`` is the address its DSN names.

Secrets: ``Instance.password`` is the only secret column; serializers never emit it except
as part of the owner's DSN, and events/logs never see it.
"""
from __future__ import annotations

import datetime as dt

import peewee as pw

database_proxy = pw.DatabaseProxy()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class BaseModel(pw.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = pw.IntegerField(primary_key=True)
    applied_at = pw.DateTimeField(default=utcnow)


class Host(BaseModel):
    """A host of the appliance: one store, one port pool, one prepare queue."""

    host_id = pw.CharField(primary_key=True, max_length=63)
    storage_driver = pw.CharField(max_length=16)
    runtime = pw.CharField(max_length=16)
    store_total_bytes = pw.BigIntegerField(default=0)
    store_free_bytes = pw.BigIntegerField(default=0)
    port_min = pw.IntegerField()
    port_max = pw.IntegerField()
    instance_host = pw.CharField(max_length=255)
    nomad_node_id = pw.CharField(max_length=64, null=True)
    started_at = pw.DateTimeField(default=utcnow)
    heartbeat_at = pw.DateTimeField(default=utcnow)
    drained_at = pw.DateTimeField(null=True)
    drained_reason = pw.TextField(null=True)


class Org(BaseModel):
    slug = pw.CharField(primary_key=True, max_length=63)
    created_at = pw.DateTimeField(default=utcnow)


class ApiToken(BaseModel):
    """A bearer token, kept as its SHA-256 only. ``global_admin``: an operator token (token file,
    `sqlrs-appliance token`) that may act in any org; the others are org-scoped robot tokens."""

    token_hash = pw.CharField(unique=True, max_length=64)
    token_id = pw.CharField(max_length=32, null=True, unique=True)  # public handle, for listing and revoking
    org = pw.CharField(max_length=63)
    role = pw.CharField(max_length=32)
    name = pw.CharField(max_length=128)
    global_admin = pw.BooleanField(default=False)
    created_by = pw.CharField(max_length=255, null=True)
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField(null=True)
    revoked_at = pw.DateTimeField(null=True)
    last_used_at = pw.DateTimeField(null=True)


class SourceBundle(BaseModel):
    org = pw.CharField(max_length=63)
    source_id = pw.CharField(max_length=64)
    size_bytes = pw.BigIntegerField()
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("org", "source_id"), True),)


class Project(BaseModel):
    """A git repository on the server that an org may prepare from by ``{project, ref}``."""

    org = pw.CharField(max_length=63)
    name = pw.CharField(max_length=128)
    repo_path = pw.TextField()
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("org", "name"), True),)


class PrepareJob(BaseModel):
    job_id = pw.CharField(primary_key=True, max_length=32)
    org = pw.CharField(max_length=63, index=True)
    status = pw.CharField(max_length=16, index=True)
    prepare_kind = pw.CharField(max_length=16)
    image_id = pw.CharField(max_length=255)
    resolved_image_id = pw.CharField(max_length=255, null=True)
    signature = pw.CharField(max_length=64, null=True, index=True)
    plan_only = pw.BooleanField(default=False)
    request_json = pw.TextField()
    source_id = pw.CharField(max_length=64, null=True)
    work_dir = pw.CharField(max_length=1024, default=".")
    instance_ttl_seconds = pw.IntegerField()
    instance_name = pw.CharField(max_length=128, null=True)
    priority = pw.IntegerField(default=0)
    submitted_by = pw.CharField(max_length=255, null=True)  # the principal, for the audit log
    host_id = pw.CharField(max_length=63, null=True, index=True)  # where placement sent it
    cancel_requested = pw.BooleanField(default=False)
    created_at = pw.DateTimeField(default=utcnow)
    started_at = pw.DateTimeField(null=True)
    finished_at = pw.DateTimeField(null=True)
    heartbeat_at = pw.DateTimeField(null=True)
    worker = pw.CharField(max_length=255, null=True)
    error_json = pw.TextField(null=True)
    error_code = pw.CharField(max_length=64, null=True, index=True)  # error_json's code, for counting
    result_state_id = pw.CharField(max_length=64, null=True)
    result_instance_id = pw.CharField(max_length=32, null=True)
    parked_on = pw.CharField(max_length=255, null=True)  # queued, waiting for this build lock (orchestrator.parking)

    class Meta:
        indexes = ((("status", "finished_at"), False),  # what the queue gauges read
                   (("finished_at",), False),  # what retention prunes, oldest first
                   (("org", "created_at", "job_id"), False))  # a page of an org's jobs (api.paging)


class Task(BaseModel):
    job = pw.ForeignKeyField(PrepareJob, backref="tasks", on_delete="CASCADE")
    task_id = pw.CharField(max_length=64)
    position = pw.IntegerField()
    type = pw.CharField(max_length=32)
    status = pw.CharField(max_length=16)
    input_kind = pw.CharField(max_length=16, null=True)
    input_id = pw.CharField(max_length=255, null=True)
    task_hash = pw.CharField(max_length=64, null=True)
    output_state_id = pw.CharField(max_length=64, null=True)
    cached = pw.BooleanField(null=True)
    summary = pw.TextField(null=True)
    step_json = pw.TextField(null=True)
    started_at = pw.DateTimeField(null=True)
    finished_at = pw.DateTimeField(null=True)
    duration_seconds = pw.FloatField(null=True)  # set when it ends: what the latency histograms read

    class Meta:
        indexes = ((("job", "task_id"), True),)


class JobEvent(BaseModel):
    job = pw.ForeignKeyField(PrepareJob, backref="events", on_delete="CASCADE")
    seq = pw.IntegerField()
    ts = pw.DateTimeField(default=utcnow)
    type = pw.CharField(max_length=16)
    task_id = pw.CharField(max_length=64, null=True)
    status = pw.CharField(max_length=16, null=True)
    message = pw.TextField(null=True)
    payload_json = pw.TextField(null=True)

    class Meta:
        indexes = ((("job", "seq"), True),)


class BaseImage(BaseModel):
    """The initdb'd cluster of one resolved image: the root every state tree grows from."""

    org = pw.CharField(max_length=63)
    base_key = pw.CharField(max_length=64)
    resolved_image_id = pw.CharField(max_length=255)
    size_bytes = pw.BigIntegerField(default=0)
    host_id = pw.CharField(max_length=63, default="")
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("org", "base_key", "host_id"), True),)


class State(BaseModel):
    org = pw.CharField(max_length=63)
    state_id = pw.CharField(max_length=64)
    parent_state_id = pw.CharField(max_length=64, null=True, index=True)
    image_id = pw.CharField(max_length=255)
    prepare_kind = pw.CharField(max_length=16)
    task_hash = pw.CharField(max_length=64)
    summary = pw.TextField(null=True)
    size_bytes = pw.BigIntegerField(default=0)
    host = pw.CharField(max_length=255)  # the host id holding this copy
    build_seconds = pw.FloatField(null=True)  # how long the step took to build; None when imported
    snapshot_seconds = pw.FloatField(null=True)  # of build_seconds, the snapshot commit
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(default=utcnow)
    use_count = pw.IntegerField(default=0)
    exported_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("org", "state_id", "host"), True),
                   (("org", "state_id", "created_at"), False),  # a page of an org's states (api.paging)
                   (("org", "host", "size_bytes"), False))  # a scrape's copies and bytes per org and host


class Volume(BaseModel):
    """A writable clone on disk. Every clone has a row first, so the reconciler can trace it."""

    volume_id = pw.CharField(primary_key=True, max_length=32)
    org = pw.CharField(max_length=63)
    purpose = pw.CharField(max_length=16)  # build | instance
    job_id = pw.CharField(max_length=32, null=True, index=True)
    host_id = pw.CharField(max_length=63, default="", index=True)
    created_at = pw.DateTimeField(default=utcnow)


class Instance(BaseModel):
    instance_id = pw.CharField(primary_key=True, max_length=32)
    org = pw.CharField(max_length=63, index=True)
    state_id = pw.CharField(max_length=64, index=True)
    image_id = pw.CharField(max_length=255)
    job_id = pw.CharField(max_length=32, null=True)
    volume_id = pw.CharField(max_length=32)
    status = pw.CharField(max_length=16)  # active | expired | failed | deleting | ...
    host = pw.CharField(max_length=255)  # the address the DSN names
    host_id = pw.CharField(max_length=63, default="", index=True)
    state_org = pw.CharField(max_length=63, null=True)  # whose copy it was cloned from (None: its own org's)
    port = pw.IntegerField(null=True)
    password = pw.CharField(max_length=128)
    name = pw.CharField(max_length=128, null=True)
    tls = pw.BooleanField(default=False)  # serves TLS with a certificate of the appliance's CA (DSN: sslmode=require)
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()
    # While ``deleting``: what the row becomes once torn down (None: it goes), the failed attempts,
    # the last one's error, and when the reconciler may try (again).
    teardown_keep_as = pw.CharField(max_length=16, null=True)
    teardown_attempts = pw.IntegerField(default=0)
    teardown_error = pw.TextField(null=True)
    teardown_retry_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("status",), False), (("job_id",), False),
                   (("org", "created_at", "instance_id"), False))  # a page of an org's instances


class CacheEviction(BaseModel):
    """One eviction pass, for `GET /v1/cache/status` and for operators asking "what went?"."""

    completed_at = pw.DateTimeField(default=utcnow, index=True)
    trigger = pw.CharField(max_length=32)
    evicted_count = pw.IntegerField()
    freed_bytes = pw.BigIntegerField()
    blocked_count = pw.IntegerField()
    usage_bytes_before = pw.BigIntegerField()
    usage_bytes_after = pw.BigIntegerField()
    evicted_json = pw.TextField()


class OrgQuota(BaseModel):
    """An org's limits; a None column falls back to the settings' quota_* default."""

    org = pw.CharField(primary_key=True, max_length=63)
    max_running_jobs = pw.IntegerField(null=True)
    max_queued_jobs = pw.IntegerField(null=True)
    max_instances = pw.IntegerField(null=True)
    max_state_bytes = pw.BigIntegerField(null=True)
    max_ttl_seconds = pw.IntegerField(null=True)
    instance_memory_mb = pw.IntegerField(null=True)
    instance_cpus = pw.FloatField(null=True)
    updated_at = pw.DateTimeField(default=utcnow)
    updated_by = pw.CharField(max_length=255, null=True)


class StateShare(BaseModel):
    """``org`` lets ``grantee`` use one of its states, and that state's ancestors, read-only: the
    grantee's prepares get cache hits from (and build on) the owner's copies."""

    org = pw.CharField(max_length=63)
    state_id = pw.CharField(max_length=64)
    grantee = pw.CharField(max_length=63, index=True)
    granted_by = pw.CharField(max_length=255)
    created_at = pw.DateTimeField(default=utcnow)
    revoked_at = pw.DateTimeField(null=True)  # kept: what the grantee built meanwhile still needs our copy

    class Meta:
        indexes = ((("org", "state_id", "grantee"), True),)


class AuditEvent(BaseModel):
    """Append-only: who did what to which object, from where, with which outcome. Never updated;
    deleted only by the reconciler once older than ``audit_retention_days``; ``details_json``
    holds no secrets (ids and reasons only)."""

    at = pw.DateTimeField(default=utcnow, index=True)
    org = pw.CharField(max_length=63, null=True, index=True)  # None: no org known (a failed login)
    actor = pw.CharField(max_length=255)
    action = pw.CharField(max_length=64, index=True)
    object_kind = pw.CharField(max_length=32, null=True)
    object_id = pw.CharField(max_length=128, null=True)
    outcome = pw.CharField(max_length=16)  # ok | denied | failed
    source = pw.CharField(max_length=255, null=True)  # client address
    details_json = pw.TextField(null=True)


class MetricCounter(BaseModel):
    """A monotonic counter (``appliance.control.counters``): raised in the transaction that
    records its event, never lowered, never deleted, so pruning history loses no count. One row
    per (metric, labels); a histogram keeps a row per bucket and its ``_sum`` and ``_count``."""

    name = pw.CharField(max_length=128)
    labels = pw.CharField(max_length=255)  # canonical JSON of the label values
    value = pw.FloatField(default=0.0)

    class Meta:
        primary_key = pw.CompositeKey("name", "labels")


class Installation(BaseModel):
    """One row: this installation's id, generated once, shared by every host of the installation.
    It names the object-store prefix the installation owns (``appliance.objectstore.ownership``)."""

    singleton = pw.IntegerField(primary_key=True, default=1)
    installation_id = pw.CharField(max_length=64)
    created_at = pw.DateTimeField(default=utcnow)


class LiquibasePlan(BaseModel):
    """The changesets ``update-sql`` found for one (image, source, arguments, Liquibase version):
    its output from an empty base depends on nothing else, so a repeated request needs no JVM to
    know its steps. Sources never change once uploaded, so a plan never goes stale."""

    org = pw.CharField(max_length=63)
    plan_key = pw.CharField(max_length=64)
    source_id = pw.CharField(max_length=64)
    liquibase_version = pw.CharField(max_length=32)
    changesets_json = pw.TextField()
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("org", "plan_key"), True),)


class Transfer(BaseModel):
    """An export of a state to the object store, or an import from it, run by a worker of
    ``host`` (``appliance.transfer.jobs``). ``bytes_done``/``bytes_total``: raw bytes of the send
    stream against the state's size for an export, stored bytes of the chain for an import.
    ``heartbeat_at``: written with the progress while it runs; the reconciler fails a transfer
    whose heartbeat went stale."""

    transfer_id = pw.CharField(primary_key=True, max_length=32)
    org = pw.CharField(max_length=63)
    kind = pw.CharField(max_length=8)  # export | import
    state_id = pw.CharField(max_length=64)
    host = pw.CharField(max_length=63)
    status = pw.CharField(max_length=16, index=True)  # queued | running | succeeded | failed
    bytes_done = pw.BigIntegerField(default=0)
    bytes_total = pw.BigIntegerField(null=True)
    error_code = pw.CharField(max_length=64, null=True)
    error_message = pw.TextField(null=True)
    manifest_json = pw.TextField(null=True)  # the state's manifest once it succeeded
    created_by = pw.CharField(max_length=255, null=True)
    worker = pw.CharField(max_length=255, null=True)
    created_at = pw.DateTimeField(default=utcnow)
    started_at = pw.DateTimeField(null=True)
    finished_at = pw.DateTimeField(null=True)
    heartbeat_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("org", "state_id", "kind"), False),)


ALL_MODELS = [SchemaVersion, Host, Org, ApiToken, SourceBundle, Project, PrepareJob, Task, JobEvent,
              BaseImage, State, Volume, Instance, CacheEviction, AuditEvent, OrgQuota, StateShare, LiquibasePlan,
              MetricCounter, Installation, Transfer]
