"""What every runtime's Postgres clusters share: their settings and the inputs they accept.

Runtimes differ in how a cluster runs (a host process, a container, a Nomad job), not in how
it is configured; and nothing user-controlled may reach a command line unchecked, whatever
the runtime.
"""
from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from pathlib import Path

from appliance.errors import Conflict, InternalError, InvalidArgument, NotFound
from appliance.runtime.base import ServerTls, pgdata_of
from appliance.runtime.tenant_files import append, replace
from appliance.shell import RunAs

SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+@:/-]*$")
HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1
IMAGE_REF = re.compile(r"^postgres(?::(?P<major>\d+)(?:@sha256:(?P<digest>[0-9a-f]{64}))?)?$")

# Appended to postgresql.conf of every new cluster; snapshots and clones inherit it.
CLUSTER_SETTINGS = """
# --- sqlrs: settings for disposable clones of immutable states ---
# Durability comes from snapshots, not from the WAL: a state is recorded only after a
# clean `pg_ctl -m fast` stop, and the runtime then fsyncs pgdata once (initdb -S).
# Per-commit fsyncs and full-page images would only slow builds and the shutdown
# checkpoint; an instance that loses writes in a host crash is thrown away anyway.
fsync = off
synchronous_commit = off
full_page_writes = off
# No replicas or archives: minimal WAL lets CREATE/COPY in one transaction skip WAL.
wal_level = minimal
max_wal_senders = 0
archive_mode = off
# Fewer checkpoints while a build runs; the shutdown checkpoint writes what is left.
max_wal_size = 1GB
checkpoint_timeout = 30min
# The log goes to the run dir through `pg_ctl -l`, never into pgdata (it would be
# snapshotted and copied into every clone).
logging_collector = off
# Statements may carry password verifiers; never log them.
log_statement = 'none'
log_min_duration_statement = -1
# Only the OS user that runs Postgres may use the socket (local connections are trusted).
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
# Do not probe for huge pages on every start of many small clusters.
huge_pages = off
"""

# Local (socket) connections are trusted: the socket lives in a 0700 run dir of the OS
# user. Every TCP connection, from wherever listen_addresses lets it in, needs SCRAM.
PG_HBA = """# TYPE  DATABASE  USER  ADDRESS  METHOD
local   all       all            trust
host    all       all   all      scram-sha-256
"""


PIN_CACHE_SECONDS = 2.0


def remembered_for(seconds: float, fn):
    """``fn(*args)`` remembered per arguments for ``seconds``. Every prepare asks for its image's
    pin; asking a Docker engine costs milliseconds (a new client even negotiates its API version),
    and an image re-tagged under the same name is seen at most ``seconds`` later."""
    import threading
    import time
    memo: dict = {}
    lock = threading.Lock()

    def remembered(*args):
        now = time.monotonic()
        with lock:
            hit = memo.get(args)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = fn(*args)  # errors are not remembered: a missing image is asked again
        with lock:
            memo[args] = (now + seconds, value)
        return value
    return remembered


def safe_path(path: Path, what: str) -> Path:
    text = os.fspath(path)
    if not SAFE_PATH.match(text) or "/../" in f"{text}/":
        raise InvalidArgument(f"{what} must be an absolute path of letters, digits and ._+@:-")
    return Path(text)


def valid_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidArgument(f"port must be an integer in 1-65535, not {port!r}")
    return port


def valid_listen_host(host: str | None) -> str:
    """Postgres's listen_addresses value: '' (socket only), '*', an IP or a host name."""
    if host is None:
        return ""
    if host == "*" or (isinstance(host, str) and HOSTNAME.match(host)):
        return host
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise InvalidArgument(f"listen host must be an IP address or host name, not {host!r}") from None


def image_tag(image: str, config_env: list[str] | None) -> str:
    """``postgres:<major>`` of a Postgres container image, from its ``PG_MAJOR`` variable or,
    failing that, its tag."""
    env = dict(item.partition("=")[::2] for item in config_env or [])
    major = env.get("PG_MAJOR") or image.rpartition(":")[2]
    if not major.isdigit():
        raise InternalError(f"cannot tell the Postgres major version of image {image}")
    return f"postgres:{major}"


def match_image(image_id: str, tag: str, pinned: str) -> str:
    """The pinned id for a requested image: ``postgres``, ``postgres:<major>`` of the installed
    ``tag``, or the pinned id itself; anything else is refused, naming what this host has."""
    match = IMAGE_REF.match(image_id) if isinstance(image_id, str) else None
    if match and (match.group("major") is None or f"postgres:{match.group('major')}" == tag):
        if match.group("digest") is None or image_id == pinned:
            return pinned
    available = f"{tag}, pinned as {pinned}" if match and match.group("digest") else tag
    shown = image_id[:200] if isinstance(image_id, str) else repr(image_id)
    raise InvalidArgument(f"image {shown} is not available on this host (available: {available})",
                          {"image_id": shown, "available": [tag, pinned]})


# What a stock cluster has and initdb -U sqlrs does not: the ``postgres`` superuser that dumps of
# stock databases name as owner and grantor (``ALTER … OWNER TO postgres``). Run once on each base.
STOCK_ROLES_SQL = ("CREATE ROLE postgres WITH SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS LOGIN; "
                   "COMMENT ON ROLE postgres IS 'the bootstrap superuser of a stock cluster'")

# initdb's options for every runtime (after -D and -U): SCRAM over TCP, trust on the private socket.
INITDB_OPTIONS = ["--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
                  "--no-sync", "--no-instructions"]


def cluster_identity(path: Path, fallback: RunAs | None) -> RunAs | None:
    """Who a cluster's processes run as: whoever owns its volume (or pgdata, or socket dir).

    The store hands each org's volumes to that org's own OS user (appliance.isolation), so a
    runtime never needs to know the org: one org's server, psql and ``COPY … PROGRAM`` are a uid
    no other org shares. A root-owned path (a volume made before isolation) falls back to the
    runtime's instance user; nothing ever runs as root. ``None`` when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return fallback
    return fallback if st.st_uid == 0 else RunAs(st.st_uid, st.st_gid)


def owner(identity: RunAs | None) -> Callable[[Path], None]:
    """A function making a directory ``identity``'s alone (0700)."""
    def own(path: Path) -> None:
        if identity is not None:
            os.chown(path, identity.uid, identity.gid)
        os.chmod(path, 0o700)
    return own


def prepare_empty_pgdata(volume: Path, own: Callable[[Path], None]) -> Path:
    """The volume's pgdata, created empty and owned (via ``own``) by the user Postgres runs as;
    refuses a missing volume or one that already holds a cluster."""
    volume = safe_path(volume, "volume")
    if not volume.is_dir():
        raise NotFound(f"volume {volume} does not exist")
    pgdata = pgdata_of(volume)
    if pgdata.exists() and any(pgdata.iterdir()):
        raise Conflict(f"volume {volume} already holds a cluster")
    own(volume)
    pgdata.mkdir(mode=0o700, exist_ok=True)
    own(pgdata)
    return pgdata


def configure_new_cluster(pgdata: Path) -> None:
    """Give a freshly initdb'd cluster the settings and access rules every runtime uses."""
    with open(pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(CLUSTER_SETTINGS)
    (pgdata / "pg_hba.conf").write_text(PG_HBA, encoding="utf-8")


def existing_pgdata(volume: Path) -> Path:
    """The pgdata of a volume that holds a cluster; a pgdata replaced by a link is refused."""
    pgdata = pgdata_of(safe_path(volume, "volume"))
    if os.path.islink(pgdata):
        raise InvalidArgument(f"the pgdata of volume {volume.name} was replaced by a link")
    if not (pgdata / "PG_VERSION").is_file():
        raise NotFound(f"no cluster in volume {volume}")
    return pgdata


def checked_start(volume: Path, run_dir: Path, port: int,
                  listen_host: str | None) -> tuple[Path, Path, int, str]:
    """(pgdata, run_dir, port, listen_addresses) for a start: the volume holds a cluster, and
    nothing unsafe or unusable gets through."""
    pgdata = existing_pgdata(volume)
    run_dir, port, listen = safe_path(run_dir, "run_dir"), valid_port(port), valid_listen_host(listen_host)
    if len(f"{run_dir}/.s.PGSQL.{port}") > SOCKET_PATH_MAX:
        raise InvalidArgument(f"run_dir {run_dir} is too long for a unix socket path")
    return pgdata, run_dir, port, listen


def checked_stop(volume: Path, mode: str) -> Path:
    """The pgdata of a volume to stop, refusing an unknown stop mode."""
    if mode not in ("fast", "immediate"):
        raise InvalidArgument(f"stop mode must be 'fast' or 'immediate', not {mode!r}")
    return pgdata_of(safe_path(volume, "volume"))


SERVER_LOG = "postgres.log"
TLS_CERT, TLS_KEY = "server.crt", "server.key"  # in the run dir, the server's user's own


def server_options(*, listen: str, port: int, run_dir_seen: str, tls: bool) -> list[str]:
    """The ``-c`` settings every runtime starts Postgres with, ``run_dir_seen`` being the run dir
    as the server sees it (its own path, or where a container mounts it)."""
    options = ["-c", f"listen_addresses={listen}", "-c", f"port={port}", "-c", f"unix_socket_directories={run_dir_seen}"]
    if tls:
        options += ["-c", "ssl=on", "-c", f"ssl_cert_file={run_dir_seen}/{TLS_CERT}",
                    "-c", f"ssl_key_file={run_dir_seen}/{TLS_KEY}", "-c", "ssl_min_protocol_version=TLSv1.2"]
    return options


def write_server_tls(run_dir: Path, tls: ServerTls | None, identity: RunAs | None) -> None:
    """The cluster's certificate and key into its run dir, the server's user's own (Postgres
    refuses a key others may read); without ``tls``, any earlier ones go. The run dir is the
    org's: files are written without following links (``tenant_files``)."""
    owner = (identity.uid, identity.gid) if identity is not None else None
    if tls is None:
        for name in (TLS_CERT, TLS_KEY):
            (run_dir / name).unlink(missing_ok=True)
        return
    replace(run_dir / TLS_CERT, tls.cert_pem, owner, 0o644)
    replace(run_dir / TLS_KEY, tls.key_pem, owner, 0o600)


def prepare_run_dir(run_dir: Path, port: int, own_dir: Callable[[Path], None]) -> None:
    """The run dir is this cluster's alone and nothing of it runs when it starts: a socket lock
    a killed postmaster left names its (possibly zombie) pid and would stop the start."""
    for leftover in (run_dir / f".s.PGSQL.{port}.lock", run_dir / f".s.PGSQL.{port}"):
        leftover.unlink(missing_ok=True)
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    own_dir(run_dir)


def append_server_log(run_dir: str | Path | None, data: bytes, run_as) -> None:
    """Keep a container's Postgres log in its run dir before the container (and with it the
    log) goes: the process runtime writes there directly, so every runtime leaves the same file.
    The run dir is the org's: the file is opened without following links (``tenant_files``)."""
    if not run_dir or not os.path.isdir(run_dir) or not data:
        return
    try:
        append(Path(run_dir) / SERVER_LOG, data, (run_as.uid, run_as.gid) if run_as is not None else None)
    except OSError:
        pass  # the log is a convenience; losing it must not fail a stop
