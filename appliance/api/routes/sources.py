"""Source bundles (tar.gz uploads) and server-side projects (admin only)."""
from __future__ import annotations

from quart import Blueprint, g, request
from quart_schema import validate_querystring, validate_request, validate_response

from appliance.api import serializers
from appliance.api.app import call, context, scope
from appliance.api.listing import page_of, paged
from appliance.api.paging import PageQuery
from appliance.api.schemas import ProjectEntry, ProjectRequest, SourceAccepted
from appliance.control.models import Project
from appliance.errors import InvalidArgument
from appliance.sources import register_project, store_bundle

blueprint = Blueprint("sources", __name__)


@blueprint.post("/v1/sources")
@validate_response(SourceAccepted, 201)
@validate_response(SourceAccepted, 200)
async def upload_source():
    data = await request.get_data(cache=False)
    if not data:
        raise InvalidArgument("empty body: send a tar.gz bundle (Content-Type: application/gzip)")
    source_id, created = await call(store_bundle, context(), g.principal.org, data)
    return {"source_id": source_id, "size_bytes": len(data), "created": created}, 201 if created else 200


def _project_entry(project: Project) -> dict:
    return {"name": project.name, "repo_path": project.repo_path, "org": project.org,
            "created_at": serializers.ts(project.created_at)}


@blueprint.post("/v1/projects")
@validate_request(ProjectRequest)
@validate_response(ProjectEntry, 201)
async def create_project(data: ProjectRequest):
    project = await call(register_project, context(), g.principal.org, data.name, data.repo_path)
    return _project_entry(project), 201


@blueprint.get("/v1/projects")
@validate_querystring(PageQuery)
async def list_projects(query_args: PageQuery):
    query = scope().select(Project)
    return await paged(page_of(query, (Project.name,), lambda p: (p.name,), query_args, _project_entry), query_args)
