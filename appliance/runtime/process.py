"""The ``process`` runtime: the host's Postgres binaries, clusters started with ``pg_ctl``.

Postgres refuses to run as root, so when we are root every Postgres tool runs as an
unprivileged OS user (default ``postgres``) through :class:`appliance.shell.RunAs`.
Nothing about where a cluster listens is written into pgdata: listen address, port and
socket directory are passed at start, so one snapshot can run as many clones side by side.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import re
import shlex
import shutil
import signal
import time
from pathlib import Path
from typing import Mapping

import psycopg2

from appliance.errors import CommandFailed, Conflict, InternalError, InvalidArgument, NotFound
from appliance.shell import RunAs, Runner, child_env
from appliance.runtime.base import SUPERUSER, Endpoint, Limits, StopMode, pgdata_of
from appliance.isolation.sandbox import Sandbox, real
from appliance.runtime.cluster import (INITDB_OPTIONS, checked_start_inputs, cluster_identity, configure_new_cluster, match_image,
                      owner, postmaster_pid_lines, prepare_empty_pgdata, prepare_run_dir, safe_path, says_ready)
from appliance.runtime import admin_connections
from appliance.runtime.tenant_files import read_tail
from appliance.runtime.admin_connections import ReadyPasswords, WarmConnections
from appliance.runtime.shared_memory import Segments, mapped_segments, remove_segments
from appliance.runtime.scram import ITERATIONS as SCRAM_ITERATIONS, scram_sha256_verifier

# Paths end up inside the shell command pg_ctl builds (``-D "…"``, ``-l "…"``, ``-o …``) and
# in Postgres's comma-separated socket list, so only plainly safe characters are accepted.
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TOOLS = ("postgres", "initdb", "pg_ctl", "psql", "pg_controldata")
_KILL_WAIT_SECONDS = 30.0


class ProcessRuntime:
    """Runs clusters as child processes of ``pg_ctl`` on this host."""

    enforces_limits = False  # plain processes: no cgroup of their own (docs/operations.md says so)

    name = "process"
    restart_after_crash = True

    def __init__(self, runner: Runner, *, pg_bin_dir: Path | None = None, os_user: str | None = None,
                 start_timeout: int = 60, stop_timeout: int = 60, scram_iterations: int = SCRAM_ITERATIONS,
                 sandbox: Sandbox | None = None):
        self._runner = runner
        self.sandbox = sandbox or Sandbox(False)
        self.bin_dir = find_bin_dir(runner, pg_bin_dir)
        self.os_user, self.run_as, self._home = _os_identity(os_user)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._image_cache: tuple[tuple[int, int, int], str, str] | None = None
        self._warm = WarmConnections()
        self.scram_iterations = scram_iterations
        self._passwords = ReadyPasswords(lambda p: scram_sha256_verifier(p, iterations=scram_iterations))

    # --- images -------------------------------------------------------------------------
    def installed_image(self) -> tuple[str, str]:
        """``(postgres:<major>, pinned id)``; the pin changes whenever the binaries do."""
        binary = self.bin_dir / "postgres"
        st = binary.stat()
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._image_cache is None or self._image_cache[0] != key:
            version = self._run([binary, "--version"], run_as=self.run_as).stdout.strip()
            match = re.search(r"\(PostgreSQL\) (\d+)", version)
            if not match:
                raise InternalError(f"cannot parse the Postgres version from {version!r}")
            digest = hashlib.sha256(f"{version}\n{self.bin_dir}".encode()).hexdigest()
            tag = f"postgres:{match.group(1)}"
            self._image_cache = (key, tag, f"{tag}@sha256:{digest}")
        return self._image_cache[1], self._image_cache[2]

    def resolve_image(self, image_id: str) -> str:
        tag, pinned = self.installed_image()
        return match_image(image_id, tag, pinned)

    # --- cluster lifecycle ----------------------------------------------------------------
    def init_cluster(self, volume: Path, image: str) -> None:
        self.resolve_image(image)
        identity = self.identity(volume)
        pgdata = prepare_empty_pgdata(volume, owner(identity))
        self._run([
            self.bin_dir / "initdb", "-D", pgdata, "-U", SUPERUSER, *INITDB_OPTIONS,
        ], run_as=identity)
        configure_new_cluster(pgdata)
        self._flush(pgdata)

    def start(self, volume: Path, run_dir: Path, *, port: int, listen_host: str | None,
              labels: Mapping[str, str] | None = None, limits: Limits | None = None) -> Endpoint:
        pgdata = self._existing_pgdata(volume)
        run_dir, port, listen = checked_start_inputs(run_dir, port, listen_host)
        if self.is_running(volume):
            raise Conflict(f"the cluster in {volume} is already running")
        _remove_stale_pidfile(pgdata)
        identity = self.identity(volume)
        prepare_run_dir(run_dir, port, owner(identity))
        if self.sandbox.enabled:  # the sandbox binds real paths: name them so inside
            pgdata, run_dir = real(pgdata), real(run_dir)
        log = run_dir / "postgres.log"
        options = " ".join([
            "-c", f"listen_addresses={shlex.quote(listen)}",
            "-c", f"port={port}",
            "-c", f"unix_socket_directories={shlex.quote(str(run_dir))}",
        ])
        argv = [self.bin_dir / "pg_ctl", "-D", pgdata, "-l", log, "-W", "-o", options, "start"]
        try:
            self._run(self.sandbox.server(argv, writable=[pgdata.parent, run_dir]), run_as=identity,
                      timeout=self.start_timeout + 30)
            self._wait_until_ready(pgdata, argv, log)
        except CommandFailed as exc:
            self._stop_quietly(volume)  # never leave a half-started server behind
            stderr = exc.stderr or ""
            raise CommandFailed(
                [os.fspath(a) for a in argv], exc.returncode,
                f"{stderr}\n--- tail of {log} ---\n{_tail(log)}",
            ) from None
        return Endpoint(host=listen_host, port=port, socket_dir=run_dir, user=SUPERUSER)

    def _wait_until_ready(self, pgdata: Path, argv: list, log: Path) -> None:
        """Poll postmaster.pid for "ready" every few ms; ``pg_ctl -w`` polls only every 100 ms,
        which is most of a cache hit's time to a usable DSN.

        Until postmaster.pid names the postmaster, the process ``pg_ctl`` forked is followed (one
        pid from pg_ctl's child through its shell to the postmaster): the wait gives up only
        when that process has exited or ``start_timeout`` has passed, however slowly a busy
        machine lets it read its configuration."""
        started = time.monotonic()
        starter = _started_for(pgdata)
        while time.monotonic() - started < self.start_timeout:
            lines = postmaster_pid_lines(pgdata)
            if says_ready(lines):
                return
            if lines and lines[0].isdigit():
                if not _is_cluster_process(int(lines[0]), _where(pgdata)):
                    break  # the postmaster exited: the log says why
            elif not any(_still_starting(pid, pgdata) for pid in starter):
                break  # it died before writing its lock file (bad settings, port taken, ...)
            time.sleep(0.003)
        for pid in starter:  # past the timeout and still not writing its lock file: nothing may stay
            if _still_starting(pid, pgdata):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        raise CommandFailed([os.fspath(a) for a in argv], 1, f"postgres did not become ready\n{_tail(log)}")

    def stop(self, volume: Path, *, mode: StopMode = "fast") -> None:
        if mode not in ("fast", "immediate"):
            raise InvalidArgument(f"stop mode must be 'fast' or 'immediate', not {mode!r}")
        pgdata = pgdata_of(safe_path(volume, "volume"))
        if not self.is_running(volume):
            return
        if self._postmaster_pid(pgdata) is not None:
            try:
                self._run([self.bin_dir / "pg_ctl", "-D", pgdata, "-m", mode, "-w",
                           "-t", str(self.stop_timeout), "stop"], run_as=self.identity(pgdata),
                          timeout=self.stop_timeout + 30)
            except CommandFailed:  # a timeout too (CommandTimedOut)
                pass  # stale or wedged postmaster: fall through to killing what is left
            else:
                if mode == "fast":
                    self._flush(pgdata)
                return
        self._kill_cluster(pgdata)

    def health(self) -> str:
        missing = [tool for tool in _TOOLS if not (self.bin_dir / tool).is_file()]
        return f"error: missing {', '.join(missing)} in {self.bin_dir}" if missing else "ok"

    def is_running(self, volume: Path) -> bool:
        pgdata = pgdata_of(safe_path(volume, "volume"))
        if not pgdata.exists():
            return bool(_cluster_pids(pgdata))  # its clone was deleted under it: still running
        if not (pgdata / "postmaster.pid").exists():
            return False  # a clean stop removes it; without it no backend can be left
        return self._postmaster_pid(pgdata) is not None or bool(_cluster_pids(pgdata))

    def running_volumes(self) -> list[Path]:
        """Clones with a server of ours on them, read from /proc: a postgres chdirs into its
        pgdata, which is ``<clone>/pgdata`` (or, if the clone was deleted under it, was)."""
        found = set()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                exe = os.readlink(f"/proc/{entry.name}/exe").removesuffix(" (deleted)")
                cwd = Path(os.readlink(f"/proc/{entry.name}/cwd").removesuffix(" (deleted)"))
            except OSError:
                continue
            if os.path.dirname(exe) == os.path.realpath(self.bin_dir) and cwd.name == "pgdata":
                found.add(cwd.parent)
        return sorted(found)

    # --- talking to a running cluster ---------------------------------------------------------
    def psql_command(self, endpoint: Endpoint, dbname: str = "postgres") -> list[str]:
        if not dbname or "=" in dbname or re.match(r"^postgres(ql)?://", dbname):
            raise InvalidArgument("dbname must be a database name, not a connection string")
        return [str(self.bin_dir / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", str(endpoint.socket_dir),
                "-p", str(endpoint.port), "-U", endpoint.user, "-d", dbname]

    def command_env(self) -> dict[str, str]:
        """A clean environment for Postgres tools: no inherited PG* variables can redirect
        a connection, and messages are in the C locale so they can be parsed."""
        return child_env(lang="C", home=self._home, LC_ALL="C")

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

    # --- helpers --------------------------------------------------------------------------
    def identity(self, path: Path) -> RunAs | None:
        """Who runs the tools of the cluster at ``path`` (see ``cluster_identity``)."""
        return cluster_identity(path, self.run_as)

    def _run(self, argv: list, *, run_as: RunAs | None, input: str | None = None, timeout: float | None = None):
        return self._runner(argv, input=input, env=self.command_env(), cwd="/", timeout=timeout,
                            run_as=run_as)

    def _psql(self, endpoint: Endpoint, sql: str) -> str:
        return self._run(self.psql_command(endpoint) + ["-q", "-A", "-t"], input=sql,
                         run_as=self.identity(endpoint.socket_dir)).stdout

    def _flush(self, pgdata: Path) -> None:
        """Write the cluster's files to disk once (fsync is off inside Postgres).

        ``initdb --sync-only`` fsyncs just this pgdata, unlike syncfs, which would also
        wait for every other instance's dirty pages on the same filesystem."""
        if os.path.islink(pgdata):
            return  # replaced by a link (to another org's?): nothing of this cluster to flush
        self._run([self.bin_dir / "initdb", "--sync-only", "-D", pgdata], run_as=self.identity(pgdata))

    def _existing_pgdata(self, volume: Path) -> Path:
        pgdata = pgdata_of(safe_path(volume, "volume"))
        if os.path.islink(pgdata):
            raise InvalidArgument(f"the pgdata of volume {volume.name} was replaced by a link")
        if not (pgdata / "PG_VERSION").is_file():
            raise NotFound(f"no cluster in volume {volume}")
        return pgdata

    def _postmaster_pid(self, pgdata: Path) -> int | None:
        """The live postmaster named by postmaster.pid, if it really runs this pgdata."""
        try:
            pid = int(postmaster_pid_lines(pgdata)[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid > 0 and _is_cluster_process(pid, _where(pgdata)) else None

    def _kill_cluster(self, pgdata: Path) -> None:
        """SIGKILL the postmaster, then any backend it orphaned, and wait until all are gone;
        then remove the shared memory they could not (see shared_memory)."""
        deadline = time.monotonic() + _KILL_WAIT_SECONDS
        segments: Segments = {}
        while True:
            postmaster = self._postmaster_pid(pgdata)
            pids = ([postmaster] if postmaster else []) + [p for p in _cluster_pids(pgdata) if p != postmaster]
            if not pids:
                _remove_stale_pidfile(pgdata)
                remove_segments(segments)
                return
            if time.monotonic() > deadline:
                raise InternalError(f"processes {pids} of {pgdata} survive SIGKILL")
            segments.update(mapped_segments(pids))
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.05)

    def _stop_quietly(self, volume: Path) -> None:
        try:
            self.stop(volume, mode="immediate")
        except Exception:  # noqa: BLE001 - best effort while reporting the real failure
            pass


# --- module helpers ---------------------------------------------------------------------------
def find_bin_dir(runner: Runner, configured: Path | None) -> Path:
    """The configured bin dir, else the newest /usr/lib/postgresql/*/bin, else pg_config's."""
    if configured is not None:
        if not _has_tools(Path(configured)):
            raise InvalidArgument(f"{configured} does not contain the PostgreSQL tools {', '.join(_TOOLS)}")
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
    return all(os.access(bin_dir / tool, os.X_OK) for tool in _TOOLS)


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


def _is_cluster_process(pid: int, real_pgdata: str) -> bool:
    """A live (not zombie) postgres process whose working directory is this pgdata.

    Postgres chdirs into its data directory, which tells our clusters apart from each
    other and from an unrelated process that inherited a stale pid."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")  # a clone removed under it
        exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return False
    # A server whose org moved its pgdata aside (``mv pgdata x``) runs in its volume all the same.
    in_volume = cwd == real_pgdata or cwd.startswith(os.path.dirname(real_pgdata) + "/")
    return in_volume and os.path.basename(exe) in ("postgres", "postmaster")


def _where(pgdata: Path) -> str:
    """The real path of a pgdata, its last component not followed: the org may have replaced its
    pgdata by a link to another org's, whose servers must never be taken for this one's."""
    return os.path.join(os.path.realpath(pgdata.parent), pgdata.name)


def _cluster_pids(pgdata: Path) -> list[int]:
    real = _where(pgdata)
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit() and _is_cluster_process(int(e.name), real)]


def _started_for(pgdata: Path) -> list[int]:
    """Live processes whose command line names this pgdata: what ``pg_ctl start`` forked (still
    pg_ctl, its ``sh -c exec postgres``, or already the postmaster: the pid stays the same)."""
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit() and _still_starting(int(e.name), pgdata)]


def _still_starting(pid: int, pgdata: Path) -> bool:
    """The process is alive (not a zombie) and its command line still names this pgdata (a
    reused pid would not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            named = os.fsencode(pgdata) in cmdline.read()
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X") and named


def _remove_stale_pidfile(pgdata: Path) -> None:
    """Drop postmaster.pid once no process of the cluster is alive.

    Postgres's own check is ``kill(pid, 0)``, which an unreaped zombie postmaster (its
    parent is whoever adopted it) passes, so it would refuse to start forever. We only
    get here after proving no process has this pgdata as its working directory, which is
    what the lock file protects against.
    """
    if not _cluster_pids(pgdata) and not os.path.islink(pgdata):
        (pgdata / "postmaster.pid").unlink(missing_ok=True)


def _tail(log: Path, max_bytes: int = 4000) -> str:
    try:
        return read_tail(log, max_bytes).decode(errors="replace")
    except OSError:
        return "(no log)"
