"""The bounded state cache: accounting, pressure, and LRU eviction of unreferenced leaves.

Usage is what the Control DB says the states occupy (per host, per org); pressure also
looks at the real free space on the store, because clones and instances grow too. Eviction
never touches a state that has a child, an instance, or a job in flight, nor one younger
than the minimum age, and it goes through the ordinary deletion path.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass, field

import peewee as pw

from ..context import AppContext
from ..control.models import CacheEviction, Instance, State, utcnow
from ..errors import CacheFullUnreclaimable
from ..engine.instances import DELETE_REQUESTED
from . import deletion

log = logging.getLogger(__name__)


@dataclass
class Capacity:
    usage_bytes: int
    configured_max_bytes: int | None
    effective_max_bytes: int
    store_total_bytes: int
    store_free_bytes: int
    reserve_bytes: int
    high_watermark: float
    low_watermark: float
    pressure_reasons: list[str] = field(default_factory=list)

    @property
    def under_pressure(self) -> bool:
        return bool(self.pressure_reasons)

    def relieved(self) -> bool:
        return (self.usage_bytes <= self.low_watermark * self.effective_max_bytes
                and self.store_free_bytes >= self.reserve_bytes)


def _state_bytes(ctx: AppContext, org: str | None = None) -> int:
    query = State.select(pw.fn.COALESCE(pw.fn.SUM(State.size_bytes), 0)).where(State.host == ctx.host)
    if org is not None:
        query = query.where(State.org == org)
    return int(query.scalar())


def capacity(ctx: AppContext) -> Capacity:
    settings = ctx.settings
    fs = os.statvfs(ctx.store.root)
    total, free = fs.f_blocks * fs.f_frsize, fs.f_bavail * fs.f_frsize
    effective = settings.cache_max_bytes or max(total - settings.cache_reserve_bytes, 1)
    cap = Capacity(_state_bytes(ctx), settings.cache_max_bytes, effective, total, free,
                   settings.cache_reserve_bytes, settings.cache_high_watermark, settings.cache_low_watermark)
    if cap.usage_bytes > cap.high_watermark * effective:
        cap.pressure_reasons.append("usage_above_high_watermark")
    if free < settings.cache_reserve_bytes:
        cap.pressure_reasons.append("physical_free_below_reserve")
    return cap


def eviction_candidates(ctx: AppContext) -> tuple[list[State], int]:
    """Evictable leaves, least recently used first, and how many leaves are blocked."""
    min_age = utcnow() - dt.timedelta(seconds=ctx.settings.cache_min_state_age_seconds)
    # A child copy on another host does not need ours: each host's snapshots stand alone.
    has_child = State.select(State.parent_state_id).where(State.parent_state_id.is_null(False)
                                                          & (State.host == ctx.host))
    leaves = list(State.select().where((State.host == ctx.host) & State.state_id.not_in(has_child))
                  .order_by(State.last_used_at, State.created_at))
    in_use = {(i.state_org or i.org, i.state_id) for i in Instance.select(Instance.org, Instance.state_org, Instance.state_id)
              .where(Instance.status.in_(["starting", "active", "deleting", DELETE_REQUESTED])
                     & (Instance.host_id == ctx.host))}
    busy: set[tuple[str, str]] = set()
    for org in {leaf.org for leaf in leaves}:
        busy |= {(org, s) for s in deletion.states_in_use(org)}
    candidates, blocked = [], 0
    for leaf in leaves:
        if ((leaf.org, leaf.state_id) in in_use or (leaf.org, leaf.state_id) in busy
                or leaf.created_at > min_age):
            blocked += 1
        else:
            candidates.append(leaf)
    return candidates, blocked


def reclaimable_bytes(ctx: AppContext) -> int:
    candidates, _ = eviction_candidates(ctx)
    return sum(c.size_bytes for c in candidates)


def evict(ctx: AppContext, trigger: str) -> CacheEviction | None:
    """Evict LRU leaves until the pressure is relieved; returns the pass, or None if none was needed."""
    before = capacity(ctx)
    if not before.under_pressure:
        return None
    evicted: list[dict] = []
    blocked = 0
    current = before
    while not current.relieved():
        candidates, blocked = eviction_candidates(ctx)
        if not candidates:
            break
        victim = candidates[0]
        answer = deletion.delete_state(ctx, victim.org, victim.state_id, recurse=False, force=False,
                                       dry_run=False, only_this_host=True)
        if answer["outcome"] != "deleted":  # raced with a new user of it: leave it
            blocked += 1
            break
        evicted.append({"org": victim.org, "state_id": victim.state_id, "size_bytes": victim.size_bytes})
        current = capacity(ctx)
    record = CacheEviction.create(
        trigger=trigger, evicted_count=len(evicted), freed_bytes=sum(e["size_bytes"] for e in evicted),
        blocked_count=blocked, usage_bytes_before=before.usage_bytes, usage_bytes_after=current.usage_bytes,
        evicted_json=json.dumps(evicted))
    log.info("cache eviction (%s): %d state(s), %d bytes freed, %d blocked", trigger, len(evicted),
             record.freed_bytes, blocked)
    return record


def ensure_room(ctx: AppContext) -> None:
    """Before a build: evict if needed; fail with the reasons if the pressure cannot be relieved."""
    if not capacity(ctx).under_pressure:
        return
    evict(ctx, trigger="build")
    after = capacity(ctx)
    if after.store_free_bytes < after.reserve_bytes or after.usage_bytes >= after.effective_max_bytes:
        _, blocked = eviction_candidates(ctx)
        raise CacheFullUnreclaimable(
            "the state cache is full and nothing can be evicted (every leaf is in use, referenced or too young)",
            {"reasons": after.pressure_reasons, "usage_bytes": after.usage_bytes,
             "effective_max_bytes": after.effective_max_bytes, "store_free_bytes": after.store_free_bytes,
             "reserve_bytes": after.reserve_bytes, "blocked_count": blocked})


def status(ctx: AppContext, org: str) -> dict:
    cap = capacity(ctx)
    candidates, blocked = eviction_candidates(ctx)
    last = CacheEviction.select().order_by(CacheEviction.completed_at.desc()).first()
    return {
        "usage_bytes": cap.usage_bytes, "org_usage_bytes": _state_bytes(ctx, org),
        "configured_max_bytes": cap.configured_max_bytes, "effective_max_bytes": cap.effective_max_bytes,
        "reserve_bytes": cap.reserve_bytes, "high_watermark": cap.high_watermark,
        "low_watermark": cap.low_watermark, "min_state_age_seconds": ctx.settings.cache_min_state_age_seconds,
        "store_total_bytes": cap.store_total_bytes, "store_free_bytes": cap.store_free_bytes,
        "state_count": State.select().where((State.host == ctx.host) & (State.org == org)).count(),
        "reclaimable_bytes": sum(c.size_bytes for c in candidates), "blocked_count": blocked,
        "pressure_reasons": cap.pressure_reasons,
        "last_eviction": None if last is None else {
            "completed_at": last.completed_at.isoformat(timespec="milliseconds") + "Z", "trigger": last.trigger,
            "evicted_count": last.evicted_count, "freed_bytes": last.freed_bytes,
            "blocked_count": last.blocked_count, "usage_bytes_before": last.usage_bytes_before,
            "usage_bytes_after": last.usage_bytes_after},
    }
