"""The host's Postgres tools, and the part of every runtime built on them.

Whatever runs a cluster's server (a host process, a container, a Nomad task), its pgdata and
socket dir are on this host: psql through the socket, passwords over a driver connection,
``initdb --sync-only`` and the OS identity a cluster's tools run as are the same for every
runtime (:class:`HostTools`). :class:`SharedRuntime` is what each driver mixes in, so that
images resolve, starts are checked and new clusters are finished one way everywhere.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
from pathlib import Path

import psycopg2

from appliance.errors import CommandFailed, Conflict, InvalidArgument, NotFound
from appliance.runtime import admin_connections
from appliance.runtime.admin_connections import ReadyPasswords, WarmConnections
from appliance.runtime.base import Endpoint, InstalledImage, ServerTls
from appliance.runtime.cluster import (
    cluster_identity,
    configure_new_cluster,
    match_image,
    owner,
    prepare_run_dir,
    write_server_tls,
)
from appliance.runtime.postmaster import remove_stale_pidfile
from appliance.runtime.scram import ITERATIONS as SCRAM_ITERATIONS
from appliance.runtime.scram import scram_sha256_verifier
from appliance.shell import RunAs, Runner, child_env

_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
TOOLS = ("postgres", "initdb", "pg_ctl", "psql", "pg_controldata")


class HostTools:
    """This host's Postgres binaries, run as the OS user a cluster belongs to.

    Postgres refuses to run as root, so when we are root every tool runs as an unprivileged
    OS user (default ``postgres``) through :class:`appliance.shell.RunAs`."""

    def __init__(self, runner: Runner, *, pg_bin_dir: Path | None = None, os_user: str | None = None,
                 scram_iterations: int = SCRAM_ITERATIONS):
        self._runner = runner
        self.bin_dir = find_bin_dir(runner, pg_bin_dir)
        self.os_user, self.run_as, self._home = _os_identity(os_user)
        self._warm = WarmConnections()
        self.scram_iterations = scram_iterations
        self._passwords = ReadyPasswords(lambda p: scram_sha256_verifier(p, iterations=scram_iterations))

    def identity(self, path: Path) -> RunAs | None:
        """Who runs the tools of the cluster at ``path`` (see ``cluster_identity``)."""
        return cluster_identity(path, self.run_as)

    def command_env(self) -> dict[str, str]:
        """A clean environment for Postgres tools: no inherited PG* variables can redirect
        a connection, and messages are in the C locale so they can be parsed."""
        return child_env(lang="C", home=self._home, LC_ALL="C")

    def run(self, argv: list, *, run_as: RunAs | None, input: str | None = None, timeout: float | None = None):
        return self._runner(argv, input=input, env=self.command_env(), cwd="/", timeout=timeout,
                            run_as=run_as)

    def flush(self, pgdata: Path) -> None:
        """Write the cluster's files to disk once (fsync is off inside Postgres).

        ``initdb --sync-only`` fsyncs just this pgdata, unlike syncfs, which would also
        wait for every other instance's dirty pages on the same filesystem."""
        if os.path.islink(pgdata):
            return  # replaced by a link (to another org's?): nothing of this cluster to flush
        self.run([self.bin_dir / "initdb", "--sync-only", "-D", pgdata], run_as=self.identity(pgdata))

    # --- talking to a running cluster through its socket -------------------------------------
    def psql_command(self, endpoint: Endpoint, dbname: str = "postgres") -> list[str]:
        if not dbname or "=" in dbname or re.match(r"^postgres(ql)?://", dbname):
            raise InvalidArgument("dbname must be a database name, not a connection string")
        return [str(self.bin_dir / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", str(endpoint.socket_dir),
                "-p", str(endpoint.port), "-U", endpoint.user, "-d", dbname]

    def set_password(self, endpoint: Endpoint, password: str) -> None:
        if not _ROLE.match(endpoint.user):
            raise InvalidArgument(f"unexpected role name {endpoint.user!r}")
        if not isinstance(password, str) or not password:
            raise InvalidArgument("password must be a non-empty string")
        verifier = (self._passwords.verifier_for(password)
                    or scram_sha256_verifier(password, iterations=self.scram_iterations))
        # A driver connection over the private socket, not a psql process (a spawn would be most
        # of a bind's cost); a warm one when the clone waited in the pool (see admin_connections).
        warm = self._warm.take(endpoint)
        try:
            if warm is not None:
                try:
                    with contextlib.closing(warm):
                        admin_connections.store_verifier(warm, endpoint.user, verifier)
                    return
                except psycopg2.OperationalError:
                    pass  # the server restarted since: a fresh connection below
            with contextlib.closing(admin_connections.connect(endpoint)) as conn:
                admin_connections.store_verifier(conn, endpoint.user, verifier)
        except psycopg2.Error as exc:
            message = str(exc).replace(verifier, "<redacted>")
            raise CommandFailed(["set password", endpoint.user, "<redacted>"], 1, message) from None

    def keep_bind_connections(self, endpoints: list[Endpoint]) -> None:
        self._warm.keep(endpoints)
        if endpoints:
            self._passwords.fill()

    def new_password(self) -> str:
        return self._passwords.take()

    def connection_count(self, endpoint: Endpoint) -> int:
        out = self._psql(endpoint, "SELECT count(*) FROM pg_stat_activity "
                                   "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid();\n")
        return int(out.strip())

    def _psql(self, endpoint: Endpoint, sql: str) -> str:
        return self.run(self.psql_command(endpoint) + ["-q", "-A", "-t"], input=sql,
                        run_as=self.identity(endpoint.socket_dir)).stdout


class SharedRuntime:
    """What every runtime driver does the same way; a driver sets ``self._host`` (its
    :class:`HostTools`) and implements ``installed_image`` and ``is_running``."""

    _host: HostTools

    @property
    def os_user(self) -> str:
        """The OS user cluster tools run as when a volume names no owner of its own."""
        return self._host.os_user

    @property
    def run_as(self) -> RunAs | None:
        return self._host.run_as

    @property
    def bin_dir(self) -> Path:
        """The host's Postgres binaries (psql, initdb --sync-only)."""
        return self._host.bin_dir

    def installed_image(self) -> InstalledImage:
        raise NotImplementedError

    def is_running(self, volume: Path) -> bool:
        raise NotImplementedError

    def resolve_image(self, image_id: str) -> str:
        tag, pinned = self.installed_image()
        return match_image(image_id, tag, pinned)

    def identity(self, path: Path) -> RunAs | None:
        """Who the cluster at ``path`` runs as: whoever owns its volume (see ``cluster_identity``)."""
        return self._host.identity(path)

    # --- talking to a running cluster: the host's tools through the socket -------------------
    def psql_command(self, endpoint: Endpoint, dbname: str = "postgres") -> list[str]:
        return self._host.psql_command(endpoint, dbname)

    def command_env(self) -> dict[str, str]:
        return self._host.command_env()

    def set_password(self, endpoint: Endpoint, password: str) -> None:
        self._host.set_password(endpoint, password)

    def keep_bind_connections(self, endpoints: list[Endpoint]) -> None:
        self._host.keep_bind_connections(endpoints)

    def new_password(self) -> str:
        return self._host.new_password()

    def connection_count(self, endpoint: Endpoint) -> int:
        return self._host.connection_count(endpoint)

    # --- steps every driver's init_cluster and start take ------------------------------------
    def _finish_new_cluster(self, pgdata: Path) -> None:
        """Settings and access rules into a freshly initdb'd cluster, then one flush to disk."""
        configure_new_cluster(pgdata)
        self._host.flush(pgdata)

    def _refuse_running(self, volume: Path) -> None:
        if self.is_running(volume):
            raise Conflict(f"the cluster in {volume} is already running")

    def _clear_for_start(self, volume: Path, pgdata: Path, run_dir: Path, port: int,
                         tls: ServerTls | None = None) -> None:
        """Nothing a killed server left may stop the start: a stale postmaster.pid goes, and the
        run dir is made (or kept) the cluster's own, without an old socket lock, holding this
        start's TLS certificate and key (or none)."""
        remove_stale_pidfile(pgdata)
        prepare_run_dir(run_dir, port, owner(self.identity(volume)))
        write_server_tls(run_dir, tls, self.identity(volume))


# --- module helpers ---------------------------------------------------------------------------
def find_bin_dir(runner: Runner, configured: Path | None) -> Path:
    """The configured bin dir, else the newest /usr/lib/postgresql/*/bin, else pg_config's."""
    if configured is not None:
        if not _has_tools(Path(configured)):
            raise InvalidArgument(f"{configured} does not contain the PostgreSQL tools {', '.join(TOOLS)}")
        return Path(configured)
    candidates = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if _has_tools(Path(p))]
    if candidates:
        return max(candidates, key=lambda p: tuple(int(x) for x in re.findall(r"\d+", p.parent.name)))
    if shutil.which("pg_config"):
        found = Path(runner(["pg_config", "--bindir"]).stdout.strip())
        if _has_tools(found):
            return found
    raise NotFound("no PostgreSQL binaries found: install PostgreSQL or set pg_bin_dir")


def _has_tools(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / tool, os.X_OK) for tool in TOOLS)


def _os_identity(os_user: str | None) -> tuple[str, RunAs | None, str]:
    """(user name, RunAs or None, home) of the OS user Postgres runs as."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        if os_user not in (None, me.pw_name):
            raise InvalidArgument(f"running Postgres as {os_user!r} needs root; we run as {me.pw_name!r}")
        return me.pw_name, None, me.pw_dir
    name = os_user or "postgres"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise InvalidArgument(f"OS user {name!r} for Postgres does not exist") from None
    if entry.pw_uid == 0:
        raise InvalidArgument("Postgres refuses to run as root: set an unprivileged instance OS user")
    return name, RunAs(entry.pw_uid, entry.pw_gid), entry.pw_dir
