"""Snapshot streams: export a state into the object store, import it on another host or store.

Export pipes the driver's send command straight into a multipart upload (no temp file),
hashing on the way, then writes the manifest last. Import checks the whole chain's stream
format first (a store takes any driver's stream in a format it receives: copy and LVM both
write and read tar), imports missing ancestors oldest first, and verifies every stream's sha256
and size before the received state is published; only then is the ``State`` row inserted.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from typing import TYPE_CHECKING, BinaryIO, cast

import peewee as pw

from appliance.control import counters
from appliance.control.db import write_transaction
from appliance.control.models import State, utcnow
from appliance.errors import Conflict, InternalError, InvalidArgument, NotFound
from appliance.transfer.manifest import FORMAT_VERSION, Manifest

if TYPE_CHECKING:
    from appliance.context import AppContext
    from appliance.objectstore.store import ObjectStore

log = logging.getLogger(__name__)
_CHUNK = 1024 * 1024


def stream_key(org: str, state_id: str) -> str:
    return f"{org}/states/{state_id}/stream"


def manifest_key(org: str, state_id: str) -> str:
    return f"{org}/states/{state_id}/manifest.json"


def read_manifest(objects: ObjectStore, org: str, state_id: str) -> Manifest | None:
    """The state's manifest, or None when it was never (completely) exported."""
    key = manifest_key(org, state_id)
    try:
        with objects.open(key) as reader:
            return Manifest.from_json(reader.read(), key)
    except NotFound:
        return None


def is_exported(objects: ObjectStore, org: str, state_id: str) -> bool:
    return objects.exists(manifest_key(org, state_id))


class HashingReader:
    """Counts and hashes what is read through it; with an expectation, refuses a stream that
    differs, at the latest when it reaches its end (so a consumer that reads to EOF first
    cannot finish with bad data)."""

    def __init__(self, inner: BinaryIO, *, expect_sha256: str | None = None, expect_bytes: int | None = None,
                 state_id: str = "") -> None:
        self._inner, self._sha = inner, hashlib.sha256()
        self.bytes = 0
        self._expect_sha256, self._expect_bytes, self._state_id = expect_sha256, expect_bytes, state_id
        self.verified = False

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        if data:
            self._sha.update(data)
            self.bytes += len(data)
            if self._expect_bytes is not None and self.bytes > self._expect_bytes:
                raise self._mismatch()
        elif self._expect_sha256 is not None and not self.verified:
            if self.bytes != self._expect_bytes or self.sha256 != self._expect_sha256:
                raise self._mismatch()
            self.verified = True
        return data

    def drain(self) -> None:
        """Read to the end, so the expectation is checked (after a consumer gave up early)."""
        while self.read(_CHUNK):
            pass

    def _mismatch(self) -> InvalidArgument:
        return InvalidArgument(
            f"state {self._state_id}: checksum mismatch: the stored stream is not the one that was exported",
            {"state_id": self._state_id, "expected_sha256": self._expect_sha256,
             "expected_bytes": self._expect_bytes})


# -- export ------------------------------------------------------------------------------------
def _mark_exported(org: str, state_id: str) -> None:
    """The Control DB remembers exports (on every host's copy: the stream serves them all), so
    listing states and placing jobs never ask the object store."""
    State.update(exported_at=utcnow()).where(
        (State.org == org) & (State.state_id == state_id) & State.exported_at.is_null()).execute()


def export_state(ctx: AppContext, org: str, state_id: str) -> Manifest:
    """Stream a state into the object store; exporting an exported state answers its manifest."""
    state = _state_row(ctx, org, state_id)
    if state is None:
        elsewhere = sorted(r.host for r in State.select(State.host).where(
            (State.org == org) & (State.state_id == state_id)))
        if not elsewhere:
            raise NotFound(f"state {state_id} not found")
        if read_manifest(ctx.objects, org, state_id) is None:
            raise Conflict(f"state {state_id} is held by host(s) {', '.join(elsewhere)}, not by {ctx.host}: "
                           "export it through the appliance on one of them", {"hosts": elsewhere})
    existing = read_manifest(ctx.objects, org, state_id)
    if existing is not None:
        _mark_exported(org, state_id)
        return existing
    assert state is not None  # a state held only elsewhere was answered above
    parent = state.parent_state_id
    delta_possible = (parent is not None and _state_row(ctx, org, parent) is not None
                      and is_exported(ctx.objects, org, parent))
    started = time.monotonic()
    command = ctx.store.send_state_command(org, state_id, parent if delta_possible else None)
    key = stream_key(org, state_id)
    hashing: list[HashingReader] = []

    def upload(stream: BinaryIO) -> None:
        hashing.append(HashingReader(stream))
        ctx.objects.put_stream(key, cast(BinaryIO, hashing[0]), metadata={"state-id": state_id, "format": command.format})
    try:
        ctx.runner.pipe_from(command.argv, upload)
    except BaseException:
        _forget(ctx.objects, key)  # normally never visible; covers a producer failing after EOF
        raise
    manifest = Manifest(
        format_version=FORMAT_VERSION, state_id=state_id, parent_state_id=parent,
        incremental_from=parent if command.parent is not None else None,
        image_id=state.image_id, prepare_kind=state.prepare_kind, task_hash=state.task_hash,
        summary=state.summary, size_bytes=state.size_bytes, driver=ctx.store.driver.name,
        format=command.format, stream_sha256=hashing[0].sha256, stream_bytes=hashing[0].bytes,
        exported_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    ctx.objects.put_bytes(manifest_key(org, state_id), manifest.to_json())
    with write_transaction(State._meta.database):
        _mark_exported(org, state_id)
        counters.transfer_finished("export", manifest.stream_bytes, time.monotonic() - started)
    log.info("exported state %s of org %s (%d bytes, %s)", state_id, org, manifest.stream_bytes,
             "delta" if manifest.incremental_from else "full")
    return manifest


def _forget(objects: ObjectStore, key: str) -> None:
    try:
        objects.delete(key)
    except Exception:  # keep the original error
        log.warning("could not remove the unfinished export %s", key, exc_info=True)


# -- import ------------------------------------------------------------------------------------
def import_state(ctx: AppContext, org: str, state_id: str) -> State:
    """Bring an exported state (and its missing ancestors, oldest first) into this store."""
    existing = _state_row(ctx, org, state_id)
    if existing is not None:
        return existing
    chain = _missing_chain(ctx, org, state_id)
    for manifest in reversed(chain):
        _receive(ctx, org, manifest)
    imported = _state_row(ctx, org, state_id)
    if imported is None:
        raise InternalError(f"state {state_id} was received but is not recorded")
    return imported


def _missing_chain(ctx: AppContext, org: str, state_id: str) -> list[Manifest]:
    """Manifests from ``state_id`` up to the first ancestor already here, all checked for
    compatibility before anything is received."""
    chain: list[Manifest] = []
    current: str | None = state_id
    while current is not None and _state_row(ctx, org, current) is None:
        manifest = read_manifest(ctx.objects, org, current)
        if manifest is None:
            what = f"state {current}" + ("" if current == state_id else f" (an ancestor of state {state_id})")
            raise NotFound(f"{what} has no export in the object store")
        if manifest.state_id != current:
            raise InvalidArgument(f"the manifest of state {current} describes state {manifest.state_id}")
        if manifest.format not in ctx.store.receives:  # the stream decides, not the driver's name
            raise InvalidArgument(
                f"state {current} was exported by the {manifest.driver} driver as {manifest.format!r}; "
                f"this store uses the {ctx.store.driver.name} driver, which receives "
                f"{', '.join(sorted(ctx.store.receives)) or 'no stream'}",
                {"state_id": current, "driver": manifest.driver, "format": manifest.format})
        if any(m.state_id == current for m in chain):
            raise InvalidArgument(f"the manifests of state {state_id} form a cycle")
        chain.append(manifest)
        current = manifest.parent_state_id
    return chain


def _receive(ctx: AppContext, org: str, manifest: Manifest) -> None:
    state_id, started = manifest.state_id, time.monotonic()
    with ctx.objects.open(stream_key(org, state_id)) as stored:
        checked = HashingReader(stored, expect_sha256=manifest.stream_sha256, expect_bytes=manifest.stream_bytes,
                                state_id=state_id)
        try:
            size = ctx.store.receive_state(org, state_id, cast(BinaryIO, checked), manifest.format,
                                           manifest.incremental_from)
        except InvalidArgument:
            raise
        except Exception as failure:
            # A corrupt stream often makes the receiving tool fail first: say so clearly.
            try:
                checked.drain()
            except InvalidArgument as mismatch:
                raise mismatch from failure
            raise
    try:
        with write_transaction(State._meta.database):
            State.create(org=org, state_id=state_id, parent_state_id=manifest.parent_state_id,
                         image_id=manifest.image_id, prepare_kind=manifest.prepare_kind,
                         task_hash=manifest.task_hash, summary=manifest.summary, size_bytes=size,
                         host=ctx.host, exported_at=utcnow())
            counters.transfer_finished("import", manifest.stream_bytes, time.monotonic() - started)
    except pw.IntegrityError:
        if _state_row(ctx, org, state_id) is None:
            ctx.store.destroy_state(org, state_id)
            raise
    except BaseException:
        ctx.store.destroy_state(org, state_id)
        raise


def _state_row(ctx: AppContext, org: str, state_id: str) -> State | None:
    """This host's copy of the state."""
    return State.get_or_none((State.org == org) & (State.state_id == state_id) & (State.host == ctx.host))
