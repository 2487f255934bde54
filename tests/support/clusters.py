"""Postgres clusters for the runtime tests: template clusters (one initdb per runtime, copied for
every test as a clone would be), and what tests do to a running cluster behind its runtime's back."""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from appliance.runtime.base import InstanceRuntime
from appliance.shell import Runner


class ClusterTemplates:
    """One initdb per runtime, made by that runtime (so its ``init_cluster`` is exercised), kept
    for the session under ``root`` and handed out as ``cp -a`` copies."""

    def __init__(self, root: Path, runner: Runner) -> None:
        self.root = root
        self._runner = runner
        self._made: dict[str, Path] = {}

    def template(self, runtime: InstanceRuntime) -> Path:
        """The runtime's template cluster, made on first use."""
        if runtime.name not in self._made:
            volume = self.root / f"template-{runtime.name}"
            volume.mkdir()
            try:
                runtime.init_cluster(volume, "postgres")
            except BaseException:
                shutil.rmtree(volume, ignore_errors=True)  # the next test tries again, and says why
                raise
            self._made[runtime.name] = volume
        return self._made[runtime.name]

    def copy(self, runtime: InstanceRuntime, target: Path) -> Path:
        """A fresh cluster volume at ``target``: ``cp -a`` of the runtime's template."""
        self._runner(["cp", "-a", str(self.template(runtime)), str(target)])
        return target


def kill_from_outside(runtime: InstanceRuntime, volume: Path) -> None:
    """SIGKILL a running cluster's postmaster behind the runtime's back (an OOM kill, an operator)."""
    if runtime.name == "docker":
        import docker

        from appliance.runtime.docker import container_name
        pid = docker.from_env().containers.get(container_name(volume)).attrs["State"]["Pid"]  # host pid
    elif runtime.name == "nomad":
        pid = nomad_task_container(volume).attrs["State"]["Pid"]  # host pid of the task's postmaster
    else:
        pid = int((volume / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, signal.SIGKILL)


def nomad_task_container(volume: Path):
    """The container the double started for a volume's instance job (found by Nomad's labels)."""
    found = nomad_task_containers(volume)
    assert len(found) == 1, f"expected one running task container for {volume}, found {len(found)}"
    return found[0]


def nomad_task_containers(volume: Path) -> list:
    """The running containers of the jobs serving a volume: those whose job ID ends in its key."""
    import docker

    from appliance.runtime.nomad_jobs import served_volume_key, volume_key

    labelled = docker.from_env().containers.list(filters={"label": "com.hashicorp.nomad.job_id"})
    return [c for c in labelled if served_volume_key(c.labels["com.hashicorp.nomad.job_id"]) == volume_key(volume)]
