"""States shared between orgs: an explicit, audited grant of one state (and so of how it was
built: its ancestors) to a named org, read-only.

The grantee never gets a row of the owner's: its lookups see the owner's copy as a cache hit,
its builds and instances are clones of that copy in the grantee's own space, and what it builds
on top is its own. The owner's copy is protected like any other: it cannot be deleted or
evicted while a grantee's clone or child depends on it.
"""
from __future__ import annotations

import peewee as pw

from appliance.control.models import Instance, State, StateShare, utcnow
from appliance.errors import InvalidArgument, NotFound
from appliance.ids import valid_org


def shared_with(grantee: str) -> dict[str, str]:
    """state_id → owner org, for every state shared with ``grantee``, ancestors included."""
    result: dict[str, str] = {}
    for grant in (StateShare.select().where((StateShare.grantee == grantee) & StateShare.revoked_at.is_null())
                  .order_by(StateShare.id)):
        current: str | None = grant.state_id
        while current is not None and current not in result:
            result[current] = grant.org
            row = State.select(State.parent_state_id).where(
                (State.org == grant.org) & (State.state_id == current)).first()
            current = row.parent_state_id if row else None
    return result


def copy_owner(org: str, state_id: str, host: str) -> str | None:
    """Whose copy of the state on ``host`` ``org`` may use: its own, else a sharer's, else None."""
    if State.select().where((State.org == org) & (State.state_id == state_id) & (State.host == host)).exists():
        return org
    owner = shared_with(org).get(state_id)
    if owner and State.select().where((State.org == owner) & (State.state_id == state_id)
                                      & (State.host == host)).exists():
        return owner
    return None


def visible_copies(org: str, state_ids: list[str]):
    """(host, state_id) of every copy ``org`` may use: its own and those shared with it."""
    shared = {s: o for s, o in shared_with(org).items() if s in set(state_ids)}
    query = State.select(State.host, State.state_id, State.org).where(State.state_id.in_(state_ids))
    return [(row.host, row.state_id) for row in query
            if row.org == org or shared.get(row.state_id) == row.org]


def grantees(org: str) -> set[str]:
    """Every org ``org`` ever shared a state with: a revoked grant leaves clones and states behind."""
    return {g.grantee for g in StateShare.select(StateShare.grantee).where(StateShare.org == org)}


def dependents_elsewhere(org: str, state_id: str) -> tuple[list[Instance], list[State]]:
    """Other orgs' live instances cloned from ``org``'s copy, and their states built on it."""
    others = grantees(org)
    if not others:
        return [], []
    instances = list(Instance.select().where((Instance.state_org == org) & (Instance.state_id == state_id)
                                             & (Instance.org != org)
                                             & Instance.status.in_(["starting", "active", "deleting"])))
    children = list(State.select().where((State.parent_state_id == state_id) & State.org.in_(list(others))))
    return instances, children


def share(org: str, state_id: str, grantee: str, granted_by: str) -> tuple[StateShare, bool]:
    """Grant (or grant again); returns the grant and whether it is new."""
    grantee = valid_org(grantee, "grantee")
    if grantee == org:
        raise InvalidArgument("a state is always visible to its own org")
    row, created = StateShare.get_or_create(org=org, state_id=state_id, grantee=grantee,
                                            defaults={"granted_by": granted_by, "created_at": utcnow()})
    if not created and row.revoked_at is not None:
        row.revoked_at, row.granted_by, row.created_at, created = None, granted_by, utcnow(), True
        row.save()
    return row, created


def unshare(org: str, state_id: str, grantee: str) -> None:
    if not StateShare.update(revoked_at=utcnow()).where(
            (StateShare.org == org) & (StateShare.state_id == state_id) & (StateShare.grantee == grantee)
            & StateShare.revoked_at.is_null()).execute():
        raise NotFound(f"state {state_id} is not shared with {grantee}")


def live_shares(org: str, state_id: str | None = None) -> pw.ModelSelect:
    """The grants of ``org``'s state (every state: None) that are not revoked (unordered: a list
    pages them)."""
    query = StateShare.select().where((StateShare.org == org) & StateShare.revoked_at.is_null())
    return query if state_id is None else query.where(StateShare.state_id == state_id)

