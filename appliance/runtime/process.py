"""The ``process`` runtime: the host's Postgres binaries, each cluster a postmaster of its own.

A cluster starts as ``pg_ctl start`` would start it (its own session, stdin from /dev/null, its
output appended to the log in the run dir, from a shell that does not wait for it) without
``pg_ctl`` itself, whose start execs the 9 MB ``postgres`` binary once more just to check its
version: about 10 ms of CPU on every cache hit, for nothing.

Postgres refuses to run as root, so when we are root every Postgres tool runs as an
unprivileged OS user (default ``postgres``) through :class:`appliance.shell.RunAs`.
Nothing about where a cluster listens is written into pgdata: listen address, port and
socket directory are passed at start, so one snapshot can run as many clones side by side.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from appliance.errors import CommandFailed, InternalError
from appliance.isolation.sandbox import Sandbox, real
from appliance.runtime.base import SUPERUSER, Endpoint, InstalledImage, Limits, ServerTls, StopMode, pgdata_of
from appliance.runtime.cluster import (
    INITDB_OPTIONS,
    SERVER_LOG,
    checked_start,
    checked_stop,
    owner,
    prepare_empty_pgdata,
    safe_path,
    server_options,
)
from appliance.runtime.host_tools import TOOLS, HostTools, SharedRuntime
from appliance.runtime.postmaster import (
    cluster_pids,
    is_cluster_process,
    postmaster_pid_lines,
    real_pgdata,
    remove_stale_pidfile,
    says_ready,
)
from appliance.runtime.scram import ITERATIONS as SCRAM_ITERATIONS
from appliance.runtime.shared_memory import Segments, mapped_segments, remove_segments
from appliance.runtime.tenant_files import read_tail
from appliance.shell import Runner

STOP_SIGNALS = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT}  # what pg_ctl sends for each mode
# Run in the server's sandbox as the cluster's owner: what ``pg_ctl start`` forks, a postmaster
# in a session of its own (no signal to the appliance's process group reaches it), detached, its
# log created owner-only by this process, never by root.
BACKGROUND_START = 'umask 077; log=$1; shift; setsid "$@" </dev/null >>"$log" 2>&1 &'
STARTER_LOOKUP_AFTER_SECONDS = 0.05  # a postmaster writes its lock file within ms on an idle host

# Paths end up in Postgres's comma-separated socket list, so only plainly safe characters are
# accepted (``checked_start``).
_KILL_WAIT_SECONDS = 30.0


class ProcessRuntime(SharedRuntime):
    """Runs clusters as detached postmasters on this host."""

    enforces_limits = False  # plain processes: no cgroup of their own (docs/operations.md says so)

    name = "process"
    restart_after_crash = True

    def __init__(self, runner: Runner, *, pg_bin_dir: Path | None = None, os_user: str | None = None,
                 start_timeout: int = 60, stop_timeout: int = 60, scram_iterations: int = SCRAM_ITERATIONS,
                 sandbox: Sandbox | None = None):
        self.sandbox = sandbox or Sandbox(False)
        self._host = HostTools(runner, pg_bin_dir=pg_bin_dir, os_user=os_user, scram_iterations=scram_iterations)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._image_cache: tuple[tuple[int, int, int], InstalledImage] | None = None

    # --- images -------------------------------------------------------------------------
    def installed_image(self) -> InstalledImage:
        """``(postgres:<major>, pinned id)``; the pin changes whenever the binaries do."""
        binary = self.bin_dir / "postgres"
        st = binary.stat()
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._image_cache is None or self._image_cache[0] != key:
            version = self._host.run([binary, "--version"], run_as=self.run_as).stdout.strip()
            match = re.search(r"\(PostgreSQL\) (\d+)", version)
            if not match:
                raise InternalError(f"cannot parse the Postgres version from {version!r}")
            digest = hashlib.sha256(f"{version}\n{self.bin_dir}".encode()).hexdigest()
            tag = f"postgres:{match.group(1)}"
            self._image_cache = (key, InstalledImage(tag, f"{tag}@sha256:{digest}"))
        return self._image_cache[1]

    # --- cluster lifecycle ----------------------------------------------------------------
    def init_cluster(self, volume: Path, image: str) -> None:
        self.resolve_image(image)
        identity = self.identity(volume)
        pgdata = prepare_empty_pgdata(volume, owner(identity))
        self._host.run([
            self.bin_dir / "initdb", "-D", pgdata, "-U", SUPERUSER, *INITDB_OPTIONS,
        ], run_as=identity)
        self._finish_new_cluster(pgdata)

    def start(self, volume: Path, run_dir: Path, *, port: int, listen_host: str | None,
              labels: Mapping[str, str] | None = None, limits: Limits | None = None,
              tls: ServerTls | None = None) -> Endpoint:
        pgdata, run_dir, port, listen = checked_start(volume, run_dir, port, listen_host)
        self._refuse_running(volume)
        self._clear_for_start(volume, pgdata, run_dir, port, tls)
        identity = self.identity(volume)
        if self.sandbox.enabled:  # the sandbox binds real paths: name them so inside
            pgdata, run_dir = real(pgdata), real(run_dir)
        log = run_dir / SERVER_LOG
        argv = ["/bin/sh", "-c", BACKGROUND_START, "start", str(log), str(self.bin_dir / "postgres"), "-D", str(pgdata),
                *server_options(listen=listen, port=port, run_dir_seen=str(run_dir), tls=tls is not None)]
        try:
            self._host.run(self.sandbox.server(argv, writable=[pgdata.parent, run_dir]), run_as=identity,
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

        Until postmaster.pid names the postmaster, the process the start forked is followed (one
        pid from the shell's child through ``setsid`` to the postmaster): the wait gives up only
        when that process has exited or ``start_timeout`` has passed, however slowly a busy
        machine lets it read its configuration."""
        started = time.monotonic()
        starter: list[int] | None = None  # found only if the lock file is slow to come: a /proc scan costs ms
        while time.monotonic() - started < self.start_timeout:
            lines = postmaster_pid_lines(pgdata)
            if says_ready(lines):
                return
            if lines and lines[0].isdigit():
                if not is_cluster_process(int(lines[0]), real_pgdata(pgdata)):
                    break  # the postmaster exited: the log says why
            elif time.monotonic() - started >= STARTER_LOOKUP_AFTER_SECONDS:
                starter = _started_for(pgdata) if starter is None else starter
                if not any(_still_starting(pid, pgdata) for pid in starter):
                    break  # it died before writing its lock file (bad settings, port taken, ...)
            time.sleep(0.003)
        for pid in starter if starter is not None else _started_for(pgdata):  # past the timeout: nothing may stay
            if _still_starting(pid, pgdata):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        raise CommandFailed([os.fspath(a) for a in argv], 1, f"postgres did not become ready\n{_tail(log)}")

    def stop(self, volume: Path, *, mode: StopMode = "fast") -> None:
        pgdata = checked_stop(volume, mode)
        if not self.is_running(volume):
            return
        pid = self._postmaster_pid(pgdata)
        if pid is not None and self._signal_and_wait(pid, pgdata, mode):
            if mode == "fast":
                self._host.flush(pgdata)
            return
        self._kill_cluster(pgdata)  # stale or wedged postmaster: kill what is left

    def _signal_and_wait(self, pid: int, pgdata: Path, mode: StopMode) -> bool:
        """What ``pg_ctl stop -m MODE -w`` does (the postmaster's shutdown signal, then wait for it
        to exit), waiting in steps of a few ms instead of pg_ctl's 100: a deleted instance, and
        every built step, stop that much sooner. False if it is still there after ``stop_timeout``."""
        real = real_pgdata(pgdata)
        try:
            os.kill(pid, STOP_SIGNALS[mode])
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline:
            if not is_cluster_process(pid, real):
                return True
            time.sleep(0.003)
        return False

    def health(self) -> str:
        missing = [tool for tool in TOOLS if not (self.bin_dir / tool).is_file()]
        return f"error: missing {', '.join(missing)} in {self.bin_dir}" if missing else "ok"

    def is_running(self, volume: Path) -> bool:
        pgdata = pgdata_of(safe_path(volume, "volume"))
        if not pgdata.exists():
            return bool(cluster_pids(pgdata))  # its clone was deleted under it: still running
        if not (pgdata / "postmaster.pid").exists():
            return False  # a clean stop removes it; without it no backend can be left
        return self._postmaster_pid(pgdata) is not None or bool(cluster_pids(pgdata))

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

    # --- helpers --------------------------------------------------------------------------
    def _postmaster_pid(self, pgdata: Path) -> int | None:
        """The live postmaster named by postmaster.pid, if it really runs this pgdata."""
        try:
            pid = int(postmaster_pid_lines(pgdata)[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid > 0 and is_cluster_process(pid, real_pgdata(pgdata)) else None

    def _kill_cluster(self, pgdata: Path) -> None:
        """SIGKILL the postmaster, then any backend it orphaned, and wait until all are gone;
        then remove the shared memory they could not (see shared_memory)."""
        deadline = time.monotonic() + _KILL_WAIT_SECONDS
        segments: Segments = {}
        while True:
            postmaster = self._postmaster_pid(pgdata)
            pids = ([postmaster] if postmaster else []) + [p for p in cluster_pids(pgdata) if p != postmaster]
            if not pids:
                remove_stale_pidfile(pgdata)
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
        except Exception:
            pass


# --- module helpers ---------------------------------------------------------------------------
def _started_for(pgdata: Path) -> list[int]:
    """Live processes whose command line names this pgdata: what the start forked (still the
    shell, ``setsid``, or already the postmaster: the pid stays the same)."""
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


def _tail(log: Path, max_bytes: int = 4000) -> str:
    try:
        return read_tail(log, max_bytes).decode(errors="replace")
    except OSError:
        return "(no log)"
