"""Removing an embedded appliance completely: clusters stopped, store emptied, files gone.

What a data dir owns is found from the data dir itself, not from the settings `destroy` runs
with (an appliance served with ``SQLRS_RUNTIME=docker`` is often destroyed without it): the
runtimes its Control DB recorded for its hosts, the clones on disk and in the Control DB, and
every server a runtime reports on a clone under its store (docker containers by their
``sqlrs.volume`` label, Nomad jobs by their meta, postmasters by their working directory).
Last, any container of the local Docker engine that still mounts something under the data dir
or the store (a Liquibase run, a one-off initdb, a task Nomad started) is removed. A runtime the
Control DB names that does not answer stops the teardown before anything is deleted.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import ApplianceError, InternalError
from appliance.runtime.base import InstanceRuntime
from appliance.runtime.select import open_runtime, runtimes_to_ask
from appliance.settings import Settings
from appliance.shell import Runner
from appliance.storage.image import is_btrfs_mount, unmount
from appliance.storage.select import choose_store, image_path
from appliance.storage.store import SnapshotStore

log = logging.getLogger(__name__)


@dataclass
class Recorded:
    """What the data dir's Control DB says it ran: runtime names and clone paths."""

    runtimes: set[str] = field(default_factory=set)
    volumes: set[Path] = field(default_factory=set)


@dataclass
class Teardown:
    """What a teardown stopped and removed, for the operator."""

    stopped: dict[str, list[str]] = field(default_factory=dict)  # runtime name -> clones
    removed_containers: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"stopped {len(v)} {name} server(s)" for name, v in sorted(self.stopped.items()) if v]
        if self.removed_containers:
            parts.append(f"removed container(s) {', '.join(self.removed_containers)}")
        return "; ".join(parts) or "no server was running"


def destroy_data_dir(settings: Settings, runner: Runner | None = None) -> Teardown:
    runner = runner or Runner()
    store = choose_store(settings, runner).store
    roots = _roots(settings, store.root)
    recorded = _recorded(settings, store)
    volumes = recorded.volumes | set(store.volume_paths())
    done = Teardown()
    for runtime, serving in _runtimes(settings, runner, recorded.runtimes):
        served = {v for v in serving if _under(v, roots)}
        for volume in sorted(served | volumes):
            runtime.stop(volume, mode="immediate")
        done.stopped[runtime.name] = sorted(map(str, served))
    done.removed_containers = _remove_containers_mounting(roots)
    store.destroy_all()  # what outlives the directories, e.g. ZFS datasets (the pool is the operator's)
    if settings.store_path.exists() and is_btrfs_mount(settings.store_path) and image_path(settings).exists():
        unmount(settings.store_path, runner)
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    return done


def _roots(settings: Settings, store_root: Path) -> list[str]:
    """The resolved directories whose contents belong to this data dir."""
    return sorted({os.path.realpath(settings.data_dir), os.path.realpath(store_root)})


def _under(path: Path | str, roots: list[str]) -> bool:
    text = os.path.realpath(path)
    return any(text == root or text.startswith(root.rstrip("/") + "/") for root in roots)


def _recorded(settings: Settings, store: SnapshotStore) -> Recorded:
    """The runtimes and clones the Control DB recorded: every row of the data dir's own SQLite,
    this host's rows of a shared PostgreSQL. Nothing when there is no Control DB (none is made)
    or it does not answer (an operator may tear a host down after its Control DB is gone)."""
    url = settings.control_db_url
    own = url.startswith("sqlite:///")
    if own and not os.path.exists(url.removeprefix("sqlite:///")):
        return Recorded()
    from appliance.control.db import UNAVAILABLE, close_database, first_line, open_database
    db = open_database(url)
    try:
        return _rows(settings, store, db, every_host=own)
    except UNAVAILABLE as exc:
        log.warning("the Control DB does not answer (%s): only the settings, the store and the Docker "
                    "engine say what ran here", first_line(exc))
        return Recorded()
    finally:
        close_database(db)


def _rows(settings: Settings, store: SnapshotStore, db, *, every_host: bool) -> Recorded:
    from appliance.control import models as m
    if not db.table_exists(m.Host._meta.table_name):
        return Recorded()

    def mine(model):
        return model.select() if every_host else model.select().where(model.host_id == settings.host_id)

    recorded = Recorded({host.runtime for host in mine(m.Host)})
    for row in [*mine(m.Volume), *mine(m.Instance)]:
        try:
            recorded.volumes.add(store.volume_path(row.org, row.volume_id))
        except ApplianceError:
            continue  # a row naming no valid clone has nothing on disk to stop
    return recorded


def _runtimes(settings: Settings, runner: Runner, recorded: set[str]) -> list[tuple[InstanceRuntime, list[Path]]]:
    """Every runtime that may hold a server of this data dir, with the clones it serves (of any
    data dir): Nomad when the settings or the Control DB name it, the local Docker engine
    whenever it answers (its labels say what is ours), and the process runtime (a look at /proc).
    One the settings or the Control DB name that does not answer is an error: its servers would
    outlive the files they use."""
    required = recorded | {settings.runtime}
    found = []
    for name in runtimes_to_ask(required):  # the owner of a container stops it before a look at /proc
        try:
            runtime = open_runtime(settings.model_copy(update={"runtime": name}), runner)
            found.append((runtime, runtime.running_volumes()))
        except Exception as exc:  # the Docker SDK and python-nomad raise their own errors when nothing answers
            if name in required:
                why = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                raise InternalError(
                    f"this data dir's instances ran on the {name} runtime, which does not answer ({why}); "
                    "nothing was deleted. Give `destroy` the settings that reach it (e.g. SQLRS_NOMAD_ADDR) "
                    "and run it again.") from None
    return found


def _remove_containers_mounting(roots: list[str]) -> list[str]:
    """Force-remove every container of the local engine that mounts something under ``roots``."""
    import docker
    import docker.errors
    try:
        client = docker.from_env()
        rows = client.api.containers(all=True)  # one call; each row lists its mounts' sources
    except Exception:  # no Docker engine here: nothing of ours can run in one
        return []
    removed = []
    for row in rows:
        if any(_under(m["Source"], roots) for m in row.get("Mounts") or [] if m.get("Source")):
            try:
                client.api.remove_container(row["Id"], force=True)
            except docker.errors.NotFound:
                continue  # gone meanwhile
            removed.append(row["Names"][0].lstrip("/"))
    return removed
