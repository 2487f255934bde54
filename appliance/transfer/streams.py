"""Snapshot streams: export a state into the object store, import it on another host or store.

Export pipes the driver's send command through zstd straight into a multipart upload (no temp
file), hashing the compressed bytes on the way, then writes the manifest, signed with the
installation's key (``signing``), last. Import checks the whole chain first (every manifest's
signature, every stream's format: a store takes any driver's stream in a format it receives:
copy and LVM both write and read tar), imports missing ancestors oldest first. Each stream is downloaded
into an anonymous spool file (in ``data_dir``: the compressed size) and its sha256 and size
verified before the receiving tool reads a byte of it; only then is it received and the
``State`` row inserted. Manifests of format 1 (uncompressed, unsigned) still import when
``allow_unsigned_imports`` is on.

Both take a ``Progress``: told the total once, then the bytes as they pass (the job runner in
``transfer.jobs`` records them). Both run on a worker of the host whose store they touch,
never in the API.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import tempfile
import time
from typing import TYPE_CHECKING, BinaryIO, cast

import peewee as pw
import zstandard

from appliance.control import counters
from appliance.control.db import write_transaction
from appliance.control.models import State, utcnow
from appliance.errors import Conflict, InternalError, InvalidArgument, NotFound
from appliance.transfer import signing
from appliance.transfer.manifest import FORMAT_VERSION, Manifest, parse_body

if TYPE_CHECKING:
    from collections.abc import Callable

    from appliance.context import AppContext
    from appliance.objectstore.store import ObjectStore
    from appliance.settings import Settings

log = logging.getLogger(__name__)
_CHUNK = 1024 * 1024
ZSTD_LEVEL = 3  # fast, and already 10x and more on a freshly built Postgres cluster


class Progress:
    """What a transfer reports as it goes: ``total`` once (an estimate for an export: the
    state's size), then ``advance`` by the bytes that passed. This one reports nowhere."""

    def total(self, nbytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass


def stream_key(org: str, state_id: str) -> str:
    return f"{org}/states/{state_id}/stream"


def manifest_key(org: str, state_id: str) -> str:
    return f"{org}/states/{state_id}/manifest.json"


def read_manifest(objects: ObjectStore, org: str, state_id: str, *, settings: Settings | None = None
                  ) -> Manifest | None:
    """The state's manifest, or None when it was never (completely) exported. With
    ``settings``, its signature is verified against the keys they trust (``ManifestRefused``)."""
    key = manifest_key(org, state_id)
    try:
        with objects.open(key) as reader:
            body = parse_body(reader.read(), key)
    except NotFound:
        return None
    if settings is not None:
        signing.verify(body, settings, key)
    return Manifest.from_body(body, key)


def manifest_chain(objects: ObjectStore, settings: Settings, org: str, state_id: str,
                   present: Callable[[str], bool]) -> list[Manifest]:
    """Verified manifests from ``state_id`` up to the first ancestor ``present`` says is here
    (newest first): ``NotFound`` when one is missing, ``ManifestRefused`` when one is not
    trusted. Reads only the object store: the API checks an import with it before queuing."""
    chain: list[Manifest] = []
    current: str | None = state_id
    while current is not None and not present(current):
        manifest = read_manifest(objects, org, current, settings=settings)
        if manifest is None:
            what = f"state {current}" + ("" if current == state_id else f" (an ancestor of state {state_id})")
            raise NotFound(f"{what} has no export in the object store")
        if manifest.state_id != current:
            raise InvalidArgument(f"the manifest of state {current} describes state {manifest.state_id}")
        if any(m.state_id == current for m in chain):
            raise InvalidArgument(f"the manifests of state {state_id} form a cycle")
        chain.append(manifest)
        current = manifest.parent_state_id
    return chain


def is_exported(objects: ObjectStore, org: str, state_id: str) -> bool:
    return objects.exists(manifest_key(org, state_id))


class HashingReader:
    """Counts and hashes what is read through it; with an expectation, refuses a stream that
    differs, at the latest when it reaches its end (so a consumer that reads to EOF first
    cannot finish with bad data)."""

    def __init__(self, inner: BinaryIO, *, expect_sha256: str | None = None, expect_bytes: int | None = None,
                 state_id: str = "", progress: Progress | None = None) -> None:
        self._inner, self._sha = inner, hashlib.sha256()
        self.bytes = 0
        self._progress = progress or Progress()
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
            self._progress.advance(len(data))
            if self._expect_bytes is not None and self.bytes > self._expect_bytes:
                raise self._mismatch()
        elif self._expect_sha256 is not None and not self.verified:
            if self.bytes != self._expect_bytes or self.sha256 != self._expect_sha256:
                raise self._mismatch()
            self.verified = True
        return data

    def _mismatch(self) -> InvalidArgument:
        return InvalidArgument(
            f"state {self._state_id}: checksum mismatch: the stored stream is not the one that was exported",
            {"state_id": self._state_id, "expected_sha256": self._expect_sha256,
             "expected_bytes": self._expect_bytes})


class CompressingReader:
    """zstd of what it reads from ``inner``, as a readable stream; counts the raw bytes. One
    frame, one thread, a fixed level: the same input always gives the same bytes."""

    def __init__(self, inner: BinaryIO, progress: Progress | None = None) -> None:
        self._inner, self._progress = inner, progress or Progress()
        self._compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
        self._buffer, self._done = bytearray(), False
        self.raw_bytes = 0

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            chunk = self._inner.read(_CHUNK)
            if chunk:
                self.raw_bytes += len(chunk)
                self._progress.advance(len(chunk))
                self._buffer += self._compressor.compress(chunk)
            else:
                self._buffer += self._compressor.flush()
                self._done = True
        if size < 0 or size >= len(self._buffer):
            data, self._buffer = bytes(self._buffer), bytearray()
        else:
            data, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
        return data


class DecompressingReader:
    """The raw stream of a zstd object (already verified against its checksum: a corrupt frame
    here means a broken exporter, and is refused all the same); bytes after the frame are refused."""

    def __init__(self, source: BinaryIO, state_id: str) -> None:
        self._source, self._state_id = source, state_id
        self._decompressor = zstandard.ZstdDecompressor().decompressobj()
        self._buffer, self._done = bytearray(), False

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < max(size, 1)):
            chunk = self._source.read(_CHUNK)
            if not chunk:
                if not self._decompressor.eof:
                    raise self._corrupt("the stream ends inside its zstd frame")
                self._done = True
                break
            if self._decompressor.eof:
                raise self._corrupt("bytes follow the end of the zstd frame")
            try:
                self._buffer += self._decompressor.decompress(chunk)
            except zstandard.ZstdError as exc:
                raise self._corrupt(f"the zstd stream is corrupt ({exc})") from None
            if self._decompressor.eof and (self._decompressor.unused_data or self._source.read(1)):
                raise self._corrupt("bytes follow the end of the zstd frame")
        if size < 0 or size >= len(self._buffer):
            data, self._buffer = bytes(self._buffer), bytearray()
        else:
            data, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
        return data

    def _corrupt(self, why: str) -> InvalidArgument:
        return InvalidArgument(f"state {self._state_id}: {why}", {"state_id": self._state_id})


# -- export ------------------------------------------------------------------------------------
def _mark_exported(org: str, state_id: str) -> None:
    """The Control DB remembers exports (on every host's copy: the stream serves them all), so
    listing states and placing jobs never ask the object store."""
    State.update(exported_at=utcnow()).where(
        (State.org == org) & (State.state_id == state_id) & State.exported_at.is_null()).execute()


def export_state(ctx: AppContext, org: str, state_id: str, progress: Progress | None = None) -> Manifest:
    """Stream a state into the object store; exporting an exported state answers its manifest
    (one of format 1, unsigned, is written again: exporting is how an old export gets signed)."""
    progress = progress or Progress()
    state = _state_row(ctx, org, state_id)
    existing = _current_manifest(ctx, org, state_id)
    if state is None:
        elsewhere = sorted(r.host for r in State.select(State.host).where(
            (State.org == org) & (State.state_id == state_id)))
        if not elsewhere:
            raise NotFound(f"state {state_id} not found")
        if existing is None:
            raise Conflict(f"state {state_id} is held by host(s) {', '.join(elsewhere)}, not by {ctx.host}: "
                           "export it through the appliance on one of them", {"hosts": elsewhere})
    if existing is not None:
        _mark_exported(org, state_id)
        return existing
    assert state is not None  # a state held only elsewhere was answered above
    key = signing.signing_key(ctx.settings)  # before streaming: an unusable key fails fast
    parent = state.parent_state_id
    delta_possible = (parent is not None and _state_row(ctx, org, parent) is not None
                      and _current_manifest(ctx, org, parent) is not None)
    started = time.monotonic()
    command = ctx.store.send_state_command(org, state_id, parent if delta_possible else None)
    progress.total(state.size_bytes)
    stored = stream_key(org, state_id)
    readers: list[tuple[CompressingReader, HashingReader]] = []
    resumed: list[int] = []

    def upload(stream: BinaryIO) -> None:
        compressing = CompressingReader(stream, progress)
        hashing = HashingReader(cast(BinaryIO, compressing))
        readers.append((compressing, hashing))
        # An earlier attempt killed midway left an unfinished upload: the same state sends and
        # compresses to the same bytes, so what is stored already and still equal is kept.
        _, kept = ctx.objects.put_stream_resumable(
            stored, cast(BinaryIO, hashing),
            metadata={"state-id": state_id, "format": command.format, "compression": "zstd"})
        resumed.append(kept)
    try:
        ctx.runner.pipe_from(command.argv, upload)
    except BaseException:
        _forget_unpublished(ctx.objects, org, state_id)  # normally never visible; covers a producer failing after EOF
        raise
    compressing, hashing = readers[0]
    unsigned = Manifest(
        format_version=FORMAT_VERSION, state_id=state_id, parent_state_id=parent,
        incremental_from=parent if command.parent is not None else None,
        image_id=state.image_id, prepare_kind=state.prepare_kind, task_hash=state.task_hash,
        summary=state.summary, size_bytes=state.size_bytes, driver=ctx.store.driver.name,
        format=command.format, stream_sha256=hashing.sha256, stream_bytes=hashing.bytes,
        exported_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        compression="zstd", raw_bytes=compressing.raw_bytes)
    body = signing.sign(unsigned.to_dict(), key)
    manifest = Manifest.from_body(body, manifest_key(org, state_id))
    ctx.objects.put_bytes(manifest_key(org, state_id), manifest.to_json())
    with write_transaction(State._meta.database):
        _mark_exported(org, state_id)
        counters.transfer_finished("export", manifest.stream_bytes, time.monotonic() - started)
    log.info("exported state %s of org %s (%d bytes, %d before compression, %s%s)", state_id, org,
             manifest.stream_bytes, compressing.raw_bytes, "delta" if manifest.incremental_from else "full",
             f"; resumed an unfinished upload: {resumed[0]} bytes were stored already" if resumed[0] else "")
    return manifest


def _current_manifest(ctx: AppContext, org: str, state_id: str) -> Manifest | None:
    """The state's export when it is of today's format (signed): an older one counts as none."""
    manifest = read_manifest(ctx.objects, org, state_id)
    return manifest if manifest is not None and manifest.signature is not None else None


def _forget_unpublished(objects: ObjectStore, org: str, state_id: str) -> None:
    """Remove the stream of an export that failed, unless another export of the state finished
    with it meanwhile (its manifest names it): a finished export's stream is never removed."""
    try:
        published = read_manifest(objects, org, state_id) is not None
    except Exception:  # keep the original error; when in doubt, remove nothing
        log.warning("could not tell whether state %s has a finished export; its stream is kept", state_id)
        return
    if not published:
        _forget(objects, stream_key(org, state_id))


def _forget(objects: ObjectStore, key: str) -> None:
    try:
        objects.delete(key)
    except Exception:  # keep the original error
        log.warning("could not remove the unfinished export %s", key, exc_info=True)


# -- import ------------------------------------------------------------------------------------
def import_state(ctx: AppContext, org: str, state_id: str, progress: Progress | None = None) -> State:
    """Bring an exported state (and its missing ancestors, oldest first) into this store."""
    progress = progress or Progress()
    existing = _state_row(ctx, org, state_id)
    if existing is not None:
        return existing
    chain = _missing_chain(ctx, org, state_id)
    progress.total(sum(m.stream_bytes for m in chain))
    for manifest in reversed(chain):
        _receive(ctx, org, manifest, progress)
    imported = _state_row(ctx, org, state_id)
    if imported is None:
        raise InternalError(f"state {state_id} was received but is not recorded")
    return imported


def _missing_chain(ctx: AppContext, org: str, state_id: str) -> list[Manifest]:
    """Manifests from ``state_id`` up to the first ancestor already here, all checked (signature,
    stream format) before anything is received."""
    chain = manifest_chain(ctx.objects, ctx.settings, org, state_id,
                           lambda current: _state_row(ctx, org, current) is not None)
    for manifest in chain:
        if manifest.format not in ctx.store.receives:  # the stream decides, not the driver's name
            raise InvalidArgument(
                f"state {manifest.state_id} was exported by the {manifest.driver} driver as {manifest.format!r}; "
                f"this store uses the {ctx.store.driver.name} driver, which receives "
                f"{', '.join(sorted(ctx.store.receives)) or 'no stream'}",
                {"state_id": manifest.state_id, "driver": manifest.driver, "format": manifest.format})
    return chain


def _receive(ctx: AppContext, org: str, manifest: Manifest, progress: Progress) -> None:
    """Download the stream into an anonymous spool file, verifying its size and sha256 (which
    the signature covers) on the way; only a verified stream reaches the receiving tool, so an
    altered one changes nothing (no tool ever parses it, no half-received dataset is left)."""
    state_id, started = manifest.state_id, time.monotonic()
    ctx.settings.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=ctx.settings.data_dir, prefix=".import-") as spool:
        with ctx.objects.open(stream_key(org, state_id)) as stored:
            checked = HashingReader(stored, expect_sha256=manifest.stream_sha256,
                                    expect_bytes=manifest.stream_bytes, state_id=state_id, progress=progress)
            while chunk := checked.read(_CHUNK):
                spool.write(chunk)
        spool.seek(0)
        raw = spool if manifest.compression == "none" else DecompressingReader(cast(BinaryIO, spool), state_id)
        size = ctx.store.receive_state(org, state_id, cast(BinaryIO, raw), manifest.format, manifest.incremental_from)
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
