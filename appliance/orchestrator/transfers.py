"""Exports and imports as jobs: admission (which host, is there anything to do), the queue
entry, and the reconciler's repairs. Admission reads the Control DB and the object store only
(manifests, to refuse an untrusted import before anything is queued); the streams run on a
worker of the chosen host (``appliance.transfer.jobs``), never in the API process.

- An export goes to an up host holding the state (this one first). A state already exported
  (with a signed manifest) answers its finished transfer at once; an export already queued or
  running answers that one.
- An import goes to the up host holding the longest prefix of the state's chain (placement), so
  it receives the fewest streams. A state the org already has answers a finished transfer; an
  import already queued or running answers that one.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import secrets
from collections.abc import Iterator

from redis.exceptions import LockError

from appliance.context import AppContext
from appliance.control.db import write_transaction
from appliance.control.models import State, Transfer, utcnow
from appliance.errors import Conflict, NotFound
from appliance.orchestrator import hosts
from appliance.orchestrator.placement import place
from appliance.orchestrator.queue import enqueue_transfer, is_known_to_redis
from appliance.transfer.streams import manifest_chain, read_manifest

log = logging.getLogger(__name__)
ACTIVE = ("queued", "running")


def request_export(ctx: AppContext, org: str, state_id: str, created_by: str | None) -> tuple[Transfer, bool]:
    """The transfer that exports the org's state, and whether it is new work (queued now or
    earlier) rather than an export already done."""
    holders = sorted({r.host for r in State.select(State.host).where(
        (State.org == org) & (State.state_id == state_id))})
    if not holders:
        raise NotFound(f"state {state_id} not found")
    with _admission(ctx, org, state_id, "export"):
        return _admit_export(ctx, org, state_id, holders, created_by)


def _admit_export(ctx: AppContext, org: str, state_id: str, holders: list[str],
                  created_by: str | None) -> tuple[Transfer, bool]:
    active = _active(org, state_id, "export")
    if active is not None:
        return active, True
    manifest = read_manifest(ctx.objects, org, state_id)
    if manifest is not None and manifest.signature is not None:
        done = (Transfer.select().where((Transfer.org == org) & (Transfer.state_id == state_id)
                                        & (Transfer.kind == "export") & (Transfer.status == "succeeded"))
                .order_by(Transfer.finished_at.desc()).first())
        if done is not None:
            return done, False
        return _finished(org, "export", state_id, holders[0], created_by, manifest.to_dict(),
                         manifest.uncompressed_bytes), False
    up = set(hosts.up_host_ids(ctx.settings)) or {ctx.host}  # nothing registered yet: a lone appliance
    candidates = [h for h in holders if h in up]
    if not candidates:
        raise Conflict(f"state {state_id} is held by host(s) {', '.join(holders)}, which take no work now: "
                       "export it when one of them is back", {"hosts": holders})
    host = ctx.host if ctx.host in candidates else candidates[0]
    return _queue(ctx, org, "export", state_id, host, created_by), True


def request_import(ctx: AppContext, org: str, state_id: str, created_by: str | None) -> tuple[Transfer, bool]:
    """The transfer that imports the org's exported state; (a finished one, False) when the org
    has it already. Refuses, before anything is queued, a chain whose manifests are missing
    (``not_found``) or not trusted (``unsigned_manifest``, ``untrusted_signature``,
    ``bad_signature``)."""
    held = State.select(State.host).where((State.org == org) & (State.state_id == state_id)).first()
    if held is not None:
        manifest = read_manifest(ctx.objects, org, state_id)
        return _finished(org, "import", state_id, held.host, created_by,
                         manifest.to_dict() if manifest is not None else None, 0), False
    with _admission(ctx, org, state_id, "import"):
        return _admit_import(ctx, org, state_id, created_by)


def _admit_import(ctx: AppContext, org: str, state_id: str, created_by: str | None) -> tuple[Transfer, bool]:
    active = _active(org, state_id, "import")
    if active is not None:
        return active, True
    chain = manifest_chain(ctx.objects, ctx.settings, org, state_id, lambda s: State.select().where(
        (State.org == org) & (State.state_id == s)).exists())
    present = [m.parent_state_id for m in chain[-1:] if m.parent_state_id is not None]  # the ancestor held
    placement = place(ctx, org, present + [m.state_id for m in reversed(chain)])
    return _queue(ctx, org, "import", state_id, placement.host_id, created_by), True


@contextlib.contextmanager
def _admission(ctx: AppContext, org: str, state_id: str, kind: str) -> Iterator[None]:
    """One admission at a time per (org, state, kind), on every API process: two requests at once
    must not queue two transfers that stream into the same upload."""
    lock = ctx.redis.lock(f"sqlrs:lock:transfer:{kind}:{org}:{state_id}", timeout=60, blocking_timeout=30)
    if not lock.acquire():
        raise Conflict(f"another {kind} of state {state_id} is being admitted right now; retry in a moment",
                       {"state_id": state_id})
    try:
        yield
    finally:
        with contextlib.suppress(LockError):  # expired meanwhile: nothing of ours to release
            lock.release()


def _active(org: str, state_id: str, kind: str) -> Transfer | None:
    return Transfer.select().where((Transfer.org == org) & (Transfer.state_id == state_id)
                                   & (Transfer.kind == kind) & Transfer.status.in_(ACTIVE)).first()


def _queue(ctx: AppContext, org: str, kind: str, state_id: str, host: str, created_by: str | None) -> Transfer:
    with write_transaction(ctx.db):
        transfer = Transfer.create(transfer_id=secrets.token_hex(16), org=org, kind=kind, state_id=state_id,
                                   host=host, status="queued", created_by=created_by)
    try:
        enqueue_transfer(ctx.redis, host, transfer.transfer_id)
    except Exception as exc:  # Redis down: the row is safe; the reconciler enqueues it
        log.warning("could not enqueue transfer %s now (%s); the reconciler will", transfer.transfer_id, exc)
    return transfer


def _finished(org: str, kind: str, state_id: str, host: str, created_by: str | None, manifest: dict | None,
              nbytes: int) -> Transfer:
    """A transfer with nothing left to do, recorded so that it can be answered and polled like any."""
    now = utcnow()
    return Transfer.create(transfer_id=secrets.token_hex(16), org=org, kind=kind, state_id=state_id, host=host,
                           status="succeeded", bytes_done=nbytes, bytes_total=nbytes, created_by=created_by,
                           manifest_json=json.dumps(manifest) if manifest is not None else None,
                           created_at=now, started_at=now, finished_at=now)


# -- the reconciler's part -----------------------------------------------------------------------
def fail_lost_transfers(ctx: AppContext) -> list[str]:
    """Running transfers whose worker went silent, and queued ones whose host is gone: failed,
    so that none stays ``running`` (or ``queued``) for ever; they may be requested again."""
    now = utcnow()
    lost_before = now - dt.timedelta(seconds=ctx.settings.job_lost_after_seconds)
    failed = []
    for transfer in Transfer.select().where((Transfer.status == "running") & (Transfer.heartbeat_at < lost_before)):
        if _fail(ctx, transfer, "running", "worker_lost",
                 f"the worker running this transfer ({transfer.worker}) stopped responding; request it again"):
            failed.append(transfer.transfer_id)
    down_before = now - dt.timedelta(seconds=ctx.settings.host_down_after_seconds)
    up = set(hosts.up_host_ids(ctx.settings))
    for transfer in Transfer.select().where((Transfer.status == "queued") & (Transfer.created_at < down_before)):
        if up and transfer.host not in up and _fail(
                ctx, transfer, "queued", "host_unavailable",
                f"host {transfer.host} went down or was drained before it ran this transfer; request it again"):
            failed.append(transfer.transfer_id)
    for transfer_id in failed:
        log.warning("transfer %s failed: its worker or host was lost", transfer_id)
    return failed


def _fail(ctx: AppContext, transfer: Transfer, status: str, code: str, message: str) -> bool:
    with write_transaction(ctx.db):
        return bool(Transfer.update(status="failed", finished_at=utcnow(), error_code=code, error_message=message)
                    .where((Transfer.transfer_id == transfer.transfer_id) & (Transfer.status == status)).execute())


def requeue_forgotten_transfers(ctx: AppContext) -> list[str]:
    """Queued transfers Redis lost (a restart) go back on their host's queue."""
    older = utcnow() - dt.timedelta(seconds=ctx.settings.job_lost_after_seconds)
    requeued = []
    for transfer in Transfer.select().where((Transfer.status == "queued") & (Transfer.created_at < older)):
        if not is_known_to_redis(ctx.redis, transfer.transfer_id):
            enqueue_transfer(ctx.redis, transfer.host, transfer.transfer_id)
            requeued.append(transfer.transfer_id)
    return requeued
