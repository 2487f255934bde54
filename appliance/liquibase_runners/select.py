"""Which Liquibase runner this host uses (``liquibase_runner``)."""
from __future__ import annotations

from appliance.isolation.sandbox import Sandbox
from appliance.liquibase_runners.base import LiquibaseRunner
from appliance.settings import Settings
from appliance.shell import Runner, unprivileged


def open_liquibase(settings: Settings, runner: Runner, sandbox: Sandbox) -> LiquibaseRunner:
    if settings.liquibase_runner == "docker":
        from appliance.liquibase_runners.container import ContainerLiquibase
        return ContainerLiquibase(runner, settings.liquibase_image, java_opts=settings.liquibase_java_opts)
    from appliance.liquibase_runners.host import LiquibaseCli
    return LiquibaseCli(runner, settings.liquibase_home, java_opts=settings.liquibase_java_opts,
                        java_home=settings.java_home, run_as=unprivileged(settings.liquibase_os_user),
                        sandbox=sandbox, class_archives=settings.data_dir / "liquibase")
