"""The manifest of an exported state: what the stream is, how to check it, what it depends on.

It is written after the stream, so its presence is the commit point of an export: a stream
without a manifest is an unfinished export and is never imported. This dataclass is the one
definition: the API answers it as it is (``POST /v1/states/{id}/export``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from appliance.errors import InvalidArgument

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    format_version: int  # FORMAT_VERSION when written; anything else is refused on import
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
    stream_sha256: str
    stream_bytes: int
    exported_at: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        try:
            body = json.loads(data)
        except ValueError:
            raise InvalidArgument(f"the manifest {where} is not valid JSON") from None
        if not isinstance(body, dict) or body.get("format_version") != FORMAT_VERSION:
            raise InvalidArgument(f"the manifest {where} has an unsupported format_version "
                                  f"{body.get('format_version') if isinstance(body, dict) else None!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - body.keys()
        if missing:
            raise InvalidArgument(f"the manifest {where} lacks {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in body.items() if k in names})
