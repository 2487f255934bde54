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
from dataclasses import dataclass, field

import peewee as pw

from appliance.context import AppContext
from appliance.control.models import BaseImage, CacheEviction, Instance, State, utcnow
from appliance.errors import CacheFullUnreclaimable
from appliance.instances import DELETE_REQUESTED
from appliance.orchestrator import deletion

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

    def relieved(self, room_for: int = 0) -> bool:
        return (self.usage_bytes <= self.low_watermark * self.effective_max_bytes
                and self.store_free_bytes >= self.reserve_bytes and not self.would_pass_cap(room_for))

    def would_pass_cap(self, next_bytes: int) -> bool:
        """Whether states of ``next_bytes`` more would take usage past the cap (with nothing
        estimated, a cache already at its cap has no room either)."""
        return self.usage_bytes + max(next_bytes, 1) > self.effective_max_bytes


def _state_bytes(ctx: AppContext, org: str | None = None) -> int:
    query = State.select(pw.fn.COALESCE(pw.fn.SUM(State.size_bytes), 0)).where(State.host == ctx.host)
    if org is not None:
        query = query.where(State.org == org)
    return int(query.scalar())


def capacity(ctx: AppContext) -> Capacity:
    settings = ctx.settings
    total, free = ctx.store.disk_space()
    effective = settings.cache_max_bytes or max(total - settings.cache_reserve_bytes, 1)
    cap = Capacity(_state_bytes(ctx), settings.cache_max_bytes, effective, total, free,
                   settings.cache_reserve_bytes, settings.cache_high_watermark, settings.cache_low_watermark)
    if cap.usage_bytes > cap.high_watermark * effective:
        cap.pressure_reasons.append("usage_above_high_watermark")
    if free < settings.cache_reserve_bytes:
        cap.pressure_reasons.append("physical_free_below_reserve")
    return cap


def eviction_queue(ctx: AppContext) -> list[tuple[State, str | None]]:
    """This host's leaves, least recently used first, each with what keeps it from eviction
    (``in_use``: an instance runs on it; ``job``: a job builds on it; ``too_young``: younger than
    ``cache_min_state_age_seconds``) or None: the eviction order, as a pass would walk it."""
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

    def blocker(leaf: State) -> str | None:
        if (leaf.org, leaf.state_id) in in_use:
            return "in_use"
        if (leaf.org, leaf.state_id) in busy:
            return "job"
        return "too_young" if leaf.created_at > min_age else None
    return [(leaf, blocker(leaf)) for leaf in leaves]


def eviction_candidates(ctx: AppContext) -> tuple[list[State], int]:
    """Evictable leaves, least recently used first, and how many leaves are blocked."""
    queue = eviction_queue(ctx)
    return [leaf for leaf, blocked in queue if blocked is None], sum(1 for _, blocked in queue if blocked)


def reclaimable_bytes(ctx: AppContext) -> int:
    candidates, _ = eviction_candidates(ctx)
    return sum(c.size_bytes for c in candidates)


def evict(ctx: AppContext, trigger: str, room_for: int = 0) -> CacheEviction | None:
    """Evict LRU leaves until the pressure is relieved (and, for a build, ``room_for`` more bytes
    fit under the cap); returns the pass, or None if none was needed or it is not recorded.

    A pass is recorded when it evicted something, or when it found the cache blocked in a way
    the last record does not already say: a cache that stays full and blocked writes one row, not
    one every reconciler pass."""
    before = capacity(ctx)
    if not before.under_pressure and not before.would_pass_cap(room_for):
        return None
    evicted: list[dict] = []
    blocked = 0
    current = before
    while not current.relieved(room_for):
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
    if not evicted and _already_recorded(blocked, current.usage_bytes):
        return None
    record = CacheEviction.create(
        trigger=trigger, evicted_count=len(evicted), freed_bytes=sum(e["size_bytes"] for e in evicted),
        blocked_count=blocked, usage_bytes_before=before.usage_bytes, usage_bytes_after=current.usage_bytes,
        evicted_json=json.dumps(evicted))
    log.info("cache eviction (%s): %d state(s), %d bytes freed, %d blocked", trigger, len(evicted),
             record.freed_bytes, blocked)
    return record


def _already_recorded(blocked: int, usage_bytes: int) -> bool:
    """The last pass recorded already says the cache is blocked just so (nothing evicted, as many
    leaves blocked, the same usage)."""
    last = CacheEviction.select().order_by(CacheEviction.completed_at.desc(), CacheEviction.id.desc()).first()
    return (last is not None and last.evicted_count == 0 and last.blocked_count == blocked
            and last.usage_bytes_after == usage_bytes)


def next_states_bytes(ctx: AppContext, org: str, input_kind: str, input_id: str, count: int = 1) -> int:
    """What ``count`` states built on this input will add to the cache's usage, estimated: each
    is a copy of its input (its size is the snapshot's, shared blocks included) plus what the step
    writes, which cannot be known before it runs; so the input's size each."""
    if input_kind == "state":
        size = (State.select(pw.fn.MAX(State.size_bytes))
                .where((State.state_id == input_id) & (State.host == ctx.host)).scalar())
    else:
        size = (BaseImage.select(pw.fn.MAX(BaseImage.size_bytes))
                .where((BaseImage.org == org) & (BaseImage.resolved_image_id == input_id)
                       & (BaseImage.host_id == ctx.host)).scalar())
    return int(size or 0) * count


def ensure_room(ctx: AppContext, next_bytes: int = 0) -> None:
    """Before a build of states estimated at ``next_bytes`` (``next_states_bytes``): evict if
    needed; fail with the reasons if the store stays short or they would take usage past the cap."""
    if not capacity(ctx).under_pressure and not capacity(ctx).would_pass_cap(next_bytes):
        return
    evict(ctx, trigger="build", room_for=next_bytes)
    after = capacity(ctx)
    if after.store_free_bytes < after.reserve_bytes or after.would_pass_cap(next_bytes):
        _, blocked = eviction_candidates(ctx)
        raise CacheFullUnreclaimable(
            "the state cache is full and nothing can be evicted (every leaf is in use, referenced or too young)",
            {"reasons": after.pressure_reasons or ["next_state_would_pass_cap"], "usage_bytes": after.usage_bytes,
             "next_state_bytes": next_bytes, "effective_max_bytes": after.effective_max_bytes,
             "store_free_bytes": after.store_free_bytes, "reserve_bytes": after.reserve_bytes,
             "blocked_count": blocked})


EVICTION_QUEUE_SHOWN = 20


def status(ctx: AppContext, org: str) -> dict:
    """The cache as ``org`` may see it: totals of the host, and the order its own leaves would go
    in (other orgs' states are counted, never named)."""
    cap = capacity(ctx)
    queue = eviction_queue(ctx)
    candidates = [leaf for leaf, blocked in queue if blocked is None]
    blocked = len(queue) - len(candidates)
    ours = [(leaf, why) for leaf, why in queue if leaf.org == org][:EVICTION_QUEUE_SHOWN]
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
        "eviction_queue": [{"state_id": leaf.state_id, "size_bytes": leaf.size_bytes,
                            "last_used_at": leaf.last_used_at.isoformat(timespec="milliseconds") + "Z",
                            "blocked_by": why} for leaf, why in ours],
        "last_eviction": None if last is None else {
            "completed_at": last.completed_at.isoformat(timespec="milliseconds") + "Z", "trigger": last.trigger,
            "evicted_count": last.evicted_count, "freed_bytes": last.freed_bytes,
            "blocked_count": last.blocked_count, "usage_bytes_before": last.usage_bytes_before,
            "usage_bytes_after": last.usage_bytes_after},
    }
