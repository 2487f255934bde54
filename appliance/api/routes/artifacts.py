"""A job's artifacts (report and logs) in the object store: list and download."""
from __future__ import annotations

import mimetypes

from quart import Blueprint, Response, g

from appliance.api.app import call, context, scope
from appliance.control.models import PrepareJob
from appliance.control.scope import OrgScope
from appliance.job_artifacts import list_job_artifacts, open_job_artifact

blueprint = Blueprint("artifacts", __name__)
_CHUNK = 256 * 1024


def _own_job(s: OrgScope, job_id: str) -> PrepareJob:
    return s.get(PrepareJob, "job", job_id, PrepareJob.job_id == job_id)


@blueprint.get("/v1/prepare-jobs/<job_id>/artifacts")
async def list_artifacts(job_id: str):
    org, ctx, s = g.principal.org, context(), scope()

    def rows():
        _own_job(s, job_id)
        return list_job_artifacts(ctx, org, job_id)
    return await call(rows)


@blueprint.get("/v1/prepare-jobs/<job_id>/artifacts/<path:name>")
async def download_artifact(job_id: str, name: str):
    org, ctx, s = g.principal.org, context(), scope()

    def open_it():
        _own_job(s, job_id)
        return open_job_artifact(ctx, org, job_id, name)
    reader = await call(open_it)

    async def chunks():
        try:
            while chunk := await call(reader.read, _CHUNK):
                yield chunk
        finally:
            await call(reader.close)
    content_type = ("text/plain; charset=utf-8" if name.endswith(".log")
                    else mimetypes.guess_type(name)[0] or "application/octet-stream")
    return Response(chunks(), content_type=content_type)
