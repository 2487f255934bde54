"""Choose the instance runtime from settings; nothing outside this module knows which runs."""
from __future__ import annotations

from appliance.isolation.sandbox import Sandbox
from appliance.runtime.base import InstanceRuntime
from appliance.settings import Settings
from appliance.shell import Runner

# Every runtime, those that own containers before the look at /proc (a teardown asks in this order).
_EVERY_RUNTIME = ("nomad", "docker", "process")
# Runtimes reachable only through settings of their own (an address): asked only when named.
_NAMED_ONLY = {"nomad"}


def runtimes_to_ask(named: set[str]) -> list[str]:
    """The runtimes that may hold a server of a data dir whose settings or records name
    ``named``: those, and every runtime that answers without settings of its own."""
    return [name for name in _EVERY_RUNTIME if name in named or name not in _NAMED_ONLY]


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
