"""The instance-runtime Protocol every driver (process, docker, nomad) implements.

A runtime turns a *volume* (a writable directory handed over by the storage layer) into a
running Postgres and back. Everything the cluster needs lives in ``volume/pgdata`` so the
volume can be snapshotted after a clean stop and cloned; sockets and logs go to a separate
``run_dir`` that is never snapshotted. Operations a backend cannot do raise
:class:`appliance.errors.NotSupported`; no driver pretends success.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from appliance.errors import InvalidArgument
from appliance.shell import RunAs

#: The cluster superuser every runtime creates; instances hand out its credentials.
SUPERUSER = "sqlrs"

#: Where Postgres data lives inside a volume.
PGDATA_DIRNAME = "pgdata"

StopMode = Literal["fast", "immediate"]


def pgdata_of(volume: Path) -> Path:
    """The data directory inside a volume (one place, so every caller agrees)."""
    return Path(volume) / PGDATA_DIRNAME


class InstalledImage(NamedTuple):
    """The Postgres a runtime serves clusters with."""

    tag: str  # postgres:<major>
    pinned: str  # postgres:<major>@<id>: changes whenever what runs changes (the cache key part)


@dataclass(frozen=True)
class Endpoint:
    """How to reach a running cluster."""

    host: str | None  # TCP address it listens on; None = unix socket only (build instances)
    port: int
    socket_dir: Path
    user: str  # cluster superuser, "sqlrs"


@dataclass(frozen=True)
class ServerTls:
    """A certificate and its key for a cluster to serve TLS with (PEM)."""

    cert_pem: bytes
    key_pem: bytes

    def __repr__(self) -> str:  # the key never reaches a log or a traceback
        return "ServerTls(<certificate and key>)"


@dataclass(frozen=True)
class Limits:
    """CPU and memory for one instance (an org's quota). Container runtimes enforce them; the
    process runtime cannot, and says so (``enforces_limits``)."""

    memory_mb: int
    cpus: float

    def __post_init__(self) -> None:
        if isinstance(self.memory_mb, bool) or not isinstance(self.memory_mb, int) or self.memory_mb < 16:
            raise InvalidArgument(f"instance memory must be an integer of at least 16 MB, not {self.memory_mb!r}")
        if isinstance(self.cpus, bool) or not isinstance(self.cpus, (int, float)) or not 0 < self.cpus <= 1024:
            raise InvalidArgument(f"instance cpus must be a positive number, not {self.cpus!r}")


@runtime_checkable
class InstanceRuntime(Protocol):
    name: str

    @property
    def run_as(self) -> RunAs | None:
        """The identity psql and pg_ctl run as when a volume names no owner; None = the current user."""

    @property
    def os_user(self) -> str:
        """The name of that OS user."""

    def installed_image(self) -> InstalledImage:
        """The Postgres this runtime serves clusters with, as tag and pinned id."""

    def resolve_image(self, image_id: str) -> str:
        """Return the pinned id of an image (the cache key part), or raise InvalidArgument."""

    def command_env(self) -> dict[str, str]:
        """The environment to run the host's Postgres tools in (psql against an endpoint)."""

    def init_cluster(self, volume: Path, image: str) -> None:
        """Create an empty, password-less cluster in ``volume/pgdata``."""

    restart_after_crash: bool
    """Whether an instance found dead is started again (a host reboot took it) or failed
    (a container or scheduler job that was killed or OOM-killed is a fact to report)."""

    enforces_limits: bool
    """Whether ``start(limits=…)`` is enforced (containers) or cannot be (host processes)."""

    def start(self, volume: Path, run_dir: Path, *, port: int, listen_host: str | None,
              labels: Mapping[str, str] | None = None, limits: Limits | None = None,
              tls: ServerTls | None = None) -> Endpoint:
        """Start the cluster; socket and log go to ``run_dir``; returns once it accepts connections.

        ``labels`` (org, job, state, instance ids) let an operator tell what a container or a
        scheduler job is; runtimes without such a place ignore them. ``limits`` override the
        runtime's configured CPU/memory for this cluster where the runtime enforces limits.
        With ``tls`` the cluster also serves TLS on TCP (``ssl = on``), its certificate and key
        kept in ``run_dir`` (never in pgdata: that is snapshotted into every clone)."""

    def stop(self, volume: Path, *, mode: StopMode = "fast") -> None:
        """Stop the cluster (no-op when it is not running); ``fast`` leaves a clean checkpoint."""

    def health(self) -> str:
        """"ok", or what stops this runtime from starting clusters now (for readiness)."""

    def is_running(self, volume: Path) -> bool:
        """Whether any process of this cluster is still alive."""

    def running_volumes(self) -> list[Path]:
        """Every clone this runtime has a server on (a postmaster, a container, a Nomad job),
        as the runtime itself sees it: the reconciler stops those no Control-DB row owns."""

    def psql_command(self, endpoint: Endpoint, dbname: str = "postgres") -> list[str]:
        """The argv prefix that runs psql against the endpoint as the superuser."""

    def set_password(self, endpoint: Endpoint, password: str) -> None:
        """Give the superuser a SCRAM password without the plaintext reaching Postgres."""

    def keep_bind_connections(self, endpoints: list[Endpoint]) -> None:
        """Hold a connection open to exactly these clusters (warm-pool clones), so that
        :meth:`set_password` on one of them skips the connect; each is used once. Also makes
        passwords ready for :meth:`new_password` while there is a pool to bind."""

    def new_password(self) -> str:
        """A fresh random password for :meth:`set_password` (its verifier may be ready)."""

    def connection_count(self, endpoint: Endpoint) -> int:
        """Client connections open right now, not counting the one asking."""
