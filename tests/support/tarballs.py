"""Hand-made tar.gz archives and tar entries, for crafting bundles the appliance must refuse or read."""
from __future__ import annotations

import io
import tarfile


def make_tarball(entries: list[tuple[str, bytes | None, dict]]) -> bytes:
    """(name, content or None, TarInfo overrides) → tar.gz bytes, for crafting bad bundles."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content, overrides in entries:
            info = tarfile.TarInfo(name)
            for key, value in overrides.items():
                setattr(info, key, value)
            if content is not None:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def tar_entry(name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, link: str = "",
              mtime: int = 0, uid: int = 0, size: int | None = None) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mtime = mtime
    info.uid = uid
    info.size = len(data) if size is None else size
    return info, data
