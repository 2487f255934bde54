"""States: the immutable, content-addressed tree."""
from __future__ import annotations

import peewee as pw
from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, g
from quart_schema import document_response, validate_querystring, validate_request, validate_response

from appliance.api import serializers
from appliance.api.app import call, context, deletion_response, scope
from appliance.api.listing import listed, with_id_prefix
from appliance.api.schemas import DeleteQuery, DeleteResult, IdPrefixQuery, StateEntry
from appliance.control import sharing
from appliance.control.models import Instance, State
from appliance.control.scope import OrgScope
from appliance.errors import NotFound, PermissionDenied
from appliance.ids import ORG_PATTERN, valid_org
from appliance.orchestrator import deletion

blueprint = Blueprint("states", __name__)


def _refcounts(s: OrgScope) -> dict[str, int]:
    counts: dict[str, int] = {}
    children = (s.select(State, State.parent_state_id, pw.fn.COUNT(State.state_id.distinct()).alias("n"))
                .where(State.parent_state_id.is_null(False)).group_by(State.parent_state_id))
    for row in children:
        counts[row.parent_state_id] = counts.get(row.parent_state_id, 0) + row.n
    users = (s.select(Instance, Instance.state_id, pw.fn.COUNT(Instance.instance_id).alias("n"))
             .where(Instance.status.in_(["starting", "active"])).group_by(Instance.state_id))
    for row in users:
        counts[row.state_id] = counts.get(row.state_id, 0) + row.n
    return counts


def find_state(s: OrgScope, ref: str) -> State:
    return s.by_id_or_prefix(State, State.state_id, ref, "state")


def state_entry(s: OrgScope, state_id: str) -> dict:
    copies = list(s.select(State).where(State.state_id == state_id).order_by(State.created_at))
    if not copies:  # shared with us by another org
        copies = list(s.shared_states().where(State.state_id == state_id).order_by(State.created_at))
        return serializers.state_entry(copies, 0, shared_from=copies[0].org)
    return serializers.state_entry(copies, _refcounts(s).get(state_id, 0))


def _find(s: OrgScope, ref: str) -> tuple[State, bool]:
    """(the state, whether it is ours): our own, else one another org shared with us."""
    try:
        return find_state(s, ref), True
    except NotFound:
        row = s.shared_states().where(State.state_id == ref).first()
        if row is None:
            raise
        return row, False


def find_visible_state(s: OrgScope, ref: str) -> State:
    """Our own state, or one shared with us (read-only)."""
    return _find(s, ref)[0]


def own_state(s: OrgScope, ref: str) -> State:
    """Changing a state needs it to be ours: a shared one says so instead of 404."""
    state, ours = _find(s, ref)
    if not ours:
        raise PermissionDenied(f"state {ref} is shared with you read-only by org {state.org}")
    return state


@blueprint.get("/v1/states")
@validate_querystring(IdPrefixQuery)
@document_response(list[StateEntry])
async def list_states(query_args: IdPrefixQuery):
    s = scope()

    def rows():
        q = with_id_prefix(s.select(State).order_by(State.created_at), State.state_id, query_args.id_prefix)
        counts = _refcounts(s)
        copies: dict[str, list[State]] = {}
        for row in q:
            copies.setdefault(row.state_id, []).append(row)
        entries = [serializers.state_entry(c, counts.get(state_id, 0)) for state_id, c in copies.items()]
        shared: dict[str, list[State]] = {}
        for row in s.shared_states().order_by(State.created_at):
            if row.state_id not in copies and row.state_id.startswith((query_args.id_prefix or "").lower()):
                shared.setdefault(row.state_id, []).append(row)
        return entries + [serializers.state_entry(c, 0, shared_from=c[0].org) for c in shared.values()]
    return await listed(rows)


@blueprint.get("/v1/states/<state_id>")
@validate_response(StateEntry)
async def get_state(state_id: str):
    s = scope()

    def one():
        return state_entry(s, find_visible_state(s, state_id).state_id)
    return await call(one)


@blueprint.delete("/v1/states/<state_id>")
@validate_querystring(DeleteQuery)
@validate_response(DeleteResult, 200)
@validate_response(DeleteResult, 409)
@validate_response(DeleteResult, 202)
async def delete_state(state_id: str, query_args: DeleteQuery):
    org, ctx, s = g.principal.org, context(), scope()

    def delete():
        state = own_state(s, state_id)
        return deletion.delete_state(ctx, org, state.state_id, recurse=query_args.recurse,
                                     force=query_args.force, dry_run=query_args.dry_run)
    answer = await call(delete)
    return deletion_response(answer)


# -- sharing -----------------------------------------------------------------------------------
class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    org: str = Field(pattern=ORG_PATTERN, description="The org that may use the state read-only")


class ShareEntry(BaseModel):
    state_id: str
    org: str
    granted_by: str
    created_at: str


def _share_entry(row) -> dict:
    return {"state_id": row.state_id, "org": row.grantee, "granted_by": row.granted_by,
            "created_at": serializers.ts(row.created_at)}


@blueprint.get("/v1/states/<state_id>/shares")
@document_response(list[ShareEntry])
async def list_shares(state_id: str):
    s = scope()
    return await listed(lambda: [_share_entry(r) for r in sharing.shares_of(s.org, own_state(s, state_id).state_id)])


@blueprint.post("/v1/states/<state_id>/shares")
@validate_request(ShareRequest)
@validate_response(ShareEntry, 200)
@validate_response(ShareEntry, 201)
async def share_state(state_id: str, data: ShareRequest):
    s, principal = scope(), g.principal

    def grant():
        row, created = sharing.share(s.org, own_state(s, state_id).state_id, data.org, principal.subject)
        return _share_entry(row), 201 if created else 200
    return await call(grant)


@blueprint.delete("/v1/states/<state_id>/shares/<grantee>")
async def unshare_state(state_id: str, grantee: str):
    s = scope()

    def revoke():
        sharing.unshare(s.org, own_state(s, state_id).state_id, valid_org(grantee, "grantee"))
        return {"state_id": state_id, "org": grantee, "revoked": True}
    return await call(revoke)
