"""The ``docker`` runtime: one container per instance, from a Postgres image built offline.

Only the volume's pgdata and the instance's run dir (its unix socket directory) are
bind-mounted, so a container can reach nothing else of the store. Containers use the host
network (ports come from the host's pool, as with the process runtime) and run as the uid that
owns pgdata, so host-side tools (psql as the host's Postgres user, ``initdb --sync-only``) work
on the same files and socket exactly as with the process runtime (``host_tools``). Cluster
settings, hba rules and input validation are every runtime's (``cluster``), so a state built on
one runtime behaves the same on the other.

A container is named after its volume, so ``stop``/``is_running`` find it after a restart of
the appliance, and it never restarts by itself: one that exited without ``stop`` was killed or
crashed, and :meth:`DockerRuntime.exited_instances` reports it to a reconciler.
"""
from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import Mount

from appliance.errors import CommandFailed, InvalidArgument, NotFound
from appliance.runtime.base import SUPERUSER, Endpoint, InstalledImage, Limits, ServerTls, StopMode
from appliance.runtime.cluster import (
    INITDB_OPTIONS,
    PIN_CACHE_SECONDS,
    append_server_log,
    checked_start,
    checked_stop,
    image_tag,
    owner,
    prepare_empty_pgdata,
    remembered_for,
    safe_path,
    server_options,
)
from appliance.runtime.docker_containers import (
    _LABEL_KEY,
    _LABEL_VALUE_MAX,
    _RESERVED_LABELS,
    CONTAINER_PGDATA,
    CONTAINER_RUN_DIR,
    LABEL_PREFIX,
    MANAGED_LABEL,
    VOLUME_LABEL,
    ManagedContainer,
    container_name,
)
from appliance.runtime.docker_containers import container_log as _container_log
from appliance.runtime.docker_containers import engine_error as _engine_error
from appliance.runtime.docker_containers import passwd_tar as _passwd_tar
from appliance.runtime.host_tools import HostTools, SharedRuntime
from appliance.runtime.postmaster import postmaster_pid_lines, remove_stale_pidfile, says_ready
from appliance.runtime.scram import ITERATIONS as SCRAM_ITERATIONS
from appliance.shell import Runner

_GONE = ("exited", "dead")


_NO_RESTART: Any = {"Name": "no"}  # a _RestartPolicy to the type stubs


class DockerRuntime(SharedRuntime):
    """Runs clusters as containers of the local Docker engine (through the Docker SDK)."""

    name = "docker"
    restart_after_crash = False
    enforces_limits = True

    def __init__(self, runner: Runner, *, image: str, memory_mb: int, cpus: float,
                 os_user: str | None = None, client: Any | None = None,
                 start_timeout: int = 60, stop_timeout: int = 60, scram_iterations: int = SCRAM_ITERATIONS):
        self.limits = Limits(memory_mb, cpus)
        self._client = client if client is not None else docker.from_env()
        self.image = image
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        # Host-side tools (psql through the socket, initdb --sync-only), as for every runtime.
        self._host = HostTools(runner, os_user=os_user, scram_iterations=scram_iterations)
        self._inspect_image = remembered_for(PIN_CACHE_SECONDS, self._inspect)

    # --- images -------------------------------------------------------------------------
    def installed_image(self) -> InstalledImage:
        """``(postgres:<major>, postgres:<major>@<local image id>)`` of the configured image."""
        return self._inspect_image()

    def _inspect(self) -> InstalledImage:
        try:
            image = self._client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise NotFound(f"the Postgres image {self.image} is not in the local Docker engine; "
                           "build it with scripts/build-postgres-image") from None
        except docker.errors.DockerException as exc:
            raise _engine_error(["docker", "image", "inspect", self.image], exc) from None
        tag = image_tag(self.image, (image.attrs.get("Config") or {}).get("Env"))
        return InstalledImage(tag, f"{tag}@{image.id}")

    # --- cluster lifecycle ----------------------------------------------------------------
    def init_cluster(self, volume: Path, image: str) -> None:
        image_ref = _local_id(self.resolve_image(image))
        pgdata = prepare_empty_pgdata(volume, owner(self.identity(volume)))
        command = ["initdb", "-D", CONTAINER_PGDATA, "-U", SUPERUSER, *INITDB_OPTIONS]
        self._run_once(image_ref, command, pgdata)
        self._finish_new_cluster(pgdata)

    def start(self, volume: Path, run_dir: Path, *, port: int, listen_host: str | None,
              labels: Mapping[str, str] | None = None, limits: Limits | None = None,
              tls: ServerTls | None = None) -> Endpoint:
        limits = limits or self.limits
        pgdata, run_dir, port, listen = checked_start(volume, run_dir, port, listen_host)
        all_labels = self._labels(volume, labels)
        self._refuse_running(volume)
        name = container_name(volume)
        self._remove_container(name)  # one that was killed from outside and never stopped
        self._clear_for_start(volume, pgdata, run_dir, port, tls)
        image_ref = _local_id(self.installed_image().pinned)
        uid, gid = self._owner_of(pgdata)
        command = ["postgres", "-D", CONTAINER_PGDATA,
                   *server_options(listen=listen, port=port, run_dir_seen=CONTAINER_RUN_DIR, tls=tls is not None)]
        argv = ["docker", "run", "--name", name, image_ref, *command]
        try:
            container = self._create(
                image_ref, command, uid, gid, name=name,
                network_mode="host", labels=all_labels,
                mounts=[Mount(CONTAINER_PGDATA, os.path.realpath(pgdata), type="bind"),
                        Mount(CONTAINER_RUN_DIR, os.path.realpath(run_dir), type="bind")],
                mem_limit=f"{limits.memory_mb}m", memswap_limit=f"{limits.memory_mb}m",
                nano_cpus=int(limits.cpus * 1e9),
            )
            container.start()
        except docker.errors.DockerException as exc:
            self._remove_container(name)
            raise _engine_error(argv, exc) from None
        try:
            self._wait_until_ready(pgdata, container)
        except CommandFailed as exc:
            log = _container_log(container)
            self._remove_container(name)
            raise CommandFailed(argv, exc.returncode, f"{exc.stderr}\n--- container log ---\n{log}") from None
        return Endpoint(host=listen_host, port=port, socket_dir=run_dir, user=SUPERUSER)

    def stop(self, volume: Path, *, mode: StopMode = "fast") -> None:
        pgdata = checked_stop(volume, mode)
        container = self._container(container_name(volume))
        if container is None:
            return
        argv = ["docker", "stop", container.name]
        clean = False
        try:
            if container.status == "running":
                # SIGINT = Postgres fast shutdown (checkpoint, clean state); SIGQUIT = immediate.
                clean = self._signal_and_wait(container, "SIGINT" if mode == "fast" else "SIGQUIT")
            self._keep_log(container)
            container.remove(force=True)
        except docker.errors.NotFound:
            pass  # removed concurrently: nothing left to stop
        except docker.errors.DockerException as exc:
            raise _engine_error(argv, exc) from None
        remove_stale_pidfile(pgdata)
        if clean and mode == "fast":
            self._host.flush(pgdata)

    def health(self) -> str:
        try:
            self._client.ping()
            return "ok"
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return f"error: the Docker engine does not answer ({type(exc).__name__})"

    def is_running(self, volume: Path) -> bool:
        container = self._container(container_name(safe_path(volume, "volume")))
        return container is not None and container.status == "running"

    # --- reconciliation -------------------------------------------------------------------
    def list_managed(self) -> list[ManagedContainer]:
        """Every container of this runtime on this engine, running or not (one API call)."""
        try:
            rows = self._client.api.containers(all=True, filters={"label": f"{MANAGED_LABEL}=true"})
        except docker.errors.DockerException as exc:
            raise _engine_error(["docker", "ps", "--all"], exc) from None
        return [ManagedContainer(row["Names"][0].lstrip("/"), dict(row.get("Labels") or {}), row["State"])
                for row in rows]

    def running_volumes(self) -> list[Path]:
        """Clones with a container of ours (running or not: a stopped one still holds its name)."""
        return sorted({Path(c.labels[VOLUME_LABEL]) for c in self.list_managed() if c.labels.get(VOLUME_LABEL)})

    def exited_instances(self) -> list[ManagedContainer]:
        """Containers that ended without :meth:`stop` (which removes them): killed or crashed."""
        return [c for c in self.list_managed() if c.state in _GONE]

    # --- helpers --------------------------------------------------------------------------
    def _labels(self, volume: Path, labels: Mapping[str, str] | None) -> dict[str, str]:
        """Caller labels under ``sqlrs.`` (prefixed when missing) plus the runtime's own."""
        result: dict[str, str] = {}
        for key, value in (labels or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidArgument("container labels must map strings to strings")
            full = key if key.startswith(LABEL_PREFIX) else LABEL_PREFIX + key
            if not _LABEL_KEY.match(full) or len(value) > _LABEL_VALUE_MAX:
                raise InvalidArgument(f"invalid container label {key[:100]!r}")
            if full in _RESERVED_LABELS:
                raise InvalidArgument(f"label {full} is set by the runtime")
            result[full] = value
        result[MANAGED_LABEL] = "true"
        result[VOLUME_LABEL] = os.path.realpath(volume)
        return result

    def _run_once(self, image_ref: str, command: list[str], pgdata: Path) -> None:
        """Run a one-off tool in a container with only pgdata mounted; raise with its output."""
        uid, gid = self._owner_of(pgdata)
        argv = ["docker", "run", "--rm", image_ref, *command]
        container = None
        try:
            container = self._create(
                image_ref, command, uid, gid, network_mode="none", labels={MANAGED_LABEL: "false"},
                mounts=[Mount(CONTAINER_PGDATA, os.path.realpath(pgdata), type="bind")],
                mem_limit=f"{max(self.limits.memory_mb, 256)}m",
            )
            container.start()
            status = container.wait(timeout=self.start_timeout + 60).get("StatusCode", -1)
            if status != 0:
                raise CommandFailed(argv, status, _container_log(container))
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise _engine_error(argv, exc) from None
        finally:
            if container is not None:
                try:
                    container.remove(force=True)
                except docker.errors.DockerException:
                    pass

    def _create(self, image_ref: str, command: list[str], uid: int, gid: int, **options: Any) -> Any:
        """Create (not start) a locked-down container running as ``uid:gid``.

        Postgres tools look their own uid up in /etc/passwd and refuse to run without an entry,
        and the image cannot know the host's uid, so an entry is written into the container
        before it starts; a bind mount of the host's passwd would expose more of the host."""
        container = self._client.containers.create(
            image_ref, command, user=f"{uid}:{gid}", working_dir="/", restart_policy=_NO_RESTART,
            cap_drop=["ALL"], security_opt=["no-new-privileges"], stop_signal="SIGINT", **options)
        try:
            container.put_archive("/", _passwd_tar(self.os_user, uid, gid))
        except docker.errors.DockerException:
            container.remove(force=True)
            raise
        return container

    def _wait_until_ready(self, pgdata: Path, container: Any) -> None:
        """Poll postmaster.pid for "ready" every few ms (as the process runtime does); ask the
        engine now and then whether the container already died, so a failure returns at once."""
        started = time.monotonic()
        polls = 0
        while time.monotonic() - started < self.start_timeout:
            lines = postmaster_pid_lines(pgdata)
            if says_ready(lines):
                return
            polls += 1
            if polls % 16 == 0:
                container.reload()
                if container.status in _GONE:
                    code = container.attrs.get("State", {}).get("ExitCode", 1)
                    raise CommandFailed(["postgres"], code or 1, "the postgres container exited while starting")
            time.sleep(0.003)
        raise CommandFailed(["postgres"], 1, f"postgres did not become ready within {self.start_timeout} s")

    def _signal_and_wait(self, container: Any, signal: str) -> bool:
        """Send the shutdown signal; SIGKILL if it does not end in time. True = exited 0."""
        try:
            container.kill(signal=signal)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: it stopped in the meantime
                raise
        try:
            return container.wait(timeout=self.stop_timeout).get("StatusCode") == 0
        except requests.exceptions.RequestException:
            container.kill(signal="SIGKILL")
            container.wait(timeout=self.stop_timeout)
            return False

    def _keep_log(self, container: Any) -> None:
        """Copy the container's log into its run dir before the container (and its log) goes."""
        run_dir = next((m.get("Source") for m in container.attrs.get("Mounts", [])
                        if m.get("Destination") == CONTAINER_RUN_DIR), None)
        try:
            append_server_log(run_dir, container.logs(stdout=True, stderr=True), self.run_as)
        except docker.errors.DockerException:
            pass  # the log is a convenience; losing it must not fail a stop

    def _container(self, name: str) -> Any | None:
        try:
            return self._client.containers.get(name)
        except docker.errors.NotFound:
            return None
        except docker.errors.DockerException as exc:
            raise _engine_error(["docker", "inspect", name], exc) from None

    def _remove_container(self, name: str) -> None:
        try:
            self._client.api.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:
            raise _engine_error(["docker", "rm", "--force", name], exc) from None

    def _owner_of(self, pgdata: Path) -> tuple[int, int]:
        """Postgres must run as the uid owning pgdata, and never as root."""
        st = pgdata.stat()
        if st.st_uid == 0:
            raise InvalidArgument(f"{pgdata} is owned by root; Postgres refuses to run as root")
        return st.st_uid, st.st_gid


def _local_id(pinned: str) -> str:
    """The engine's image id in a pinned id (``postgres:<major>@<image id>``)."""
    return pinned.partition("@")[2]


__all__ = ["DockerRuntime", "ManagedContainer", "container_name", "MANAGED_LABEL", "VOLUME_LABEL"]
