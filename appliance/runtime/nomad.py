"""The ``nomad`` runtime: each instance (and each initdb) is a Nomad batch job, docker driver.

Jobs are pinned to the Nomad node that holds this host's store, bind-mount only the clone's
pgdata and the instance's run dir, use the host network with the port from the host's pool
(reserved in the job so Nomad knows it is taken), and never restart or reschedule: a dead
instance must be noticed, not revived elsewhere without its volume. Host-side tools (psql
through the socket, ``initdb --sync-only``) are every runtime's (``host_tools``), so a state
behaves the same on every runtime.

Stop: SIGINT (fast) or SIGQUIT (immediate) is sent to the task through Nomad's signal API;
``pg_ctl stop`` from the host cannot work, as the postmaster's pid lives in the container's pid
namespace. Once the allocation is terminal the job is deregistered with ``purge=true``.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nomad.api.exceptions as nomad_errors

import nomad
from appliance.errors import CommandFailed, InternalError, InvalidArgument, NotFound
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
)
from appliance.runtime.host_tools import HostTools, SharedRuntime
from appliance.runtime.nomad_jobs import (
    CONTAINER_RUN_DIR,
    DEFAULT_TEMPLATE,
    JOB_ID_PREFIX,
    TASK_NAME,
    JobSettings,
    initdb_job,
    instance_job,
    served_volume_key,
    volume_key,
)
from appliance.runtime.postmaster import postmaster_pid_lines, says_ready
from appliance.runtime.scram import ITERATIONS as SCRAM_ITERATIONS
from appliance.shell import Runner

_LIVE = ("pending", "running")
_TERMINAL = ("complete", "failed", "lost")
_STOP_SIGNALS = {"fast": "SIGINT", "immediate": "SIGQUIT"}
_INITDB_ARGS = ["-U", SUPERUSER, *INITDB_OPTIONS]


class NomadAPIError(InternalError):
    """Nomad refused or failed a request; the message carries Nomad's answer, never the token."""


class NomadRuntime(SharedRuntime):
    """Runs clusters as Nomad batch jobs through python-nomad."""

    name = "nomad"
    enforces_limits = True
    restart_after_crash = False

    def __init__(self, runner: Runner, *, addr: str, token: str | None, namespace: str,
                 region: str | None, datacenters: Sequence[str], node_id: str | None, image: str,
                 memory_mb: int, cpus: float, os_user: str | None = None,
                 template: Path = DEFAULT_TEMPLATE, start_timeout: int = 60, stop_timeout: int = 60,
                 image_pinner: Callable[[str], tuple[str, str]] | None = None, request_timeout: float = 10,
                 scram_iterations: int = SCRAM_ITERATIONS):
        Limits(memory_mb, cpus)  # refuses what no container could run with
        self._nomad = _client(addr, token, namespace, region, request_timeout)
        self.addr = addr
        self.image = image
        self.template = Path(template)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._pin = remembered_for(PIN_CACHE_SECONDS, image_pinner or _pin_with_local_engine)
        self._host = HostTools(runner, os_user=os_user, scram_iterations=scram_iterations)
        self._shared = JobSettings(namespace=namespace, region=region, datacenters=tuple(datacenters),
                                   node_id=node_id or self._sole_node(), image=image,
                                   memory_mb=memory_mb, cpus=float(cpus))
        # volume key -> the ID of its server's job, as last listed or registered here: a hint that
        # spares is_running a listing of every job. Trusted only when that job runs: another
        # process may have replaced it since.
        self._seen_jobs: dict[str, str] = {}

    @classmethod
    def from_settings(cls, runner: Runner, settings: Any) -> NomadRuntime:
        token = settings.nomad_token.get_secret_value() if settings.nomad_token else None
        return cls(runner, addr=settings.nomad_addr, token=token, namespace=settings.nomad_namespace,
                   region=settings.nomad_region, datacenters=settings.nomad_datacenters,
                   node_id=settings.nomad_node_id, image=settings.docker_image,
                   memory_mb=settings.instance_memory_mb, cpus=settings.instance_cpus,
                   os_user=settings.instance_os_user, scram_iterations=settings.instance_scram_iterations)

    # --- images -------------------------------------------------------------------------
    def installed_image(self) -> InstalledImage:
        """``(postgres:<major>, pinned id)``; the pin is the image id on this node's engine."""
        return InstalledImage(*self._pin(self.image))

    # --- cluster lifecycle ----------------------------------------------------------------
    def init_cluster(self, volume: Path, image: str) -> None:
        """initdb runs as a short batch job of its own, so the cluster is made by the very
        image that will serve it, on the node that holds the volume."""
        pinned = self.resolve_image(image)
        pgdata = prepare_empty_pgdata(volume, owner(self.identity(volume)))
        job = initdb_job(self.template, self._with_image(pinned), volume=volume, pgdata=pgdata,
                         user=self._user(volume), initdb_args=_INITDB_ARGS)
        job_id = job["Job"]["ID"]
        self._purge(job_id)
        self._call(self._nomad.jobs.register_job, job)
        try:
            alloc = self._wait_for_terminal(job_id, self.start_timeout + 60)
            if alloc is None or alloc["ClientStatus"] != "complete":
                raise CommandFailed(["nomad", "job", "run", job_id], 1, self._failure_report(job_id, alloc))
        finally:
            self._purge(job_id)
        self._finish_new_cluster(pgdata)

    def start(self, volume: Path, run_dir: Path, *, port: int, listen_host: str | None,
              labels: Mapping[str, str] | None = None, limits: Limits | None = None,
              tls: ServerTls | None = None) -> Endpoint:
        pgdata, run_dir, port, listen = checked_start(volume, run_dir, port, listen_host)
        self._refuse_running(volume)
        pinned = self.installed_image().pinned
        for dead in self._server_jobs(volume):  # of an earlier run: re-registering one would place nothing
            self._purge(dead)
        self._clear_for_start(volume, pgdata, run_dir, port, tls)
        shared = self._with_image(pinned)
        if limits is not None:
            shared = dataclasses.replace(shared, memory_mb=limits.memory_mb, cpus=float(limits.cpus))
        job = instance_job(self.template, shared, volume=volume, pgdata=pgdata,
                           run_dir=run_dir, port=port, listen=listen, tcp=listen_host is not None,
                           user=self._user(volume), labels=labels, tls=tls is not None)
        job_id = job["Job"]["ID"]
        self._call(self._nomad.jobs.register_job, job)
        self._seen_jobs[volume_key(volume)] = job_id
        try:
            self._wait_until_ready(job_id, pgdata)
        except CommandFailed:
            self._purge(job_id)  # never leave a half-started instance behind
            raise
        return Endpoint(host=listen_host, port=port, socket_dir=run_dir, user=SUPERUSER)

    def stop(self, volume: Path, *, mode: StopMode = "fast") -> None:
        pgdata = checked_stop(volume, mode)
        for job_id in self._server_jobs(volume):
            self._stop_job(job_id, mode)
        if mode == "fast" and (pgdata / "PG_VERSION").is_file() and not (pgdata / "postmaster.pid").exists():
            self._host.flush(pgdata)

    def health(self) -> str:
        """The agent answers and the node holding this host's store is ready."""
        try:
            nodes = {n.get("ID"): n.get("Status") for n in self._call(self._nomad.nodes.get_nodes) or []}
        except (NomadAPIError, NotFound) as exc:
            return f"error: {exc.message}"
        node_id = self._shared.node_id
        status = nodes.get(node_id)
        return "ok" if status == "ready" else f"error: Nomad node {node_id} is {status or 'unknown'}"

    def is_running(self, volume: Path) -> bool:
        """One request when the job last seen for the volume runs (the reconciler's question, for
        every instance, every pass); a listing of the appliance's jobs when it does not."""
        hint = self._seen_jobs.get(volume_key(volume))
        if hint is not None and self._is_live(hint):
            return True
        return any(self._is_live(job_id) for job_id in self._server_jobs(volume))

    def running_volumes(self) -> list[Path]:
        """Clones with a job of this appliance in its namespace (ours by ID prefix and ``Meta``)."""
        found = set()
        for stub in self._call(self._nomad.jobs.get_jobs, prefix=JOB_ID_PREFIX) or []:
            try:
                meta = (self._call(self._nomad.job.get_job, stub["ID"]) or {}).get("Meta") or {}
            except NotFound:
                continue  # purged meanwhile
            if meta.get("sqlrs_managed") == "true" and meta.get("sqlrs_volume"):
                found.add(Path(meta["sqlrs_volume"]))
        return sorted(found)

    def task_logs(self, volume: Path, stream: str = "stderr") -> str:
        """The Postgres task's log as Nomad keeps it (Postgres logs to stderr)."""
        if stream not in ("stdout", "stderr"):
            raise InvalidArgument("stream must be stdout or stderr")
        allocs = [a for job_id in self._server_jobs(volume) for a in self._allocations(job_id)]
        if not allocs:
            raise NotFound(f"no Nomad allocation for volume {volume}")
        latest = max(allocs, key=lambda a: a.get("CreateIndex", 0))
        return self._logs(latest["ID"], stream)

    def job(self, volume: Path) -> dict | None:
        """The volume's Nomad job as Nomad reports it (Meta, Status, ...), or None."""
        for job_id in self._server_jobs(volume):
            try:
                return self._call(self._nomad.job.get_job, job_id)
            except NotFound:
                continue  # purged meanwhile
        return None

    # --- Nomad helpers ---------------------------------------------------------------------
    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One python-nomad call with its exceptions mapped onto ours (no token in messages)."""
        try:
            return method(*args, **kwargs)
        except nomad_errors.URLNotFoundNomadException:
            raise NotFound(f"Nomad has no such object ({_what(method, args)})") from None
        except nomad_errors.URLNotAuthorizedNomadException as exc:
            raise NomadAPIError(f"Nomad at {self.addr} refused the ACL token: {_text(exc)}") from None
        except nomad_errors.BadRequestNomadException as exc:
            raise NomadAPIError(f"Nomad rejected {_what(method, args)}: {_text(exc)}") from None
        except (nomad_errors.BaseNomadException, nomad_errors.TimeoutNomadException) as exc:
            raise NomadAPIError(f"Nomad at {self.addr} failed {_what(method, args)}: {_text(exc)}") from None

    def _server_jobs(self, volume: Path) -> list[str]:
        """The IDs of the jobs of the server on ``volume``, from a listing of the appliance's jobs:
        this version's end in the volume's key, the last version's (``sqlrs-pg-…``) are found too,
        so what an appliance started before an upgrade is still seen running, and stopped."""
        listed = [stub["ID"] for stub in self._call(self._nomad.jobs.get_jobs, prefix=JOB_ID_PREFIX) or []]
        servers = {job_id: key for job_id in listed if (key := served_volume_key(job_id)) is not None}
        self._seen_jobs = {key: job_id for job_id, key in servers.items()}
        wanted = volume_key(volume)
        return [job_id for job_id, key in servers.items() if key == wanted]

    def _is_live(self, job_id: str) -> bool:
        return any(a["ClientStatus"] in _LIVE for a in self._allocations(job_id))

    def _stop_job(self, job_id: str, mode: StopMode) -> None:
        """Signal the task (fast or immediate shutdown), wait for it, keep its log, purge the job."""
        for alloc in self._allocations(job_id):
            if alloc["ClientStatus"] != "running":
                continue
            try:
                self._call(self._nomad.client.allocation.signal_allocation, alloc["ID"], _STOP_SIGNALS[mode], TASK_NAME)
            except NomadAPIError:
                pass  # it exited meanwhile; deregistering below kills whatever is left
            self._wait_for_terminal(job_id, self.stop_timeout)
        self._keep_log(job_id)
        self._purge(job_id)

    def _allocations(self, job_id: str) -> list[dict]:
        try:
            return self._call(self._nomad.job.get_allocations, job_id) or []
        except NotFound:
            return []

    def _keep_log(self, job_id: str) -> None:
        """Nomad forgets a purged job's logs: copy the task's log into its run dir first."""
        try:
            allocs = self._allocations(job_id)
            if not allocs:
                return
            job = self._call(self._nomad.job.get_job, job_id)
            mounts = job["TaskGroups"][0]["Tasks"][0]["Config"].get("mount") or []  # the docker driver's block
            run_dir = next((m.get("source") for m in mounts if m.get("target") == CONTAINER_RUN_DIR), None)
            latest = max(allocs, key=lambda a: a.get("CreateIndex", 0))
            append_server_log(run_dir, self._logs(latest["ID"], "stderr").encode(), self.run_as)
        except (NomadAPIError, NotFound, KeyError, IndexError):
            pass  # the log is a convenience; losing it must not fail a stop

    def _purge(self, job_id: str) -> None:
        try:
            self._call(self._nomad.job.deregister_job, job_id, purge=True)
        except NotFound:
            pass

    def _wait_for_terminal(self, job_id: str, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while True:
            allocs = self._allocations(job_id)
            if allocs and all(a["ClientStatus"] in _TERMINAL for a in allocs):
                return max(allocs, key=lambda a: a.get("CreateIndex", 0))
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def _wait_until_ready(self, job_id: str, pgdata: Path) -> None:
        """Poll postmaster.pid (on the bind mount) for "ready"; ask Nomad every few polls
        whether the allocation died or was never placed."""
        deadline = time.monotonic() + self.start_timeout
        polls = 0
        while time.monotonic() < deadline:
            lines = postmaster_pid_lines(pgdata)
            if says_ready(lines):
                return
            if polls % 10 == 0:
                allocs = self._allocations(job_id)
                if allocs and all(a["ClientStatus"] in _TERMINAL for a in allocs):
                    raise CommandFailed(["nomad", "job", "run", job_id], 1, self._failure_report(job_id, allocs[-1]))
            polls += 1
            time.sleep(0.005)
        allocs = self._allocations(job_id)
        if not allocs:
            raise CommandFailed(["nomad", "job", "run", job_id], 1, f"Nomad placed no allocation for job {job_id}: "
                                "check nomad_node_id and nomad_datacenters")
        raise CommandFailed(["nomad", "job", "run", job_id], 1,
                            f"{self._failure_report(job_id, allocs[-1])}\npostgres did not become ready")

    def _failure_report(self, job_id: str, alloc: dict | None) -> str:
        """Task events and the log tail, for the operator reading the failed job."""
        if alloc is None:
            return f"job {job_id}: no allocation"
        lines = [f"job {job_id} allocation {alloc['ID']} is {alloc['ClientStatus']}"]
        for event in ((alloc.get("TaskStates") or {}).get(TASK_NAME) or {}).get("Events") or []:
            lines.append(f"  {event.get('Type')}: {event.get('DisplayMessage') or event.get('Message') or ''}")
        try:
            lines.append("--- task log ---\n" + self._logs(alloc["ID"], "stderr")[-4000:])
        except (NomadAPIError, NotFound):
            pass
        return "\n".join(lines)

    def _logs(self, alloc_id: str, stream: str) -> str:
        return self._call(self._nomad.client.stream_logs.stream, alloc_id, TASK_NAME, stream, plain=True)

    def _sole_node(self) -> str:
        nodes = [n for n in self._call(self._nomad.nodes.get_nodes) or [] if n.get("Status") == "ready"]
        if len(nodes) != 1:
            raise InvalidArgument(f"Nomad has {len(nodes)} ready nodes: set nomad_node_id to the node "
                                  "that holds this host's store")
        return nodes[0]["ID"]

    def _with_image(self, pinned: str) -> JobSettings:
        """Jobs run the pinned image id, so a state is served by exactly the image that built it."""
        image_id = pinned.partition("@")[2] or self.image
        return JobSettings(**{**self._shared.__dict__, "image": image_id})

    # --- files ----------------------------------------------------------------------------
    def _user(self, volume: Path) -> str:
        """The task runs as the cluster's identity: whoever owns its volume (see cluster_identity)."""
        identity = self.identity(volume)
        if identity is not None:
            return f"{identity.uid}:{identity.gid}"
        return f"{os.getuid()}:{os.getgid()}"


def _client(addr: str, token: str | None, namespace: str, region: str | None, timeout: float) -> nomad.Nomad:
    """A python-nomad client that uses only what we pass: its constructor would otherwise
    fall back to NOMAD_TOKEN / NOMAD_REGION from the environment."""
    client = nomad.Nomad(address=addr.rstrip("/"), token=token, namespace=namespace, region=region,
                         timeout=timeout, verify=True)
    for requester in _requesters(client):
        requester.token = token
        requester.region = region
        requester.namespace = namespace
    return client


def _requesters(client: nomad.Nomad) -> list[Any]:
    found = []
    for value in vars(client).values():
        if hasattr(value, "token") and hasattr(value, "_request"):
            found.append(value)
        for sub in vars(value).values() if hasattr(value, "__dict__") else []:
            if hasattr(sub, "token") and hasattr(sub, "_request"):
                found.append(sub)
    return found


def _pin_with_local_engine(image: str) -> InstalledImage:
    """``(postgres:<major>, postgres:<major>@<image id>)`` from the Docker engine of this node, which
    is the engine Nomad's docker driver uses for jobs pinned here."""
    import docker
    import docker.errors

    try:
        found = docker.from_env().images.get(image)
    except docker.errors.ImageNotFound:
        raise NotFound(f"the Postgres image {image} is not on this node; build it with "
                       "scripts/build-postgres-image") from None
    except docker.errors.DockerException as exc:
        raise InternalError(f"cannot inspect image {image} on this node's Docker engine: {exc}") from None
    tag = image_tag(image, (found.attrs.get("Config") or {}).get("Env"))
    return InstalledImage(tag, f"{tag}@{found.id}")


def _what(method: Callable[..., Any], args: tuple) -> str:
    name = getattr(method, "__name__", "request")
    return f"{name}({args[0]})" if args and isinstance(args[0], str) else name


def _text(exc: Exception) -> str:
    response = getattr(exc, "nomad_resp", None)
    text = getattr(response, "text", None)
    return (text if isinstance(text, str) else str(response or exc)).strip()[:2000]
