"""Which installation owns an object-store prefix, and which objects it wrote.

An installation (one Control DB, however many hosts) has an id, generated once and kept in the
Control DB (``Installation``). At start (`up`, `api`) it claims its object store (the bucket
and prefix of ``artifacts_url``, or the directory): it writes a marker object
(``.sqlrs-installation.json`` at the store's root) naming its id when there is none, and
refuses to start with ``object_store_not_ours`` when the marker names another installation.

Every object it writes carries its id (metadata ``installation``), and it deletes only objects
that carry its id: even two installations pointed at one prefix by mistake, or an object copied
in by hand, never lose an object to the other's sweeps. Objects written before installations
had ids carry none and are left alone (an operator may remove them by hand).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any, BinaryIO

from appliance.control.models import Installation
from appliance.errors import NotFound, ObjectStoreNotOurs
from appliance.objectstore.store import WRITER, ObjectInfo, ObjectStore

log = logging.getLogger(__name__)


def installation_id() -> str:
    """This installation's id, created on first use (every host of it reads the same row)."""
    row = Installation.get_or_none(Installation.singleton == 1)
    if row is None:
        Installation.insert(singleton=1, installation_id=uuid.uuid4().hex).on_conflict_ignore().execute()
        row = Installation.get(Installation.singleton == 1)
    return row.installation_id


def owner(objects: ObjectStore) -> str | None:
    """The installation id the store's marker names; None when the store is unclaimed."""
    data = objects.read_marker()
    if data is None:
        return None
    try:
        return str(json.loads(data)["installation_id"])
    except (ValueError, KeyError, TypeError):
        return "(an unreadable marker)"


def claim(objects: ObjectStore, ours: str, where: str) -> None:
    """Make the store ours if nobody owns it; refuse it if another installation does."""
    if owner(objects) is None:
        objects.write_marker(json.dumps({"installation_id": ours, "claimed_at": dt.datetime.now(
            dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}).encode())
    check(objects, ours, where)


def check(objects: ObjectStore, ours: str, where: str) -> None:
    found = owner(objects)
    if found is not None and found != ours:
        raise ObjectStoreNotOurs(
            f"the object store {where} belongs to installation {found}, not to this one ({ours}); give each "
            "installation its own bucket or prefix (artifacts_url s3://bucket/<prefix>)",
            {"owner": found, "installation_id": ours})


class OwnedObjectStore:
    """An object store that stamps what it writes with the installation's id and deletes only
    what carries that stamp. Everything else is the wrapped store's."""

    def __init__(self, inner: ObjectStore, ours: str):
        self.inner, self.installation_id = inner, ours

    def put_stream(self, key: str, stream: BinaryIO, *, metadata: dict[str, str] | None = None,
                   retain_until: dt.datetime | None = None) -> ObjectInfo:
        return self.inner.put_stream(key, stream, metadata=self._stamped(metadata), retain_until=retain_until)

    def put_bytes(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None,
                  retain_until: dt.datetime | None = None) -> ObjectInfo:
        return self.inner.put_bytes(key, data, metadata=self._stamped(metadata), retain_until=retain_until)

    def put_stream_resumable(self, key: str, stream: BinaryIO, *,
                             metadata: dict[str, str] | None = None) -> tuple[ObjectInfo, int]:
        return self.inner.put_stream_resumable(key, stream, metadata=self._stamped(metadata))

    def delete(self, key: str) -> None:
        try:
            info = self.inner.stat(key)
        except NotFound:
            return
        if not self.wrote(info):
            log.warning("not deleting %s: this installation (%s) did not write it", key, self.installation_id)
            return
        self.inner.delete(key)

    def wrote(self, info: ObjectInfo) -> bool:
        return info.metadata.get(WRITER) == self.installation_id

    def _stamped(self, metadata: dict[str, str] | None) -> dict[str, str]:
        return {**(metadata or {}), WRITER: self.installation_id}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
