"""Runs a Nomad docker-driver task as a real container, the way Nomad's docker driver would.

Only the Config keys our job specs use are translated; any other valid key makes the task
fail with a "Driver Failure" naming it, so the double never silently ignores part of a spec.
"""
from __future__ import annotations

import signal as signals
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.types import Mount

_TRANSLATED = {"image", "command", "args", "entrypoint", "network_mode", "mount", "mounts", "volumes",
               "labels", "hostname", "work_dir", "shm_size", "init", "memory_hard_limit", "privileged",
               "cap_add", "cap_drop", "readonly_rootfs", "pids_limit", "healthchecks", "ulimit", "sysctl"}


class TaskFailure(Exception):
    """The task could not start; ``event`` is the Nomad TaskEvent type to report."""

    def __init__(self, event: str, message: str):
        super().__init__(message)
        self.event = event


@dataclass(frozen=True)
class ContainerState:
    status: str  # created | running | exited | dead | gone
    exit_code: int | None
    started_at: str | None
    finished_at: str | None
    oom_killed: bool = False


class DockerTasks:
    def __init__(self) -> None:
        self.client = docker.from_env()

    def start(self, *, alloc_id: str, job: dict, group: dict, task: dict, task_dir: Path) -> str:
        """Create and start the task's container; returns its id.

        ``task_dir`` holds the rendered ``local/`` templates; a relative bind ``source`` means a
        path in it, as with Nomad's docker driver."""
        config = task.get("Config") or {}
        self._render_templates(task, task_dir)
        unsupported = sorted(set(config) - _TRANSLATED)
        if unsupported:
            raise TaskFailure("Driver Failure", f"the Nomad double does not implement docker config {unsupported}")
        kwargs: dict[str, Any] = {
            "name": f"{task['Name']}-{alloc_id}",
            "detach": True,
            "environment": self._env(alloc_id, job, group, task),
            "labels": self._labels(alloc_id, job, group, task, config.get("labels") or []),
        }
        command: list[str] = []
        if config.get("command"):
            command.append(str(config["command"]))
        command += [str(a) for a in config.get("args") or []]
        if command:
            kwargs["command"] = command
        if config.get("entrypoint"):
            kwargs["entrypoint"] = [str(e) for e in config["entrypoint"]]
        if config.get("network_mode"):
            kwargs["network_mode"] = config["network_mode"]
        mounts = [*self._as_list(config.get("mount")), *self._as_list(config.get("mounts"))]
        if mounts:
            kwargs["mounts"] = [self._mount(m, task_dir) for m in mounts]
        if config.get("volumes"):
            kwargs["volumes"] = list(config["volumes"])
        for key, target in (("hostname", "hostname"), ("work_dir", "working_dir"), ("init", "init"),
                            ("privileged", "privileged"), ("cap_add", "cap_add"), ("cap_drop", "cap_drop"),
                            ("readonly_rootfs", "read_only"), ("pids_limit", "pids_limit")):
            if config.get(key) is not None:
                kwargs[target] = config[key]
        if config.get("shm_size"):
            kwargs["shm_size"] = int(config["shm_size"])
        if config.get("sysctl"):
            kwargs["sysctls"] = {k: str(v) for item in config["sysctl"] for k, v in item.items()}
        if task.get("User"):
            kwargs["user"] = task["User"]
        kwargs.update(self._resources(task.get("Resources") or {}, config))
        try:
            container = self.client.containers.create(config["image"], **kwargs)
        except ImageNotFound as exc:
            raise TaskFailure("Driver Failure", f"Failed to pull `{config['image']}`: {exc.explanation}") from None
        except APIError as exc:
            raise TaskFailure("Driver Failure", f"failed to create container: {exc.explanation}") from None
        try:
            container.start()
        except APIError as exc:
            raise TaskFailure("Driver Failure", f"failed to start container {container.id}: {exc.explanation}") from None
        return container.id

    def state(self, container_id: str) -> ContainerState:
        try:
            attrs = self.client.api.inspect_container(container_id)["State"]
        except NotFound:
            return ContainerState("gone", None, None, None)
        return ContainerState(attrs["Status"], attrs.get("ExitCode"), attrs.get("StartedAt"),
                              attrs.get("FinishedAt"), bool(attrs.get("OOMKilled")))

    def signal(self, container_id: str, signal_name: str) -> None:
        self.client.api.kill(container_id, signal=_signal_number(signal_name))

    def kill(self, container_id: str, kill_signal: str | None, kill_timeout_ns: int) -> None:
        """Nomad's task kill: KillSignal (or ``docker stop``), then SIGKILL after KillTimeout."""
        timeout = max(1, kill_timeout_ns // 1_000_000_000)
        try:
            if kill_signal:
                self.client.api.kill(container_id, signal=_signal_number(kill_signal))
                try:
                    self.client.api.wait(container_id, timeout=timeout)
                except Exception:
                    self.client.api.kill(container_id)
            else:
                self.client.api.stop(container_id, timeout=timeout)
        except (NotFound, APIError):
            pass  # already gone or already stopped

    def remove(self, container_id: str) -> None:
        try:
            self.client.api.remove_container(container_id, force=True)
        except NotFound:
            pass

    def logs(self, container_id: str, stream: str) -> bytes:
        try:
            return self.client.api.logs(container_id, stdout=stream == "stdout", stderr=stream == "stderr")
        except NotFound:
            return b""

    # --- translation helpers -----------------------------------------------------------------
    @staticmethod
    def _as_list(value: Any) -> list[dict]:
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    @staticmethod
    def _render_templates(task: dict, task_dir: Path) -> None:
        """Literal templates only (no Consul/Vault): written where the task expects them."""
        (task_dir / "local").mkdir(parents=True, exist_ok=True)
        for template in task.get("Templates") or []:
            text = template.get("EmbeddedTmpl")
            dest = template.get("DestPath") or ""
            if text is None or "{{" in text or template.get("SourcePath"):
                raise TaskFailure("Template", "the Nomad double renders only literal EmbeddedTmpl templates")
            target = (task_dir / dest).resolve()
            if not str(target).startswith(str(task_dir.resolve()) + "/"):
                raise TaskFailure("Template", f"template destination {dest!r} escapes the task directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            target.chmod(int(template.get("Perms") or "0644", 8))

    @staticmethod
    def _mount(block: dict, task_dir: Path) -> Mount:
        kind = block.get("type") or "volume"
        source = block.get("source")
        if kind == "bind" and source and not source.startswith("/"):
            source = str((task_dir / source).resolve())
        bind = block.get("bind_options") or {}
        if isinstance(bind, list):
            bind = bind[0] if bind else {}
        if kind not in ("bind", "volume", "tmpfs"):
            raise TaskFailure("Driver Failure", f"invalid mount type {kind!r}")
        return Mount(target=block["target"], source=source, type=kind,
                     read_only=bool(block.get("readonly")), propagation=bind.get("propagation"))

    @staticmethod
    def _resources(resources: dict, config: dict) -> dict:
        """Nomad's docker driver: CPU MHz become cpu shares, MemoryMB the hard limit (or the
        soft limit when MemoryMaxMB / memory_hard_limit raises the ceiling)."""
        out: dict[str, Any] = {}
        memory = resources.get("MemoryMB") or 300
        ceiling = resources.get("MemoryMaxMB") or config.get("memory_hard_limit")
        if ceiling and ceiling > memory:
            out["mem_limit"] = f"{int(ceiling)}m"
            out["mem_reservation"] = f"{int(memory)}m"
        else:
            out["mem_limit"] = f"{int(memory)}m"
        out["cpu_shares"] = max(2, int(resources.get("CPU") or 100))
        return out

    @staticmethod
    def _env(alloc_id: str, job: dict, group: dict, task: dict) -> dict[str, str]:
        env = {"NOMAD_ALLOC_ID": alloc_id, "NOMAD_JOB_ID": job["ID"], "NOMAD_JOB_NAME": job.get("Name") or job["ID"],
               "NOMAD_GROUP_NAME": group["Name"], "NOMAD_TASK_NAME": task["Name"],
               "NOMAD_NAMESPACE": job.get("Namespace") or "default"}
        for meta in (job.get("Meta"), group.get("Meta"), task.get("Meta")):
            env.update({f"NOMAD_META_{k}": v for k, v in (meta or {}).items()})
        env.update(task.get("Env") or {})
        return env

    @staticmethod
    def _labels(alloc_id: str, job: dict, group: dict, task: dict, extra: list[dict]) -> dict[str, str]:
        labels = {"com.hashicorp.nomad.alloc_id": alloc_id, "com.hashicorp.nomad.job_id": job["ID"],
                  "com.hashicorp.nomad.task_group_name": group["Name"], "com.hashicorp.nomad.task_name": task["Name"],
                  "com.hashicorp.nomad.namespace": job.get("Namespace") or "default"}
        for item in extra:
            labels.update({k: str(v) for k, v in item.items()})
        return labels


def _signal_number(name: str) -> int:
    try:
        return int(getattr(signals, name.upper() if name.upper().startswith("SIG") else f"SIG{name.upper()}"))
    except AttributeError:
        raise TaskFailure("Signaling", f"unknown signal {name!r}") from None
