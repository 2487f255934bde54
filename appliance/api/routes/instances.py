"""Instances: list, get (with the DSN for its owner), delete, extend."""
from __future__ import annotations

import datetime as dt

from quart import Blueprint, g
from quart_schema import document_response, validate_querystring, validate_request, validate_response

from appliance.api import serializers
from appliance.api.app import call, context, deletion_response, scope
from appliance.api.listing import page_of, paged, with_id_prefix
from appliance.api.schemas import DeleteQuery, DeleteResult, ExtendRequest, InstanceEntry, InstanceListQuery
from appliance.control import quotas
from appliance.control.models import Instance, utcnow
from appliance.control.scope import OrgScope
from appliance.errors import InvalidArgument, NotFound
from appliance.orchestrator import deletion

blueprint = Blueprint("instances", __name__)
UNBOUND = ("pooled", "binding")  # warm-pool clones belong to no one until a prepare binds them


def find_instance(s: OrgScope, ref: str) -> Instance:
    """Full id, a unique id prefix, or the name of an active instance."""
    try:
        instance = s.by_id_or_prefix(Instance, Instance.instance_id, ref, "instance")
        if instance.status not in UNBOUND:
            return instance
    except NotFound:
        pass
    return s.get(Instance, "instance", ref, Instance.name == ref, Instance.status == "active")


@blueprint.get("/v1/instances")
@validate_querystring(InstanceListQuery)
@document_response(list[InstanceEntry])
async def list_instances(query_args: InstanceListQuery):
    s, principal = scope(), g.principal
    q = with_id_prefix(serializers.with_owner(s.select(Instance)).where(Instance.status.not_in(UNBOUND)),
                       Instance.instance_id, query_args.id_prefix)
    return await paged(page_of(q, (Instance.created_at, Instance.instance_id), lambda i: (i.created_at, i.instance_id),
                               query_args, lambda i: serializers.instance_entry(i, principal)), query_args)


@blueprint.get("/v1/instances/<ref>")
@validate_response(InstanceEntry)
async def get_instance(ref: str):
    s = scope()
    return await call(lambda: serializers.instance_entry(find_instance(s, ref), g.principal))


@blueprint.delete("/v1/instances/<ref>")
@validate_querystring(DeleteQuery)
@validate_response(DeleteResult, 200)
@validate_response(DeleteResult, 409)
@validate_response(DeleteResult, 202)
async def delete_instance(ref: str, query_args: DeleteQuery):
    org, ctx, s = g.principal.org, context(), scope()

    def delete():
        instance = find_instance(s, ref)
        return deletion.delete_instance(ctx, org, instance.instance_id, force=query_args.force,
                                        dry_run=query_args.dry_run)
    answer = await call(delete)
    return deletion_response(answer)


@blueprint.post("/v1/instances/<ref>/extend")
@validate_request(ExtendRequest)
@validate_response(InstanceEntry)
async def extend_instance(ref: str, data: ExtendRequest):
    org, ctx, s = g.principal.org, context(), scope()

    def extend():
        if data.ttl_seconds > ctx.settings.instance_max_ttl_seconds:
            raise InvalidArgument(f"ttl_seconds exceeds the maximum of {ctx.settings.instance_max_ttl_seconds}")
        quotas.check_ttl(ctx.settings, org, data.ttl_seconds)
        instance = find_instance(s, ref)
        if instance.status != "active":
            raise InvalidArgument(f"instance {instance.instance_id} is {instance.status}; only active ones extend")
        instance.expires_at = utcnow() + dt.timedelta(seconds=data.ttl_seconds)
        instance.save()
        return serializers.instance_entry(instance, g.principal)
    return await call(extend)
