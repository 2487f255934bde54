"""Prepare jobs: create, list, get, cancel, delete, events; and the flat task list."""
from __future__ import annotations

import asyncio

from quart import Blueprint, current_app, g
from quart_schema import document_response, validate_querystring, validate_request, validate_response

from appliance.api import serializers
from appliance.api.app import call, context, deletion_response, scope
from appliance.api.listing import page_of, paged, with_id_prefix
from appliance.api.schemas import (
    DeleteQuery,
    DeleteResult,
    JobListQuery,
    PrepareJobAccepted,
    PrepareJobEntry,
    PrepareJobRequest,
    PrepareJobStatus,
    TaskEntry,
    TaskListQuery,
)
from appliance.api.streams import event_stream
from appliance.control.models import PrepareJob, Task
from appliance.control.scope import OrgScope
from appliance.orchestrator import deletion
from appliance.orchestrator.pooled_hits import queue_after_admission
from appliance.orchestrator.scheduling import check_priority
from appliance.orchestrator.submit import submit_prepare

blueprint = Blueprint("jobs", __name__)


def _job(s: OrgScope, job_id: str) -> PrepareJob:
    return s.get(PrepareJob, "job", job_id, PrepareJob.job_id == job_id)


@blueprint.post("/v1/prepare-jobs")
@validate_request(PrepareJobRequest)
@validate_response(PrepareJobAccepted, 201)
async def create_job(data: PrepareJobRequest):
    principal, ctx = g.principal, context()
    check_priority(ctx.settings, principal, data.priority)

    def admit() -> tuple[PrepareJob, dict | None]:
        job = submit_prepare(ctx, principal.org, data.model_dump(exclude_none=True), submitted_by=principal.subject)
        bound = job.status == "succeeded" and not job.plan_only  # from the warm pool, at admission
        return job, serializers.job_result(job, principal) if bound else None

    job, result = await call(admit)
    url = f"/v1/prepare-jobs/{job.job_id}"
    body = {"job_id": job.job_id, "status": job.status, "status_url": url, "events_url": f"{url}/events"}
    if result is not None:
        body["result"] = result
        current_app.add_background_task(_after_admission, ctx, job.job_id)
    return body, 201, {"Location": url}


AFTER_ADMISSION_DELAY_SECONDS = 0.25


async def _after_admission(ctx, job_id: str) -> None:
    """The report and the pool refill (a clone and a Postgres start) wait a moment, so they do
    not compete for the CPU with the client's first connection to the DSN it was just given."""
    await asyncio.sleep(AFTER_ADMISSION_DELAY_SECONDS)
    await call(queue_after_admission, ctx, job_id)


@blueprint.get("/v1/prepare-jobs")
@validate_querystring(JobListQuery)
@document_response(list[PrepareJobEntry])
async def list_jobs(query_args: JobListQuery):
    s = scope()
    q = with_id_prefix(s.select(PrepareJob), PrepareJob.job_id, query_args.job)
    if query_args.status:
        q = q.where(PrepareJob.status == query_args.status)
    return await paged(page_of(q, (PrepareJob.created_at, PrepareJob.job_id), lambda j: (j.created_at, j.job_id),
                               query_args, serializers.job_entry), query_args)


@blueprint.get("/v1/prepare-jobs/<job_id>")
@validate_response(PrepareJobStatus)
async def get_job(job_id: str):
    s = scope()
    return await call(lambda: serializers.job_status(_job(s, job_id), g.principal))


@blueprint.post("/v1/prepare-jobs/<job_id>/cancel")
@document_response(PrepareJobStatus, 200)
@document_response(PrepareJobStatus, 202)
async def cancel_job(job_id: str):
    s = scope()

    def cancel():
        changed = deletion.request_cancel(_job(s, job_id))
        return serializers.job_status(_job(s, job_id), g.principal), 202 if changed else 200
    return await call(cancel)


@blueprint.delete("/v1/prepare-jobs/<job_id>")
@validate_querystring(DeleteQuery)
@validate_response(DeleteResult, 200)
@validate_response(DeleteResult, 409)
async def delete_job(job_id: str, query_args: DeleteQuery):
    answer = await call(deletion.delete_job, context(), g.principal.org, job_id,
                        force=query_args.force, dry_run=query_args.dry_run)
    return deletion_response(answer)


@blueprint.get("/v1/prepare-jobs/<job_id>/events")
async def job_events(job_id: str):
    await call(_job, scope(), job_id)
    return await event_stream(job_id)


@blueprint.get("/v1/tasks")
@validate_querystring(TaskListQuery)
@document_response(list[TaskEntry])
async def list_tasks(query_args: TaskListQuery):
    s = scope()
    q = s.tasks(Task, PrepareJob.job_id, PrepareJob.created_at)
    if query_args.job:
        q = q.where(PrepareJob.job_id == query_args.job)
    return await paged(page_of(q, (PrepareJob.created_at, PrepareJob.job_id, Task.position),
                               lambda t: (t.job.created_at, t.job.job_id, t.position), query_args,
                               lambda t: serializers.task_entry(t, t.job.job_id)), query_args)
