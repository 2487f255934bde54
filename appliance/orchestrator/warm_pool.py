"""The warm pool: running clones of hot states, waiting to be bound by a cache-hit prepare.

A pooled instance has Postgres up but no password (its role cannot log in over TCP) and no
owner; binding it costs one password change instead of a clone and a Postgres start. Which
states are hot comes from recent demand (instances handed out within the hot window, most first), the
size per state from configuration. Pooled instances belong to nobody until bound, so they
count against no quota, and they never block eviction: deleting a state empties its pool.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

import peewee as pw

from appliance import instances
from appliance.context import AppContext
from appliance.control.models import Instance, PrepareJob, State, utcnow

log = logging.getLogger(__name__)
POOLED = "pooled"
BINDING = "binding"  # claimed by a prepare, credentials being set
BOUND_MESSAGE = "warm pool: bound a running clone"  # the job log line clients and benchmarks look for
BIND_CONNECTIONS_SECONDS = 0.25
POOL_LOCK_SECONDS = 120


def enabled(ctx: AppContext) -> bool:
    return ctx.settings.warm_pool_size > 0


def hot_states(ctx: AppContext) -> list[State]:
    """States that prepares handed out as instances within the hot window, most demanded first.
    Demand is read from the jobs, not the instances: a client that deletes its instance a moment
    after using it (the usual CI pattern) has still asked for that state."""
    since = utcnow() - dt.timedelta(seconds=ctx.settings.warm_pool_hot_window_seconds)
    count = pw.fn.COUNT(PrepareJob.job_id)
    demand = (PrepareJob.select(PrepareJob.org, PrepareJob.result_state_id, count.alias("n"))
              .where((PrepareJob.finished_at >= since) & PrepareJob.result_instance_id.is_null(False)
                     & (PrepareJob.host_id == ctx.host))
              .group_by(PrepareJob.org, PrepareJob.result_state_id)
              .order_by(count.desc())
              .limit(ctx.settings.warm_pool_max_states))
    hot = []
    for row in demand:
        state = State.get_or_none((State.org == row.org) & (State.state_id == row.result_state_id)
                                  & (State.host == ctx.host))
        if state is not None:
            hot.append(state)
    return hot


def pooled(org: str, state_id: str, host: str | None) -> list[Instance]:
    """The state's pooled instances on one host (or on every host, for ``None``)."""
    query = Instance.select().where((Instance.org == org) & (Instance.state_id == state_id)
                                    & (Instance.status == POOLED))
    if host is not None:
        query = query.where(Instance.host_id == host)
    return list(query.order_by(Instance.created_at))


def take(ctx: AppContext, org: str, state_id: str, *, job_id: str) -> Instance | None:
    """Mark one pooled instance of the state ``binding`` for ``job_id``; None when the pool is
    empty. The caller binds it (``instances.PendingBind``) or destroys it."""
    for candidate in pooled(org, state_id, ctx.host):
        taken = Instance.update(status=BINDING, job_id=job_id).where(
            (Instance.instance_id == candidate.instance_id) & (Instance.status == POOLED)).execute()
        if taken:
            candidate.status, candidate.job_id = BINDING, job_id
            return candidate
        # another prepare was faster: try the next one
    return None


def claim(ctx: AppContext, org: str, state_id: str, *, job_id: str, ttl_seconds: int,
          name: str | None) -> Instance | None:
    """Bind a pooled instance of the state to a job, or None when the pool is empty."""
    while (candidate := take(ctx, org, state_id, job_id=job_id)) is not None:
        try:
            return instances.bind_pooled(ctx, candidate, job_id=job_id, ttl_seconds=ttl_seconds, name=name)
        except Exception as exc:  # a broken pooled clone must not fail the prepare: drop it, clone anew
            log.warning("pooled instance %s could not be bound (%s); discarding it", candidate.instance_id, exc)
            instances.destroy_instance(ctx, candidate)
    return None


def refill(ctx: AppContext) -> int:
    """Top every hot state's pool up to its size and empty the pools of states gone cold."""
    if not enabled(ctx):
        return 0
    created = 0
    hot = hot_states(ctx)
    for state in hot:
        lock = pool_lock(ctx, ctx.host, state.org, state.state_id)
        if not lock.acquire(blocking=False):
            continue  # someone else is filling (or deleting) this one
        try:
            if not State.select().where((State.org == state.org) & (State.state_id == state.state_id)
                                        & (State.host == ctx.host)).exists():
                continue  # deleted since the hot list was read
            for _ in range(ctx.settings.warm_pool_size - len(pooled(state.org, state.state_id, ctx.host))):
                instances.create_instance(ctx, org=state.org, state_id=state.state_id, image_id=state.image_id,
                                          job_id=None, ttl_seconds=0, name=None, pooled=True)
                created += 1
        finally:
            lock.release()
    hot_keys = {(s.org, s.state_id) for s in hot}
    for instance in Instance.select().where((Instance.status == POOLED) & (Instance.host_id == ctx.host)):
        if (instance.org, instance.state_id) not in hot_keys:
            instances.destroy_instance(ctx, instance)
    return created


def hold_bind_connections(ctx: AppContext) -> None:
    """Keep a connection open to each of this host's pooled clones, so a bind at admission
    pays for its ALTER ROLE only (the API runs this every ``BIND_CONNECTIONS_SECONDS``)."""
    waiting = Instance.select().where((Instance.status == POOLED) & (Instance.host_id == ctx.host))
    ctx.runtime.keep_bind_connections([instances.endpoint_of(ctx, i) for i in waiting])


async def hold_bind_connections_forever(ctx: AppContext) -> None:
    try:
        while True:
            try:
                await asyncio.to_thread(hold_bind_connections, ctx)
            except Exception as exc:  # the Control DB or a clone away for a moment: binds just connect
                log.debug("could not refresh the warm bind connections: %s", exc)
            await asyncio.sleep(BIND_CONNECTIONS_SECONDS)
    finally:
        await asyncio.to_thread(ctx.runtime.keep_bind_connections, [])


def pool_lock(ctx: AppContext, host: str, org: str, state_id: str):
    """Held while a host's pool of a state is filled, and while the state is deleted, so a
    refill that read the hot list a moment earlier cannot clone a state being removed."""
    return ctx.redis.lock(f"sqlrs:lock:pool:{host}:{org}:{state_id}", timeout=POOL_LOCK_SECONDS)


@contextlib.contextmanager
def emptied_and_held(ctx: AppContext, org: str, state_id: str, host: str | None):
    """Empty the state's pools (on one host, or every host holding a copy) and keep them from
    refilling until the block ends: the caller removes the state in it."""
    hosts = [host] if host is not None else sorted(
        {row.host for row in State.select(State.host).where((State.org == org) & (State.state_id == state_id))})
    with contextlib.ExitStack() as held:
        for each in hosts:
            lock = pool_lock(ctx, each, org, state_id)
            if lock.acquire(blocking=True, blocking_timeout=POOL_LOCK_SECONDS):
                held.callback(lock.release)
            else:  # a refill stuck for longer than its lock lives: go on, the reconciler tidies up
                log.warning("pool of state %s on %s stayed locked; deleting anyway", state_id, each)
        for instance in pooled(org, state_id, host):
            instances.destroy_instance(ctx, instance)
        yield
