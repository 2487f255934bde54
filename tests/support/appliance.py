"""A real appliance for a test module: API, private Redis, RQ worker processes and a store, on
the btrfs image it mounts itself or a fresh zfs pool, with the process, docker or nomad runtime."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.settings import Settings
from appliance.shell import Runner
from tests.e2e.harness import Appliance
from tests.support.docker import ensure_image, require_docker
from tests.support.ports import free_tcp_port
from tests.support.tmpdirs import public_tmpdir
from tests.support.zfs import file_backed_pool

# One instance port range per appliance a test session starts (no two share a port), all below
# the kernel's ephemeral ports (32768 up), which clients' own connections take.
_port_ranges = iter([(12000 + 100 * i, 12099 + 100 * i) for i in range(200)])


def start_appliance(extra_env: dict[str, str] | None = None) -> Appliance:
    if os.geteuid() != 0 and os.environ.get("CI"):
        pytest.fail("the e2e suite runs as root in CI (it mounts a btrfs image)")
    base = public_tmpdir("sqlrs-e2e-")
    (base / "projects").mkdir()  # the one project root: server-side repositories go there
    env = {"SQLRS_PROJECT_ROOTS": json.dumps([str(base / "projects")]), **(extra_env or {})}
    return Appliance(base / "data", free_tcp_port(), port_range=next(_port_ranges), extra_env=env).start()


FAST_RECOVERY = {"SQLRS_JOB_LOST_AFTER_SECONDS": "4", "SQLRS_JOB_HEARTBEAT_SECONDS": "0.5",
                 "SQLRS_RECONCILE_INTERVAL_SECONDS": "1"}


def appliance_on(request, driver: str, extra_env: dict[str, str] | None = None) -> Iterator[Appliance]:
    """A real appliance: ``btrfs`` (the image it mounts itself) or ``zfs`` (a fresh pool) with the
    process runtime, or ``docker``/``nomad`` (the Nomad-API double) runtimes on the btrfs image, or
    on a zfs pool when spelled ``docker-zfs``/``nomad-zfs``.
    Its logs are copied to /tmp/sqlrs-e2e-logs/<module>-<driver> at the end, for post-mortems."""
    runtime, _, store = driver.partition("-")
    with contextlib.ExitStack() as stack:
        env = {**FAST_RECOVERY, **(extra_env or {})}
        if "zfs" in (runtime, store):
            pool_dir = public_tmpdir("sqlrs-zfs-")
            stack.callback(shutil.rmtree, pool_dir, ignore_errors=True)  # after the pool is gone (LIFO)
            dataset, _ = stack.enter_context(file_backed_pool(Runner(), pool_dir, 4 * 1024**3))
            env.update({"SQLRS_STORAGE_BACKEND": "zfs", "SQLRS_ZFS_DATASET": dataset})
        if runtime in ("docker", "nomad"):
            require_docker()
            ensure_image(Settings.model_fields["docker_image"].default)
            env["SQLRS_RUNTIME"] = runtime
            if runtime == "nomad":
                double = request.getfixturevalue("nomad_double")
                env.update({"SQLRS_NOMAD_ADDR": double.addr, "SQLRS_NOMAD_TOKEN": double.token,
                            "SQLRS_NOMAD_NAMESPACE": double.namespace, "SQLRS_NOMAD_NODE_ID": double.node_id})
        app = start_appliance(env)
        stack.callback(shutil.rmtree, app.data_dir.parent, ignore_errors=True)
        module = request.module.__name__.rsplit(".", 1)[-1]
        logs = f"{module}-{driver}" + (f"-{extra_env['SQLRS_DEFAULT_ORG']}" if "SQLRS_DEFAULT_ORG" in (extra_env or {}) else "")
        stack.callback(app.destroy, keep_logs_in=Path("/tmp/sqlrs-e2e-logs") / logs)
        yield app
