"""The object store on S3/MinIO through the ``minio`` SDK.

Streams of unknown length go up as multipart uploads of ``PART_SIZE`` parts, one part at a
time: with parallel parts the SDK only reports a failure after reading the whole input,
and memory stays at about two parts. The SDK aborts the multipart upload when the stream
raises an ``Exception``; for anything else (an interrupt) this module aborts it, so a
truncated object is never visible and no incomplete upload is left behind. The exception:
``put_stream_resumable`` (exports) keeps an upload its writer did not finish (killed) for the next
attempt to resume.
Credentials live only inside the client: errors name the endpoint and key, never a secret.
"""
from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import io
import threading
from typing import BinaryIO, cast

from minio import Minio
from minio.datatypes import Part
from minio.error import S3Error
from minio.helpers import genheaders

from appliance.errors import InternalError, NotFound
from appliance.objectstore.store import (
    MARKER_NAME,
    ObjectInfo,
    check_key,
    check_prefix,
    expired_keys,
    metadata_with_retention,
    stat_each,
)

PART_SIZE = 16 * 1024 * 1024
_META_PREFIX = "x-amz-meta-"
_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchBucket"}


class S3ObjectStore:
    def __init__(self, endpoint: str, bucket: str, prefix: str = "", *, access_key: str | None = None,
                 secret_key: str | None = None, secure: bool = True, region: str | None = None):
        self.endpoint, self.bucket = endpoint, bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                             region=region)
        self._bucket_ready = False
        self._lock = threading.Lock()

    # -- writing --------------------------------------------------------------------------
    def put_stream(self, key: str, stream: BinaryIO, *, metadata: dict[str, str] | None = None,
                   retain_until: dt.datetime | None = None) -> ObjectInfo:
        name = self._name(check_key(key))
        meta = metadata_with_retention(metadata, retain_until)
        self._ensure_bucket()
        try:
            self._client.put_object(self.bucket, name, stream, length=-1, part_size=PART_SIZE,
                                    num_parallel_uploads=1, metadata=dict(meta) if meta else None)
        except Exception as exc:
            if isinstance(exc, S3Error):
                raise self._error(exc, key) from None
            raise
        except BaseException:
            self._abort_incomplete_uploads(name)
            raise
        return self.stat(key)

    def put_bytes(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None,
                  retain_until: dt.datetime | None = None) -> ObjectInfo:
        return self.put_stream(key, io.BytesIO(data), metadata=metadata, retain_until=retain_until)

    def put_stream_resumable(self, key: str, stream: BinaryIO, *,
                             metadata: dict[str, str] | None = None) -> tuple[ObjectInfo, int]:
        """A multipart upload of ``PART_SIZE`` parts that survives its writer: an unfinished
        upload of the key (ListMultipartUploads) is taken over, and each of its parts, in order,
        is skipped when the stream's next ``PART_SIZE`` bytes have its size and MD5 (its ETag);
        from the first part that differs on, every part is uploaded (replacing what that number
        held), and the upload is completed with this stream's parts only."""
        name = self._name(check_key(key))
        headers = genheaders(dict(metadata_with_retention(metadata, None)) or None, None, None, None, False)
        headers["Content-Type"] = "application/octet-stream"
        self._ensure_bucket()
        try:
            upload_id, earlier = self._unfinished_upload(name)
            first = _read_full(stream, PART_SIZE)
            if upload_id is None and len(first) < PART_SIZE:  # one small object: no multipart upload
                self._client.put_object(self.bucket, name, io.BytesIO(first), len(first), metadata=(
                    dict(metadata_with_retention(metadata, None)) or None))
                return self.stat(key), 0
            if upload_id is None:
                upload_id = self._client._create_multipart_upload(self.bucket, name, headers)
            parts, skipped, data, number = [], 0, first, 1
            matching = True
            while data or number == 1:
                known = earlier.get(number)
                if matching and known is not None and known.size == len(data) \
                        and known.etag.strip('"') == hashlib.md5(data, usedforsecurity=False).hexdigest():
                    parts.append(Part(number, known.etag))
                    skipped += len(data)
                else:
                    matching = False
                    parts.append(Part(number, self._client._upload_part(self.bucket, name, data, None, upload_id,
                                                                        number)))
                if len(data) < PART_SIZE:
                    break
                data, number = _read_full(stream, PART_SIZE), number + 1
                if not data:
                    break
            self._client._complete_multipart_upload(self.bucket, name, upload_id, parts)
        except Exception as exc:
            self._abort_incomplete_uploads(name)
            if isinstance(exc, S3Error):
                raise self._error(exc, key) from None
            raise
        return self.stat(key), skipped

    def _unfinished_upload(self, name: str) -> tuple[str | None, dict[int, Part]]:
        """The newest unfinished multipart upload of ``name`` and its parts by number (the older
        ones are aborted); (None, {}) when there is none."""
        uploads = sorted(((u.initiated_time or dt.datetime.min.replace(tzinfo=dt.UTC), u.upload_id)
                          for u in self._client._list_multipart_uploads(self.bucket, prefix=name).uploads
                          if u.object_name == name and u.upload_id is not None), key=lambda u: u[0])
        if not uploads:
            return None, {}
        for _, stale in uploads[:-1]:
            self._client._abort_multipart_upload(self.bucket, name, stale)
        upload_id = uploads[-1][1]
        parts: dict[int, Part] = {}
        marker = None
        while True:
            listed = self._client._list_parts(self.bucket, name, upload_id, part_number_marker=marker)
            parts.update({p.part_number: p for p in listed.parts})
            if not listed.is_truncated or not listed.next_part_number_marker:
                return upload_id, parts
            marker = listed.next_part_number_marker

    def delete(self, key: str) -> None:
        self._ensure_bucket()
        try:
            self._client.remove_object(self.bucket, self._name(check_key(key)))
        except S3Error as exc:
            if exc.code not in _MISSING:
                raise self._error(exc, key) from None

    # -- reading --------------------------------------------------------------------------
    def open(self, key: str) -> BinaryIO:
        self._ensure_bucket()
        try:
            response = self._client.get_object(self.bucket, self._name(check_key(key)))
        except S3Error as exc:
            raise self._error(exc, key) from None
        return cast(BinaryIO, _ResponseReader(response))  # file-like: read, close, a context manager

    def stat(self, key: str) -> ObjectInfo:
        self._ensure_bucket()
        try:
            obj = self._client.stat_object(self.bucket, self._name(check_key(key)))
        except S3Error as exc:
            raise self._error(exc, key) from None
        metadata = {k.lower()[len(_META_PREFIX):]: v for k, v in (obj.metadata or {}).items()
                    if k.lower().startswith(_META_PREFIX)}
        return ObjectInfo(key, obj.size or 0, obj.last_modified, metadata)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
            return True
        except NotFound:
            return False

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Lists, then stats each object: plain S3 listings carry no user metadata."""
        self._ensure_bucket()
        listed = self._client.list_objects(self.bucket, prefix=self.prefix + check_prefix(prefix), recursive=True)
        keys = (obj.object_name[len(self.prefix):] for obj in listed)
        return stat_each(self, (key for key in keys if not key.startswith(".")))  # not the installation marker

    def expired(self, prefix: str, now: dt.datetime) -> builtins.list[str]:  # (list: the method above)
        return expired_keys(self.list(prefix), now)

    # -- the installation marker (outside every org's keys; never listed) -------------------
    def read_marker(self) -> bytes | None:
        self._ensure_bucket()
        try:
            response = self._client.get_object(self.bucket, self.prefix + MARKER_NAME)
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise self._error(exc, MARKER_NAME) from None
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def write_marker(self, data: bytes) -> None:
        self._ensure_bucket()
        try:
            self._client.put_object(self.bucket, self.prefix + MARKER_NAME, io.BytesIO(data), len(data))
        except S3Error as exc:
            raise self._error(exc, MARKER_NAME) from None

    # -- internals ------------------------------------------------------------------------
    def _name(self, key: str) -> str:
        return self.prefix + key

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._lock:
            if not self._bucket_ready:
                try:
                    if not self._client.bucket_exists(self.bucket):
                        self._client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise InternalError(f"cannot use bucket {self.bucket} on {self.endpoint}: "
                                            f"{exc.code}") from None
                self._bucket_ready = True

    def _abort_incomplete_uploads(self, name: str) -> None:
        """Abort the multipart uploads of ``name`` (the SDK only does so on an ``Exception``)."""
        result = self._client._list_multipart_uploads(self.bucket, prefix=name)
        for upload in result.uploads:
            if upload.object_name == name and upload.upload_id is not None:
                self._client._abort_multipart_upload(self.bucket, name, upload.upload_id)

    def _error(self, exc: S3Error, key: str) -> Exception:
        if exc.code in _MISSING:
            return NotFound(f"object {key} not found")
        return InternalError(f"object store error on {key}: {exc.code}", {"endpoint": self.endpoint})


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """``size`` bytes, fewer only at the end of the stream."""
    chunks, missing = [], size
    while missing > 0:
        chunk = stream.read(missing)
        if not chunk:
            break
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


class _ResponseReader(io.RawIOBase):
    """A GET response as a file: reads stream from the socket, ``close`` frees the connection."""

    def __init__(self, response) -> None:
        super().__init__()
        self._response = response

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._response.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._response.release_conn()
        super().close()
