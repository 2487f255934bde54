"""The host registry: which hosts exist, what they hold, and which may take new work.

Each host's reconciler writes its own row every pass (the heartbeat). A host is *up* while its
heartbeat is fresh and nobody drained it; placement only sends work to up hosts. Draining is
how an operator takes a host out before maintenance: its instances keep running, its queued
jobs move elsewhere, and nothing new lands on it.
"""
from __future__ import annotations

import datetime as dt

from appliance.context import AppContext
from appliance.control.db import write_transaction
from appliance.control.models import BaseImage, Host, Instance, Volume, utcnow
from appliance.errors import NotFound
from appliance.settings import Settings


def register(ctx: AppContext) -> Host:
    """Write (or refresh) this host's row; rows from before the registry become this host's."""
    with write_transaction(ctx.db):
        for model in (BaseImage, Volume, Instance):
            model.update(host_id=ctx.host).where(model.host_id == "").execute()
        return heartbeat(ctx, started=True)


def heartbeat(ctx: AppContext, *, started: bool = False) -> Host:
    total, free = ctx.store.disk_space()
    now = utcnow()
    fields = {"storage_driver": ctx.store.driver.name, "runtime": ctx.settings.runtime,
                  "store_total_bytes": total, "store_free_bytes": free,
                  "port_min": ctx.settings.port_min, "port_max": ctx.settings.port_max,
                  "instance_host": ctx.settings.instance_host, "nomad_node_id": ctx.settings.nomad_node_id,
                  "heartbeat_at": now}
    if started:
        fields["started_at"] = now
    if not Host.update(**fields).where(Host.host_id == ctx.host).execute():
        Host.insert(host_id=ctx.host, **{"started_at": now, **fields}).on_conflict_ignore().execute()
    return Host.get_by_id(ctx.host)


def is_up(host: Host, settings: Settings) -> bool:
    fresh = utcnow() - dt.timedelta(seconds=settings.host_down_after_seconds)
    return host.drained_at is None and host.heartbeat_at >= fresh


def up_host_ids(settings: Settings) -> list[str]:
    return sorted(h.host_id for h in Host.select() if is_up(h, settings))


def all_hosts() -> list[Host]:
    return list(Host.select().order_by(Host.host_id))


def set_drained(host_id: str, drained: bool, reason: str | None = None) -> Host:
    host = Host.get_or_none(Host.host_id == host_id)
    if host is None:
        known = ", ".join(h.host_id for h in all_hosts()) or "none"
        raise NotFound(f"host {host_id!r} is not registered (known hosts: {known})")
    host.drained_at, host.drained_reason = (utcnow(), reason) if drained else (None, None)
    host.save()
    return host


def describe(host: Host, settings: Settings) -> dict:
    age = (utcnow() - host.heartbeat_at).total_seconds()
    status = "drained" if host.drained_at else ("up" if is_up(host, settings) else "down")
    return {"host_id": host.host_id, "status": status, "heartbeat_age_seconds": round(age, 1),
            "storage_driver": host.storage_driver, "runtime": host.runtime,
            "store_free_bytes": host.store_free_bytes, "store_total_bytes": host.store_total_bytes,
            "ports": f"{host.port_min}-{host.port_max}", "instance_host": host.instance_host,
            "nomad_node_id": host.nomad_node_id, "drained_reason": host.drained_reason}
