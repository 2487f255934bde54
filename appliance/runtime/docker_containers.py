"""The containers of the docker runtime: names, labels, and what goes into and comes out of them."""
from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from pathlib import Path
from typing import Any, NamedTuple

import docker.errors

from appliance.errors import CommandFailed

#: Every container this runtime creates carries ``sqlrs.managed=true``; reconcilers filter on it.
MANAGED_LABEL = "sqlrs.managed"
#: The volume a container serves, so a reconciler can map a container back to its instance.
VOLUME_LABEL = "sqlrs.volume"
LABEL_PREFIX = "sqlrs."
_RESERVED_LABELS = {MANAGED_LABEL, VOLUME_LABEL}
_LABEL_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_LABEL_VALUE_MAX = 1024

# Fixed paths inside the container: nothing about the host's store layout leaks into it.
CONTAINER_PGDATA = "/pgdata"
CONTAINER_RUN_DIR = "/run/sqlrs"

_LOG_TAIL_LINES = 60


class ManagedContainer(NamedTuple):
    """A container of this runtime as a reconciler sees it."""

    name: str
    labels: dict[str, str]
    state: str  # docker's state: created | running | exited | dead | ...

    @property
    def volume(self) -> Path | None:
        value = self.labels.get(VOLUME_LABEL)
        return Path(value) if value else None


def container_name(volume: Path) -> str:
    """The container of a volume; deterministic so it is found again after a restart."""
    real = os.path.realpath(os.fspath(volume))
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", os.path.basename(real))[:40].strip(".-_") or "volume"
    return f"sqlrs-pg-{stem}-{hashlib.sha256(real.encode()).hexdigest()[:16]}"


def passwd_tar(user: str, uid: int, gid: int) -> bytes:
    """A tar holding etc/passwd and etc/group that name the uid Postgres runs as."""
    files = {
        "etc/passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\n{user}:x:{uid}:{gid}::{CONTAINER_PGDATA}:/usr/sbin/nologin\n",
        "etc/group": f"root:x:0:\n{user}:x:{gid}:\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def container_log(container: Any) -> str:
    try:
        return container.logs(stdout=True, stderr=True, tail=_LOG_TAIL_LINES).decode(errors="replace")
    except docker.errors.DockerException:
        return "(no log)"


def engine_error(argv: list[str], exc: Exception) -> CommandFailed:
    """A Docker engine failure in the shape of a failed command (argv, code, message)."""
    status = getattr(exc, "status_code", None) or 1
    explanation = getattr(exc, "explanation", None) or str(exc)
    return CommandFailed(argv, status, str(explanation))
