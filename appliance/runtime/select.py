"""Choose the instance runtime from settings; nothing outside this module knows which runs."""
from __future__ import annotations

from appliance.settings import Settings
from appliance.shell import Runner
from appliance.isolation.sandbox import Sandbox
from appliance.runtime.base import InstanceRuntime


def open_runtime(settings: Settings, runner: Runner, sandbox: Sandbox | None = None) -> InstanceRuntime:
    """``sandbox`` confines servers that run as host processes (the containers of the other
    runtimes are their own confinement)."""
    if settings.runtime == "docker":
        from appliance.runtime.docker import DockerRuntime
        return DockerRuntime(runner, image=settings.docker_image, memory_mb=settings.instance_memory_mb,
                             cpus=settings.instance_cpus, os_user=settings.instance_os_user,
                             scram_iterations=settings.instance_scram_iterations)
    if settings.runtime == "nomad":
        from appliance.runtime.nomad import NomadRuntime
        return NomadRuntime.from_settings(runner, settings)
    from appliance.runtime.process import ProcessRuntime
    return ProcessRuntime(runner, pg_bin_dir=settings.pg_bin_dir, os_user=settings.instance_os_user,
                          scram_iterations=settings.instance_scram_iterations, sandbox=sandbox)
