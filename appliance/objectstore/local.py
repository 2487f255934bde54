"""The object store as a directory: the embedded default, and the same contract as S3.

An object is a file at ``<root>/<key>``; its metadata a JSON file at
``<root>/.meta/<key>.json``. Both are written under ``<root>/.tmp`` and renamed into place,
data last, so a reader sees a whole object or none.
"""
from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import io
import json
import os
import secrets
from pathlib import Path
from typing import BinaryIO

from appliance.errors import NotFound
from appliance.objectstore.store import (
    MARKER_NAME,
    ObjectInfo,
    check_key,
    check_prefix,
    expired_keys,
    metadata_with_retention,
    stat_each,
)

_CHUNK = 1024 * 1024


class LocalObjectStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # -- writing --------------------------------------------------------------------------
    def put_stream(self, key: str, stream: BinaryIO, *, metadata: dict[str, str] | None = None,
                   retain_until: dt.datetime | None = None) -> ObjectInfo:
        check_key(key)  # before anything is written
        meta = metadata_with_retention(metadata, retain_until)
        tmp_dir = self.root / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp_data = tmp_dir / secrets.token_hex(8)
        tmp_meta = tmp_dir / secrets.token_hex(8)
        try:
            with open(tmp_data, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            self._publish(key, tmp_data, tmp_meta, meta)
        finally:
            for leftover in (tmp_data, tmp_meta):
                leftover.unlink(missing_ok=True)
        return self.stat(key)

    def put_bytes(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None,
                  retain_until: dt.datetime | None = None) -> ObjectInfo:
        return self.put_stream(key, io.BytesIO(data), metadata=metadata, retain_until=retain_until)

    def put_stream_resumable(self, key: str, stream: BinaryIO, *,
                             metadata: dict[str, str] | None = None) -> tuple[ObjectInfo, int]:
        """The unfinished upload is a file named after the key under ``.tmp``: its bytes are
        compared with the stream's and kept while equal; at the first difference it is cut there
        and the rest written."""
        check_key(key)  # before anything is written
        meta = metadata_with_retention(metadata, None)
        tmp_dir = self.root / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        partial = tmp_dir / f"resumable-{hashlib.sha256(key.encode()).hexdigest()[:32]}"
        tmp_meta = tmp_dir / secrets.token_hex(8)
        kept = 0
        try:
            with open(partial, "a+b") as out:
                out.seek(0)
                chunk = b""
                while chunk := stream.read(_CHUNK):
                    stored = out.read(len(chunk))
                    if stored != chunk:
                        out.seek(kept)
                        out.truncate()
                        out.write(chunk)
                        break
                    kept += len(chunk)
                if chunk:  # a difference: the rest is written anew
                    while chunk := stream.read(_CHUNK):
                        out.write(chunk)
                else:
                    out.truncate(kept)  # what an earlier, longer stream left beyond this one's end
                out.flush()
                os.fsync(out.fileno())
            self._publish(key, partial, tmp_meta, meta)
        except Exception:
            partial.unlink(missing_ok=True)
            raise
        finally:
            tmp_meta.unlink(missing_ok=True)
        return self.stat(key), kept

    def _publish(self, key: str, data: Path, tmp_meta: Path, meta: dict[str, str]) -> None:
        """The written ``data`` becomes the object: its metadata first, then the bytes, each by
        a rename (a reader sees the old object or the new one, never a half-written file)."""
        tmp_meta.write_text(json.dumps(meta))
        self._meta(key).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_meta, self._meta(key))
        self._data(key).parent.mkdir(parents=True, exist_ok=True)
        os.replace(data, self._data(key))

    def delete(self, key: str) -> None:
        self._data(check_key(key)).unlink(missing_ok=True)
        self._meta(key).unlink(missing_ok=True)

    # -- reading --------------------------------------------------------------------------
    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._data(check_key(key)), "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"object {key} not found") from None

    def stat(self, key: str) -> ObjectInfo:
        path = self._data(check_key(key))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFound(f"object {key} not found") from None
        if not os.path.isfile(path):
            raise NotFound(f"object {key} not found")
        try:
            metadata = json.loads(self._meta(key).read_text())
        except FileNotFoundError:
            metadata = {}
        modified = dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)
        return ObjectInfo(key, st.st_size, modified, metadata)

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._data(check_key(key)))

    def list(self, prefix: str) -> list[ObjectInfo]:
        check_prefix(prefix)
        start = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        keys = []
        for current, dirs, files in os.walk(start):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                key = os.path.relpath(os.path.join(current, name), self.root)
                if key.startswith(prefix) and not name.startswith("."):
                    keys.append(key)
        return stat_each(self, keys)

    def expired(self, prefix: str, now: dt.datetime) -> builtins.list[str]:  # (list: the method above)
        return expired_keys(self.list(prefix), now)

    # -- the installation marker (outside every org's keys; never listed) -------------------
    def read_marker(self) -> bytes | None:
        try:
            return (self.root / MARKER_NAME).read_bytes()
        except FileNotFoundError:
            return None

    def write_marker(self, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"{MARKER_NAME}.{secrets.token_hex(4)}"
        tmp.write_bytes(data)
        try:
            os.link(tmp, self.root / MARKER_NAME)  # never replaces another installation's marker
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)

    # -- paths ----------------------------------------------------------------------------
    def _data(self, key: str) -> Path:
        return self.root / key

    def _meta(self, key: str) -> Path:
        return self.root / ".meta" / f"{key}.json"


