"""One object-store interface with two backends: S3/MinIO for teams, a local directory for
the embedded default.

Keys always start with the org (``<org>/…``), so one prefix holds everything a tenant owns
and a key can never name another org's object by accident. Writes are all-or-nothing: a
stream that raises midway leaves no object behind. Retention ("keep until") travels with the
object as metadata, so a sweeper needs nothing but the store to honour it.
"""
from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable
from urllib.parse import urlparse

from appliance.errors import InvalidArgument, NotFound
from appliance.ids import is_name

if TYPE_CHECKING:
    from appliance.settings import Settings

RETAIN_UNTIL = "retain-until"  # metadata key holding the ISO-8601 UTC expiry
WRITER = "installation"  # metadata key: the installation that wrote the object
MARKER_NAME = ".sqlrs-installation.json"  # at the store's root: which installation owns it


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: dt.datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def retain_until(self) -> dt.datetime | None:
        value = self.metadata.get(RETAIN_UNTIL)
        return parse_time(value) if value else None


@runtime_checkable
class ObjectStore(Protocol):
    def put_stream(self, key: str, stream: BinaryIO, *, metadata: dict[str, str] | None = None,
                   retain_until: dt.datetime | None = None) -> ObjectInfo:
        """Store a stream of unknown length; nothing is visible unless it reached its end."""

    def put_bytes(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None,
                  retain_until: dt.datetime | None = None) -> ObjectInfo: ...

    def put_stream_resumable(self, key: str, stream: BinaryIO, *,
                             metadata: dict[str, str] | None = None) -> tuple[ObjectInfo, int]:
        """``put_stream`` for a stream that can be produced again byte for byte (an export): an
        upload of ``key`` that an earlier attempt left unfinished (a killed worker) is resumed.
        What was stored already is compared with what ``stream`` produces (a part's MD5 against
        its ETag on S3, the bytes themselves in a directory) and not written again while equal;
        from the first difference on, everything is written anew. A stream that raises an
        ``Exception`` leaves nothing; an interrupt leaves the unfinished upload for the next
        attempt. Returns the object's info and the bytes not written again."""

    def open(self, key: str) -> BinaryIO:
        """A streaming reader (close it); ``NotFound`` when the key does not exist."""

    def stat(self, key: str) -> ObjectInfo:
        """``NotFound`` when the key does not exist."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a plain string prefix), sorted by key."""

    def delete(self, key: str) -> None:
        """Remove an object; a missing key is not an error."""

    def expired(self, prefix: str, now: dt.datetime) -> builtins.list[str]:  # (list: the method above)
        """Keys under ``prefix`` whose retention ended before ``now``."""

    def read_marker(self) -> bytes | None:
        """The installation marker at the store's root (``MARKER_NAME``), None when absent."""

    def write_marker(self, data: bytes) -> None:
        """Write the installation marker (the local store never replaces an existing one)."""


def check_key(key: str) -> str:
    """``<org>/<name>[/<name>…]``: no empty, hidden, '.' or '..' components, no backslashes."""
    if not isinstance(key, str) or "\\" in key or "\0" in key:
        raise InvalidArgument(f"invalid object key {key!r}")
    parts = key.split("/")
    if len(parts) < 2 or any(not p or p.startswith(".") for p in parts):
        raise InvalidArgument(f"invalid object key {key!r}")
    if not is_name(parts[0]):
        raise InvalidArgument(f"object key {key!r} does not start with an org")
    return key


def stat_each(store: ObjectStore, keys: Iterable[str]) -> list[ObjectInfo]:
    """What ``list`` answers, for the keys a backend found: each one's info, sorted by key; a key
    deleted meanwhile is left out."""
    found = []
    for key in keys:
        try:
            found.append(store.stat(key))
        except NotFound:
            continue
    return sorted(found, key=lambda info: info.key)


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty (everything, for sweepers) or starting with an org."""
    if prefix and (prefix.startswith("/") or "\\" in prefix or "/." in "/" + prefix or "//" in prefix):
        raise InvalidArgument(f"invalid object prefix {prefix!r}")
    return prefix


def metadata_with_retention(metadata: dict[str, str] | None, retain_until: dt.datetime | None) -> dict[str, str]:
    merged = {k.lower(): str(v) for k, v in (metadata or {}).items()}
    for name in merged:
        if not name.replace("-", "").isalnum() or not name.isascii():
            raise InvalidArgument(f"metadata key {name!r} must be letters, digits and dashes")
    if retain_until is not None:
        merged[RETAIN_UNTIL] = format_time(retain_until)
    return merged


def format_time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def expired_keys(infos: list[ObjectInfo], now: dt.datetime) -> list[str]:
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return [i.key for i in infos if i.retain_until is not None and i.retain_until < now]


def open_object_store(settings: Settings) -> ObjectStore:
    """The store ``settings.objects_url`` names: ``s3://bucket[/prefix]`` or ``file:///dir``."""
    url = urlparse(settings.objects_url)
    if url.scheme == "file":
        from appliance.objectstore.local import LocalObjectStore
        return LocalObjectStore(url.path)
    if url.scheme == "s3":
        from appliance.objectstore.s3 import S3ObjectStore
        if not settings.s3_endpoint:
            raise InvalidArgument("an s3:// artifacts_url needs s3_endpoint")
        secret = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None
        return S3ObjectStore(settings.s3_endpoint, url.netloc, url.path.strip("/"),
                             access_key=settings.s3_access_key, secret_key=secret,
                             secure=settings.s3_secure, region=settings.s3_region)
    raise InvalidArgument(f"artifacts_url must be s3://bucket[/prefix] or file:///dir, got scheme {url.scheme!r}")
