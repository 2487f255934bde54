"""Everything a process of the appliance needs, built once from ``Settings`` and passed down."""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from functools import cached_property

import peewee
from redis import Redis

from appliance.connections import redis_client
from appliance.control import wakeups
from appliance.control.db import open_database
from appliance.isolation.level import Isolation, choose_isolation
from appliance.isolation.sandbox import Sandbox
from appliance.liquibase_runners.base import LiquibaseRunner
from appliance.liquibase_runners.select import open_liquibase
from appliance.objectstore.ownership import OwnedObjectStore, installation_id
from appliance.objectstore.store import open_object_store
from appliance.runtime.base import InstanceRuntime
from appliance.runtime.select import open_runtime
from appliance.settings import Settings
from appliance.shell import Runner, unprivileged
from appliance.storage.select import choose_store
from appliance.storage.store import SnapshotStore

log = logging.getLogger(__name__)

WAKEUP_TIMEOUTS = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}  # a wake-up is a hint: never wait long


@dataclass
class AppContext:
    settings: Settings
    db: peewee.Database
    runner: Runner
    store: SnapshotStore
    runtime: InstanceRuntime
    storage_warnings: list[str] = field(default_factory=list)
    storage_reason: str = ""
    isolation: Isolation | None = None  # None only in tests that build a context by hand

    @cached_property
    def redis(self) -> Redis:
        """The configured Redis, or the data dir's private one (socket and password file)."""
        return redis_client(self.settings)

    @cached_property
    def objects(self) -> OwnedObjectStore:
        """The object store for artifacts and snapshot streams (S3/MinIO or a local directory);
        what it writes carries this installation's id, and it deletes nothing else."""
        return OwnedObjectStore(open_object_store(self.settings), installation_id())

    @cached_property
    def liquibase(self) -> LiquibaseRunner:
        """The Liquibase runner of this host (prepare:lb)."""
        return open_liquibase(self.settings, self.runner, self.sandbox)

    def identity_of(self, org: str):
        """The OS identity an org's tools run as (see appliance.isolation)."""
        if self.isolation is None:
            return self.runtime.run_as
        return self.isolation.identities.of(org)

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox an org's tools run in (disabled without isolation)."""
        return self.isolation.sandbox if self.isolation is not None else Sandbox(False)

    @property
    def host(self) -> str:
        """This host's id in the registry: its store, port pool and queue belong to it."""
        return self.settings.host_id

    @property
    def sources_dir(self):
        return self.settings.data_dir / "sources"

    @property
    def run_dir(self):
        return self.settings.data_dir / "run"


def build_context(settings: Settings, runner: Runner | None = None, *, wait_for_control_db: bool = False) -> AppContext:
    """``wait_for_control_db``: statements wait (up to ``control_db_retry_seconds``) for an
    unreachable Control DB instead of failing — for workers, never for the API."""
    runner = runner or Runner()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(settings.control_db_url,
                       wait_seconds=settings.control_db_retry_seconds if wait_for_control_db else 0.0)
    choice = choose_store(settings, runner)
    store, warnings = choice.store, choice.warnings
    log.info("storage: %s", choice.reason)
    for warning in warnings:
        log.warning(warning)
    isolation = choose_isolation(settings, runner, unprivileged(settings.instance_os_user or "postgres"))
    log.info("tenant isolation: %s (%s)", isolation.level, isolation.reason)
    store.identities = isolation.identities
    runtime = open_runtime(settings, runner, isolation.sandbox)
    wakeups.publish_with(functools.cache(lambda: redis_client(settings, **WAKEUP_TIMEOUTS)))
    return AppContext(settings=settings, db=db, runner=runner, store=store, runtime=runtime,
                      storage_warnings=warnings, storage_reason=choice.reason, isolation=isolation)
