"""Builds the Nomad job JSON of a Postgres instance (or a one-off initdb) from the template.

The template, ``nomad/postgres-instance.nomad.json``, is the job an operator reads: every
field Nomad sees is there. A string value that is exactly ``"{{name}}"`` is replaced by a
typed value (a list, a map, an integer, or null); ``"{{name}}"`` inside a longer string is
replaced by text. Nomad's own ``${...}`` interpolation is left alone.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from appliance.errors import InternalError, InvalidArgument, NotFound

#: Where the operator-readable job specs live (the repository's ``nomad/`` directory).
# Shipped inside the package (wheels too); nomad/postgres-instance.nomad.json links here for operators.
DEFAULT_TEMPLATE = Path(__file__).resolve().parent / "templates" / "postgres-instance.nomad.json"

# Fixed paths inside the container, so nothing about the host's store layout leaks into it.
CONTAINER_PGDATA = "/pgdata"
CONTAINER_RUN_DIR = "/run/sqlrs"
TASK_NAME = "postgres"
KILL_TIMEOUT_NS = 30 * 1_000_000_000
# Nomad's CPU unit is MHz, not cores; shares are relative, so a nominal 1000 MHz per core is used.
MHZ_PER_CPU = 1000

_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
_META_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


JOB_ID_PREFIX = "sqlrs-"


def job_id_for(volume: Path, purpose: str = "pg") -> str:
    """A stable, Nomad-safe job ID per volume: found again after a restart of the appliance."""
    real = os.path.realpath(os.fspath(volume))
    stem = re.sub(r"[^a-z0-9-]", "-", os.path.basename(real).lower())[:40].strip("-") or "volume"
    return f"{JOB_ID_PREFIX}{purpose}-{stem}-{hashlib.sha256(real.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class JobSettings:
    """What every job of this appliance shares (from the settings object)."""

    namespace: str
    region: str | None
    datacenters: tuple[str, ...]
    node_id: str
    image: str
    memory_mb: int
    cpus: float


@lru_cache(maxsize=4)
def _load(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"Nomad job template {path} is missing") from None


def render(template: Path, values: Mapping[str, Any]) -> dict:
    """Fill the template's placeholders; a placeholder without a value is a bug, so it raises."""
    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        if isinstance(node, str):
            whole = _PLACEHOLDER.fullmatch(node)
            if whole:
                return _value(whole.group(1))
            return _PLACEHOLDER.sub(lambda m: str(_value(m.group(1))), node)
        return node

    def _value(name: str) -> Any:
        if name not in values:
            raise InternalError(f"Nomad job template {template.name} needs a value for {name!r}")
        return values[name]

    return fill(json.loads(_load(template)))


def meta_from_labels(labels: Mapping[str, str] | None, volume: Path, purpose: str) -> dict[str, str]:
    """Job ``Meta`` (org, job, state, instance ids) so the Nomad UI says what a job is."""
    meta = {"sqlrs_managed": "true", "sqlrs_purpose": purpose, "sqlrs_volume": os.path.realpath(volume)}
    for key, value in (labels or {}).items():
        name = re.sub(r"[^A-Za-z0-9_]", "_", str(key))
        if not _META_KEY.match(name):
            raise InvalidArgument(f"label {key!r} cannot be a Nomad Meta key")
        meta[f"sqlrs_{name}" if not name.startswith("sqlrs_") else name] = str(value)[:1024]
    return meta


def instance_job(template: Path, shared: JobSettings, *, volume: Path, pgdata: Path, run_dir: Path,
                 port: int, listen: str, tcp: bool, user: str, labels: Mapping[str, str] | None) -> dict:
    """The batch job that runs Postgres on ``pgdata`` until it is signalled."""
    job_id = job_id_for(volume)
    meta = meta_from_labels(labels, volume, "instance")
    networks = [{"Mode": "host", "ReservedPorts": [{"Label": "pg", "Value": port}]}] if tcp else None
    args = ["-D", CONTAINER_PGDATA, "-c", f"listen_addresses={listen}", "-c", f"port={port}",
            "-c", f"unix_socket_directories={CONTAINER_RUN_DIR}"]
    return _job(template, shared, job_id=job_id, meta=meta, networks=networks, network_mode="host",
                command="postgres", args=args, user=user, mounts=_mounts(pgdata, run_dir),
                description=f"sqlrs Postgres instance on {meta['sqlrs_volume']}")


def initdb_job(template: Path, shared: JobSettings, *, volume: Path, pgdata: Path, user: str,
               initdb_args: list[str]) -> dict:
    """A short batch job that runs initdb into an empty ``pgdata`` and exits."""
    meta = meta_from_labels(None, volume, "initdb")
    return _job(template, shared, job_id=job_id_for(volume, "initdb"), meta=meta, networks=None,
                network_mode="none", command="initdb", args=["-D", CONTAINER_PGDATA, *initdb_args],
                user=user, mounts=_mounts(pgdata, None), description=f"sqlrs initdb of {meta['sqlrs_volume']}")


def _mounts(pgdata: Path, run_dir: Path | None) -> list[dict]:
    # Postgres tools look their uid up in /etc/passwd; the image cannot know the host's uid, so
    # the job renders a one-line passwd into its task dir (``local/``) and mounts that instead.
    mounts = [{"type": "bind", "source": "local/passwd", "target": "/etc/passwd", "readonly": True},
              {"type": "bind", "source": os.path.realpath(pgdata), "target": CONTAINER_PGDATA, "readonly": False}]
    if run_dir is not None:
        mounts.append({"type": "bind", "source": os.path.realpath(run_dir), "target": CONTAINER_RUN_DIR,
                       "readonly": False})
    return mounts


def passwd_line(user: str) -> str:
    uid, _, gid = user.partition(":")
    return f"postgres:x:{int(uid)}:{int(gid)}:PostgreSQL:/nonexistent:/usr/sbin/nologin\n"


def _job(template: Path, shared: JobSettings, **values: Any) -> dict:
    return render(template, {
        **values,
        "passwd": passwd_line(values["user"]),
        "namespace": shared.namespace,
        "region": shared.region,
        "datacenters": list(shared.datacenters),
        "node_id": shared.node_id,
        "image": shared.image,
        "cpu_mhz": max(1, round(shared.cpus * MHZ_PER_CPU)),
        "memory_mb": shared.memory_mb,
        "kill_timeout_ns": KILL_TIMEOUT_NS,
    })
