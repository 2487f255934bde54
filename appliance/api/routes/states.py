"""States: the immutable, content-addressed tree."""
from __future__ import annotations

import peewee as pw
from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, g
from quart_schema import document_response, validate_querystring, validate_request, validate_response

from appliance.api import paging, serializers
from appliance.api.app import call, context, deletion_response, scope
from appliance.api.listing import page_of, paged, with_id_prefix
from appliance.api.routes.tokens import own_org
from appliance.api.schemas import DeleteQuery, DeleteResult, StateEntry, StateListQuery
from appliance.control import sharing
from appliance.control.models import Instance, State, StateShare
from appliance.control.scope import OrgScope
from appliance.errors import InvalidCursor, NotFound, PermissionDenied
from appliance.ids import ORG_PATTERN, valid_org
from appliance.orchestrator import deletion

blueprint = Blueprint("states", __name__)


def _refcounts(s: OrgScope, state_ids: list[str] | None = None) -> dict[str, int]:
    """Children and live instances of each state (of ``state_ids`` only, when given)."""
    counts: dict[str, int] = {}
    children = (s.select(State, State.parent_state_id, pw.fn.COUNT(State.state_id.distinct()).alias("n"))
                .where(State.parent_state_id.is_null(False)).group_by(State.parent_state_id))
    users = (s.select(Instance, Instance.state_id, pw.fn.COUNT(Instance.instance_id).alias("n"))
             .where(Instance.status.in_(["starting", "active"])).group_by(Instance.state_id))
    if state_ids is not None:
        children = children.where(State.parent_state_id.in_(state_ids))
        users = users.where(Instance.state_id.in_(state_ids))
    for row in children:
        counts[row.parent_state_id] = counts.get(row.parent_state_id, 0) + row.n
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
@validate_querystring(StateListQuery)
@document_response(list[StateEntry])
async def list_states(query_args: StateListQuery):
    """The org's own states (oldest first, a state once whatever its copies), then the states
    other orgs shared with it; paged over both."""
    s = scope()

    def rows() -> tuple[list[dict], str | None]:
        made_for = paging.fingerprint(query_args.model_dump())
        phase, key = OWN, None
        if query_args.cursor:
            phase, *key = paging.decode_cursor(query_args.cursor, made_for, 3)
        if phase not in (OWN, SHARED):
            raise InvalidCursor("the cursor is not one this list gave out")
        entries: list[dict] = []
        keys: list[tuple] = []  # each entry's place in the order: (phase, first copy's creation, state id)
        wanted = query_args.limit + 1
        if phase == OWN:
            own = _first_copies(s, query_args.id_prefix, key, wanted)
            counts = _refcounts(s, [state_id for state_id, _ in own])
            copies = _copies(s.select(State), [state_id for state_id, _ in own])
            entries += [serializers.state_entry(copies[state_id], counts.get(state_id, 0)) for state_id, _ in own]
            keys += [(OWN, first, state_id) for state_id, first in own]
            key = None
        if len(entries) < wanted:
            mine = s.select(State, State.state_id)
            shared = _state_ids(s.shared_states().where(State.state_id.not_in(mine)), query_args.id_prefix, key,
                                wanted - len(entries))
            copies = _copies(s.shared_states(), [state_id for state_id, _ in shared])
            entries += [serializers.state_entry(copies[state_id], 0, shared_from=copies[state_id][0].org)
                        for state_id, _ in shared]
            keys += [(SHARED, first, state_id) for state_id, first in shared]
        if len(entries) <= query_args.limit:
            return entries, None
        return entries[: query_args.limit], paging.encode_cursor(keys[query_args.limit - 1], made_for)
    return await paged(rows, query_args)


OWN, SHARED = 0, 1


def _first_created():
    return pw.fn.MIN(State.created_at)


def _state_ids(query: pw.ModelSelect, id_prefix: str | None, key: list | None, limit: int) -> list[tuple[str, object]]:
    """(state id, its first copy's creation) of the states ``query`` finds, in that order, after ``key``."""
    first = _first_created()
    ids = with_id_prefix(query.select(State.state_id, first.alias("first")), State.state_id, id_prefix)
    ids = ids.group_by(State.state_id)
    if key:
        ids = ids.having(paging.after((first, State.state_id), key))
    return [(row.state_id, row.first) for row in ids.order_by(first, State.state_id).limit(limit)]


def _first_copies(s: OrgScope, id_prefix: str | None, key: list | None, limit: int) -> list[tuple[str, object]]:
    """What :func:`_state_ids` finds for the org's own states, read as each state's earliest copy
    (no copy of it made before) along the (org, created_at, state_id) index: a page reads about
    a page of rows, however many states the org holds, where grouping would read them all."""
    earlier = State.alias()
    made_before = earlier.select(pw.SQL("1")).where(
        (earlier.org == State.org) & (earlier.state_id == State.state_id)
        & ((earlier.created_at < State.created_at) | ((earlier.created_at == State.created_at) & (earlier.id < State.id))))
    query = with_id_prefix(s.select(State, State.state_id, State.created_at), State.state_id, id_prefix)
    query = query.where(~pw.fn.EXISTS(made_before))
    if key:
        query = query.where(paging.after((State.created_at, State.state_id), key))
    return [(row.state_id, row.created_at) for row in query.order_by(State.created_at, State.state_id).limit(limit)]


def _copies(query: pw.ModelSelect, state_ids: list[str]) -> dict[str, list[State]]:
    copies: dict[str, list[State]] = {}
    for row in query.where(State.state_id.in_(state_ids)).order_by(State.created_at):
        copies.setdefault(row.state_id, []).append(row)
    return copies



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
@validate_querystring(paging.PageQuery)
@document_response(list[ShareEntry])
async def list_shares(state_id: str, query_args: paging.PageQuery):
    s = scope()
    state = await call(own_state, s, state_id)
    query = sharing.live_shares(s.org, state.state_id)
    return await paged(page_of(query, (StateShare.created_at, StateShare.grantee), lambda r: (r.created_at, r.grantee),
                               query_args, _share_entry), query_args)


@blueprint.get("/v1/orgs/<org>/shares")
@validate_querystring(paging.PageQuery)
@document_response(list[ShareEntry])
async def list_org_shares(org: str, query_args: paging.PageQuery):
    """Every live share the org gave, across its states."""
    query = sharing.live_shares(own_org(org))
    return await paged(page_of(query, (StateShare.created_at, StateShare.id), lambda r: (r.created_at, r.id),
                               query_args, _share_entry), query_args)


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
