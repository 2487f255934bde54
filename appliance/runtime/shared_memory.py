"""The dynamic shared memory a killed server leaves in /dev/shm.

Postgres keeps its dynamic shared memory (``dynamic_shared_memory_type = posix``) in files
``/dev/shm/PostgreSQL.<n>``: a control segment per server and, from 15 on, about 1 MiB for its
statistics. A server that exits removes them; one that is SIGKILLed cannot, and nothing else
will, since its clone is destroyed and never starts again. On a host (or a container, 64 MiB by
default) that kills servers now and then, /dev/shm fills up until initdb fails with
``could not resize shared memory segment … No space left on device``.

So before the runtime kills a server it notes the segments its processes map, by identity
(device and inode, read through ``/proc/<pid>/map_files``, so a sandboxed server's private
/dev/shm is never mistaken for the host's), and removes them once every process is gone.
"""
from __future__ import annotations

import os

_SEGMENT_PREFIX = "/dev/shm/PostgreSQL."

Segments = dict[str, tuple[int, int]]  # path -> (st_dev, st_ino)


def mapped_segments(pids: list[int]) -> Segments:
    """The Postgres segments in this namespace's /dev/shm that ``pids`` map."""
    found: Segments = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as fh:
                lines = fh.readlines()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        for line in lines:
            fields = line.split(maxsplit=5)
            path = fields[5].strip() if len(fields) == 6 else ""
            if not path.startswith(_SEGMENT_PREFIX) or path in found:
                continue
            try:
                mapped = os.stat(f"/proc/{pid}/map_files/{fields[0]}")
                here = os.stat(path)
            except OSError:
                continue  # unlinked already, or not readable without privileges
            if (mapped.st_dev, mapped.st_ino) == (here.st_dev, here.st_ino):
                found[path] = (here.st_dev, here.st_ino)
    return found


def remove_segments(segments: Segments) -> None:
    """Unlink the segments that are still the very files noted (no other server's of that name)."""
    for path, identity in segments.items():
        try:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) == identity:
                os.unlink(path)
        except OSError:
            pass  # removed meanwhile
