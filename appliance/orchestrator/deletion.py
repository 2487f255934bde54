"""Deleting jobs, states and instances: whole trees or nothing, with a dry run.

The answer is always a ``DeleteResult`` tree (upstream sqlrs's shape) so a client can show
exactly what would go and what blocks it. An instance whose teardown fails is no error: its
node carries ``teardown_error``, the outcome is ``deleting``, and the reconciler finishes it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from appliance import instances
from appliance.context import AppContext
from appliance.control import counters, sharing
from appliance.control.db import write_transaction
from appliance.control.models import Instance, PrepareJob, State, Task, utcnow
from appliance.errors import NotFound
from appliance.orchestrator.events import TERMINAL_STATUSES, append_event


@dataclass
class Node:
    kind: str
    id: str
    blocked: str | None = None
    connections: int | None = None
    teardown_error: str | None = None  # an instance left ``deleting`` for the reconciler
    children: list[Node] = field(default_factory=list)
    row: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind, "id": self.id,
                                "children": [c.to_dict() for c in self.children]}
        if self.blocked:
            body["blocked"] = self.blocked
        if self.connections is not None:
            body["connections"] = self.connections
        if self.teardown_error:
            body["teardown_error"] = self.teardown_error
        return body

    def any_blocked(self) -> bool:
        return bool(self.blocked) or any(child.any_blocked() for child in self.children)

    def any_teardown_pending(self) -> bool:
        return bool(self.teardown_error) or any(child.any_teardown_pending() for child in self.children)


def result(node: Node, dry_run: bool) -> dict[str, Any]:
    if node.any_blocked():
        outcome = "blocked"
    elif node.any_teardown_pending():
        outcome = "deleting"
    else:
        outcome = "would_delete" if dry_run else "deleted"
    return {"dry_run": dry_run, "outcome": outcome, "root": node.to_dict()}


def _tear_down(ctx: AppContext, node: Node) -> bool:
    """An instance node's teardown; on failure the node says why (the row stays ``deleting``)."""
    if instances.destroy_instance(ctx, node.row):
        return True
    fresh = Instance.get_or_none(Instance.instance_id == node.id)
    node.teardown_error = (fresh.teardown_error if fresh else None) or "teardown failed"
    return False


# -- instances -------------------------------------------------------------------------------
def _instance_node(ctx: AppContext, instance: Instance, force: bool) -> Node:
    node = Node("instance", instance.instance_id, row=instance)
    if instance.status == "active" and instance.host_id == ctx.host:  # countable on its own host only
        try:
            node.connections = instances.connection_count(ctx, instance)
        except Exception:
            node.connections = 0  # not answering: nobody can be connected
        if node.connections and not force:
            node.blocked = "active_connections"
    return node


def delete_instance(ctx: AppContext, org: str, instance_id: str, *, force: bool, dry_run: bool) -> dict:
    instance = Instance.get_or_none((Instance.org == org) & (Instance.instance_id == instance_id))
    if instance is None:
        raise NotFound(f"instance {instance_id} not found")
    node = _instance_node(ctx, instance, force)
    if result(node, dry_run)["outcome"] == "deleted":
        _tear_down(ctx, node)
    return result(node, dry_run)


# -- states ----------------------------------------------------------------------------------
def _copies(org: str, host: str | None):
    """Every host's copies of states (``host`` None), or one host's."""
    query = State.select().where(State.org == org)
    return query if host is None else query.where(State.host == host)


def _state_node(ctx: AppContext, org: str, state: State, recurse: bool, force: bool,
                busy_states: set[str], host: str | None) -> Node:
    node = Node("state", state.state_id, row=state)
    children = list({c.state_id: c for c in _copies(org, host).where(
        State.parent_state_id == state.state_id)}.values())
    users = Instance.select().where((Instance.org == org) & (Instance.state_id == state.state_id)
                                    & (Instance.status.in_(["starting", "active"])))
    users = list(users if host is None else users.where(Instance.host_id == host))
    if state.state_id in busy_states:
        node.blocked = "active_tasks"
    elsewhere_instances, elsewhere_children = sharing.dependents_elsewhere(org, state.state_id)
    if elsewhere_instances or elsewhere_children:  # another org's clones or states need our copy
        node.blocked = node.blocked or "used_by_shared_orgs"
    if not recurse:
        if children or users:
            node.blocked = node.blocked or "has_descendants"
        return node
    node.children = ([_instance_node(ctx, i, force) for i in users] +
                     [_state_node(ctx, org, c, recurse, force, busy_states, host) for c in children])
    if not node.blocked and any(child.any_blocked() for child in node.children):
        node.blocked = "blocked_by_descendant"
    return node


def states_in_use(org: str) -> set[str]:
    """States the org's live jobs (and those of orgs it shares with) read or build."""
    orgs = [org, *sharing.grantees(org)]
    live = (Task.select(Task.input_id, Task.output_state_id).join(PrepareJob)
            .where(PrepareJob.org.in_(orgs) & (PrepareJob.status.not_in(list(TERMINAL_STATUSES)))))
    used: set[str] = set()
    for task in live:
        used.update(x for x in (task.input_id, task.output_state_id) if x)
    return used


def delete_state(ctx: AppContext, org: str, state_id: str, *, recurse: bool, force: bool,
                 dry_run: bool, only_this_host: bool = False) -> dict:
    """Delete a state from every host (the API), or only this host's copy (cache eviction).

    Another host's copy loses its row here; that host's reconciler then removes the snapshot
    nobody owns any more, as it does for any orphan."""
    host = ctx.host if only_this_host else None
    state = _copies(org, host).where(State.state_id == state_id).first()
    if state is None:
        raise NotFound(f"state {state_id} not found")
    node = _state_node(ctx, org, state, recurse, force, states_in_use(org), host)
    if result(node, dry_run)["outcome"] == "deleted":
        _delete_bottom_up(ctx, org, node, host)
    return result(node, dry_run)


def _delete_bottom_up(ctx: AppContext, org: str, node: Node, host: str | None) -> bool:
    """Children first; a state whose subtree still has an instance being torn down stays (the
    instance is the reconciler's now; deleting the state again after it is gone removes it)."""
    done = all([_delete_bottom_up(ctx, org, child, host) for child in node.children])  # noqa: C419 (every child)
    if node.kind == "instance":
        return _tear_down(ctx, node)
    if not done:
        return False
    from appliance.orchestrator.warm_pool import emptied_and_held
    with emptied_and_held(ctx, org, node.id, host):  # pooled clones belong to nobody and must not pin the state
        if _copies(org, ctx.host).where(State.state_id == node.id).exists():
            ctx.store.destroy_state(org, node.id)
        doomed = _copies(org, host).where(State.state_id == node.id).select(State.id)
        State.delete().where(State.id.in_(doomed)).execute()
    return True


# -- jobs ------------------------------------------------------------------------------------
def request_cancel(job: PrepareJob) -> bool:
    """Ask a job to stop; returns False when it had already finished."""
    if job.status in TERMINAL_STATUSES:
        return False
    PrepareJob.update(cancel_requested=True).where(PrepareJob.job_id == job.job_id).execute()
    if job.status == "queued":
        # Nobody runs it yet: finish it here. A worker that picks it up later sees the status.
        with write_transaction(PrepareJob._meta.database):
            updated = PrepareJob.update(status="cancelled", finished_at=utcnow()).where(
                (PrepareJob.job_id == job.job_id) & (PrepareJob.status == "queued")).execute()
            if updated:
                counters.job_finished("cancelled")
        if updated:
            Task.update(status="cancelled").where((Task.job == job) & (Task.status == "queued")).execute()
            append_event(job.job_id, "status", status="cancelled")
    return True


def delete_job(ctx: AppContext, org: str, job_id: str, *, force: bool, dry_run: bool,
               wait_seconds: float = 30.0) -> dict:
    job = PrepareJob.get_or_none((PrepareJob.org == org) & (PrepareJob.job_id == job_id))
    if job is None:
        raise NotFound(f"job {job_id} not found")
    node = Node("job", job.job_id)
    if job.status not in TERMINAL_STATUSES and not force:
        node.blocked = "active_tasks"
    answer = result(node, dry_run)
    if answer["outcome"] != "deleted":
        return answer
    if job.status not in TERMINAL_STATUSES:
        request_cancel(job)
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            job = PrepareJob.get_by_id(job_id)
            if job.status in TERMINAL_STATUSES:
                break
            time.sleep(0.2)
    job.delete_instance(recursive=True)
    return answer
