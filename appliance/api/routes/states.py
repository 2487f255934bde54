"""States: the immutable, content-addressed tree."""
from __future__ import annotations

import peewee as pw
from quart import Blueprint, g
from quart_schema import validate_querystring, validate_response

from ...control.models import Instance, State
from ...control.scope import OrgScope
from ...orchestrator import deletion
from .. import serializers
from ..app import call, context, deletion_response, scope
from ..listing import listing
from ..schemas import DeleteQuery, DeleteResult, IdPrefixQuery, StateEntry

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
    return serializers.state_entry(copies, _refcounts(s).get(state_id, 0))


@blueprint.get("/v1/states")
@validate_querystring(IdPrefixQuery)
async def list_states(query_args: IdPrefixQuery):
    s = scope()

    def rows():
        q = s.select(State).order_by(State.created_at)
        if query_args.id_prefix:
            q = q.where(State.state_id.startswith(query_args.id_prefix.lower()))
        counts = _refcounts(s)
        copies: dict[str, list[State]] = {}
        for row in q:
            copies.setdefault(row.state_id, []).append(row)
        return [serializers.state_entry(c, counts.get(state_id, 0)) for state_id, c in copies.items()]
    return listing(await call(rows))


@blueprint.get("/v1/states/<state_id>")
@validate_response(StateEntry)
async def get_state(state_id: str):
    s = scope()

    def one():
        return state_entry(s, find_state(s, state_id).state_id)
    return await call(one)


@blueprint.delete("/v1/states/<state_id>")
@validate_querystring(DeleteQuery)
@validate_response(DeleteResult, 200)
@validate_response(DeleteResult, 409)
async def delete_state(state_id: str, query_args: DeleteQuery):
    org, ctx, s = g.principal.org, context(), scope()

    def delete():
        state = find_state(s, state_id)
        return deletion.delete_state(ctx, org, state.state_id, recurse=query_args.recurse,
                                     force=query_args.force, dry_run=query_args.dry_run)
    answer = await call(delete)
    return deletion_response(answer)
