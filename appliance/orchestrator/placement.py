"""Placement: which host runs a prepare, and whether it imports a state instead of building it.

A job goes to the up host holding the longest cached prefix of its chain (so an exact hit
lands where the state is, and its instance with it); ties go to the host with the fewest
jobs in flight, then to the host that admitted the request. A host that is down or drained is
never chosen, whatever it holds: the job rebuilds elsewhere, or imports what that host once
exported when the stream is cheaper to fetch than the steps were to build.
"""
from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import peewee as pw

from appliance.context import AppContext
from appliance.control.models import PrepareJob, State
from appliance.control.sharing import visible_copies
from appliance.orchestrator import hosts

IMPORT_OVERHEAD_SECONDS = 0.5  # per state: manifest read, receive set-up, row write


@dataclass(frozen=True)
class Placement:
    host_id: str
    cached_steps: int
    reason: str


def cached_depth(held: set[str], state_ids: list[str]) -> int:
    depth = 0
    while depth < len(state_ids) and state_ids[depth] in held:
        depth += 1
    return depth


def held_by_host(org: str, state_ids: list[str], host_ids: list[str] | None = None) -> dict[str, set[str]]:
    """Per host, the chain's states ``org`` may use there: its own copies and those shared with it."""
    held: dict[str, set[str]] = {}
    for host, state_id in visible_copies(org, state_ids):
        if host_ids is None or host in host_ids:
            held.setdefault(host, set()).add(state_id)
    return held


def _jobs_in_flight(host_ids: list[str]) -> dict[str, int]:
    rows = (PrepareJob.select(PrepareJob.host_id, pw.fn.COUNT(PrepareJob.job_id).alias("n"))
            .where(PrepareJob.host_id.in_(host_ids) & PrepareJob.status.in_(["queued", "running"]))
            .group_by(PrepareJob.host_id))
    return {row.host_id: row.n for row in rows}


def place(ctx: AppContext, org: str, state_ids: list[str], *, exclude: AbstractSet[str] = frozenset()) -> Placement:
    up = [h for h in hosts.up_host_ids(ctx.settings) if h not in exclude]
    candidates = up or [ctx.host]  # nothing registered yet (a lone appliance starting): ourselves
    held = held_by_host(org, state_ids)
    load = _jobs_in_flight(candidates)
    depth = {h: cached_depth(held.get(h, set()), state_ids) for h in candidates}
    best = min(candidates, key=lambda h: (-depth[h], load.get(h, 0), h != ctx.host, h))
    reason = f"host {best}: {depth[best]} of {len(state_ids)} step(s) cached there"
    elsewhere = {h: cached_depth(s, state_ids) for h, s in held.items() if h not in candidates}
    deeper = sorted(h for h, d in elsewhere.items() if d > depth[best])
    if deeper:
        reason += f"; {', '.join(deeper)} hold(s) more but take no work now"
    return Placement(best, depth[best], reason)


@dataclass(frozen=True)
class ImportChoice:
    state_id: str  # the deepest state to import; its missing ancestors come with it
    steps: int
    import_seconds: float
    build_seconds: float | None  # None: never measured (the state was itself imported)

    @property
    def cheaper(self) -> bool:
        return self.build_seconds is None or self.import_seconds < self.build_seconds


def import_choice(ctx: AppContext, org: str, missing: list[str]) -> ImportChoice | None:
    """Among the states this host lacks (in chain order), the deepest run of exported ones, and
    what fetching their streams would cost against building the steps again (``cheaper``)."""
    rows = list(State.select().where((State.org == org) & State.state_id.in_(missing)))
    exported = {r.state_id for r in rows if r.exported_at is not None}
    run = cached_depth(exported, missing)  # import needs every ancestor exported or already here
    if run == 0:
        return None
    chain = missing[:run]
    size = {r.state_id: r.size_bytes for r in rows}
    built = {r.state_id: r.build_seconds for r in rows if r.build_seconds is not None}
    import_seconds = sum(size[s] / ctx.settings.import_bytes_per_second + IMPORT_OVERHEAD_SECONDS for s in chain)
    build_seconds = sum(built[s] for s in chain) if all(s in built for s in chain) else None
    return ImportChoice(chain[-1], run, import_seconds, build_seconds)
