"""The manifest of an exported state: what the stream is, how to check it, what it depends on.

It is written after the stream, so its presence is the commit point of an export: a stream
without a manifest is an unfinished export and is never imported. This dataclass is the one
definition: a finished transfer answers it as it is (``GET /v1/transfers/{id}``: ``manifest``).
Since format 2 it carries a signature over everything else (``transfer.signing``), checked on
import before anything is received; format 1 (uncompressed, unsigned) still reads.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from appliance.errors import InvalidArgument

FORMAT_VERSION = 2  # 2: a zstd-compressed stream, the raw size, a signature; 1 (uncompressed, unsigned) still imports
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class Manifest:
    format_version: int  # FORMAT_VERSION when written; one of READABLE_VERSIONS on import
    state_id: str
    parent_state_id: str | None
    incremental_from: str | None  # the state the stream is a delta against; None for a full stream
    image_id: str
    prepare_kind: str
    task_hash: str
    summary: str | None
    size_bytes: int  # of the state on the exporting host
    driver: str
    format: str
    stream_sha256: str  # of the stored (compressed) object
    stream_bytes: int  # of the stored (compressed) object
    exported_at: str
    compression: str = "none"  # "zstd" since format 2
    raw_bytes: int | None = None  # the driver's send stream before compression (format 2)
    signature: dict[str, Any] | None = None  # see transfer.signing; None on format 1

    @property
    def uncompressed_bytes(self) -> int:
        return self.raw_bytes if self.raw_bytes is not None else self.stream_bytes

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        return cls.from_body(parse_body(data, where), where)

    @classmethod
    def from_body(cls, body: dict[str, Any], where: str) -> Manifest:
        version = body.get("format_version")
        if version not in READABLE_VERSIONS:
            raise InvalidArgument(f"the manifest {where} has an unsupported format_version {version!r}")
        optional = {"compression", "raw_bytes", "signature"}
        names = {f.name for f in dataclasses.fields(cls)}
        required = names - optional if version == 1 else names - {"signature"}
        missing = required - body.keys()
        if missing:
            raise InvalidArgument(f"the manifest {where} lacks {', '.join(sorted(missing))}")
        manifest = cls(**{k: v for k, v in body.items() if k in names})
        if manifest.compression not in ("none", "zstd") or (version == 1 and manifest.compression != "none"):
            raise InvalidArgument(f"the manifest {where} names an unknown compression {manifest.compression!r}")
        if not isinstance(manifest.stream_bytes, int) or not isinstance(manifest.stream_sha256, str):
            raise InvalidArgument(f"the manifest {where} has a malformed stream size or checksum")
        return manifest


def parse_body(data: bytes, where: str) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError:
        raise InvalidArgument(f"the manifest {where} is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidArgument(f"the manifest {where} is not a JSON object")
    return body
