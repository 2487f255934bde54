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
from appliance.runtime.cluster import server_options

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


# --- job IDs --------------------------------------------------------------------------------
# Every job of this appliance starts with the prefix, so one listing by prefix finds them all.
# A server's job reads ``sqlrs-<org>-<what it serves>-<volume key>``; the volume key, a hash of
# the clone's path, ends it, because the runtime is asked about a clone by its path alone (stop,
# is_running) and must find its job without knowing the org or the instance.
JOB_ID_PREFIX = "sqlrs-"
VOLUME_KEY_LENGTH = 12
# Nomad refuses IDs with a space or NUL; ours are lowercase letters, digits and dashes (the ID is a
# segment of Nomad's URLs) and short enough for the columns of `nomad job status`.
MAX_JOB_ID_LENGTH = 128
_READABLE_LENGTH = MAX_JOB_ID_LENGTH - len(JOB_ID_PREFIX) - 1 - VOLUME_KEY_LENGTH
# How an appliance before readable IDs named every server's job: sqlrs-pg-<volume name>-<16 hex>
# (initdb jobs still end in those 16 hex digits).
_LEGACY_SERVER_PREFIX = f"{JOB_ID_PREFIX}pg-"
_LEGACY_HASH_LENGTH = 16
_HEX = re.compile(r"[0-9a-f]+")


def volume_key(volume: Path) -> str:
    """What ends the job ID of a clone's server: the first hex digits of the sha256 of its real path."""
    return _path_hash(volume)[:VOLUME_KEY_LENGTH]


def server_job_id(volume: Path, labels: Mapping[str, str] | None) -> str:
    """``sqlrs-<org>-<instance id>-<volume key>`` for an instance; a build's server reads
    ``sqlrs-<org>-build-<job id>-…``, the base cluster's ``sqlrs-<org>-base-…``, one started
    without labels ``sqlrs-<volume name>-…``. The instance's id, not its name: a warm-pool
    instance gets its name after its job started, and a job cannot be renamed."""
    known = _labels(labels)
    words = [_slug(known.get("org", "")), _slug(_served(known) or os.path.basename(os.path.realpath(volume)))]
    readable = "-".join(w for w in words if w)[:_READABLE_LENGTH].strip("-") or "volume"
    return f"{JOB_ID_PREFIX}{readable}-{volume_key(volume)}"


def initdb_job_id(volume: Path) -> str:
    """``sqlrs-initdb-<volume name>-<16 hex>``: a one-off job, found by this ID alone and never
    taken for the volume's server (its hash is not a volume key: see ``served_volume_key``)."""
    stem = _slug(os.path.basename(os.path.realpath(volume)))[:40].strip("-") or "volume"
    return f"{JOB_ID_PREFIX}initdb-{stem}-{_path_hash(volume)[:_LEGACY_HASH_LENGTH]}"


def served_volume_key(job_id: str) -> str | None:
    """The volume key of the clone whose server ``job_id`` runs; None for any other job (initdb,
    the appliance's own service jobs, a job of someone else). An appliance before readable IDs
    named a server's job ``sqlrs-pg-<volume name>-<16 hex>``, whose hash starts with the volume
    key: after an upgrade, what it started is still seen running, and stopped."""
    last = job_id.rpartition("-")[2]
    if not job_id.startswith(JOB_ID_PREFIX) or not _HEX.fullmatch(last):
        return None
    if len(last) == VOLUME_KEY_LENGTH:
        return last
    if len(last) == _LEGACY_HASH_LENGTH and job_id.startswith(_LEGACY_SERVER_PREFIX):
        return last[:VOLUME_KEY_LENGTH]
    return None


def _path_hash(volume: Path) -> str:
    return hashlib.sha256(os.path.realpath(os.fspath(volume)).encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _served(labels: Mapping[str, str]) -> str:
    """What a server serves, for its job ID: the instance, else its purpose and the job's id."""
    if labels.get("instance"):
        return labels["instance"]
    return "-".join(v for v in (labels.get("purpose"), labels.get("job")) if v)


# --- Meta -----------------------------------------------------------------------------------
# The labels callers give ``start`` (org, instance, state, job, purpose: see runtime.base) and the
# Meta key each becomes, as nomad/README.md lists them. Any other label becomes sqlrs_<label>.
META_KEYS = {"org": "sqlrs_org", "instance": "sqlrs_instance_id", "state": "sqlrs_state_id",
             "job": "sqlrs_job_id", "purpose": "sqlrs_purpose"}


def _labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """Labels by their bare name (``sqlrs.org`` and ``org`` are both ``org``), empty ones left out."""
    found = {}
    for key, value in (labels or {}).items():
        if value is None or str(value) == "":
            continue
        found[str(key).removeprefix("sqlrs.")] = str(value)
    return found


def meta_from_labels(labels: Mapping[str, str] | None, volume: Path, purpose: str) -> dict[str, str]:
    """Job ``Meta``, so the Nomad UI says what a job is: ``sqlrs_managed`` (the appliance's own: the
    reconciler lists those), ``sqlrs_purpose`` (a ``purpose`` label overrides the default),
    ``sqlrs_volume``, then the org, instance, state and job ids that apply (``META_KEYS``)."""
    meta = {"sqlrs_purpose": purpose}
    for name, value in _labels(labels).items():
        key = META_KEYS.get(name) or "sqlrs_" + re.sub(r"[^A-Za-z0-9_]", "_", name).removeprefix("sqlrs_")
        if not _META_KEY.match(key):
            raise InvalidArgument(f"label {name!r} cannot be a Nomad Meta key")
        meta[key] = value[:1024]
    # Last, so no label can pass a job off as someone else's or as serving another clone.
    return {**meta, "sqlrs_managed": "true", "sqlrs_volume": os.path.realpath(volume)}


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


def instance_job(template: Path, shared: JobSettings, *, volume: Path, pgdata: Path, run_dir: Path,
                 port: int, listen: str, tcp: bool, user: str, labels: Mapping[str, str] | None,
                 tls: bool = False) -> dict:
    """The batch job that runs Postgres on ``pgdata`` until it is signalled (serving TLS with the
    certificate in its run dir when ``tls``)."""
    job_id = server_job_id(volume, labels)
    meta = meta_from_labels(labels, volume, "instance")
    networks = [{"Mode": "host", "ReservedPorts": [{"Label": "pg", "Value": port}]}] if tcp else None
    args = ["-D", CONTAINER_PGDATA, *server_options(listen=listen, port=port, run_dir_seen=CONTAINER_RUN_DIR, tls=tls)]
    return _job(template, shared, job_id=job_id, meta=meta, networks=networks, network_mode="host",
                command="postgres", args=args, user=user, mounts=_mounts(pgdata, run_dir),
                description=_description(meta))


def initdb_job(template: Path, shared: JobSettings, *, volume: Path, pgdata: Path, user: str,
               initdb_args: list[str]) -> dict:
    """A short batch job that runs initdb into an empty ``pgdata`` and exits."""
    meta = meta_from_labels(None, volume, "initdb")
    return _job(template, shared, job_id=initdb_job_id(volume), meta=meta, networks=None,
                network_mode="none", command="initdb", args=["-D", CONTAINER_PGDATA, *initdb_args],
                user=user, mounts=_mounts(pgdata, None), description=_description(meta))


def _description(meta: Mapping[str, str]) -> str:
    """The line the Nomad UI shows under the job's name: Postgres for what, of which org, on which clone."""
    org = f" of org {meta['sqlrs_org']}" if meta.get("sqlrs_org") else ""
    return f"sqlrs Postgres ({meta['sqlrs_purpose']}){org} on {meta['sqlrs_volume']}"


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
