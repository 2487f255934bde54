"""The zfs driver: one dataset per volume, state and base, mounted where the store expects it.

The store root is the mountpoint of one dataset; a path under it is the child dataset with
the same relative name, because children inherit mountpoints. Layout directories
(``orgs/<org>/states``) are datasets too, so the mapping holds all the way down.

A state is made by ``snapshot`` + ``clone -o readonly=on`` and, once published, ``promote``:
the state owns the snapshot and the build volume becomes its clone, so the volume can be
destroyed at any time.
Instances are clones of ``<state>@state``; a state with instances or child states refuses to
be destroyed (``Conflict``) instead of taking them with it.

Only commands and flags that zfs-fuse (pool v23) shares with OpenZFS 2.x are used: no
``list -p``, no ``create -u``, no ``receive -o origin=``; numbers come from ``zfs get -Hp``.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import BinaryIO

from appliance.errors import CommandFailed, Conflict, InvalidArgument, NotFound
from appliance.shell import Runner
from appliance.storage.base import DriverBase, SendCommand
from appliance.storage.copy import remove_tree

_log = logging.getLogger(__name__)

SNAPSHOT_TAG = "state"
STREAM_FORMAT = "zfs-send"
# Set on a state: the guid of the volume it was frozen from. That volume is the one clone of the
# state that may be detached (promoted back) when the state is destroyed; any other clone blocks.
BUILD_VOLUME_PROPERTY = "sqlrs:build-volume-guid"
_BUSY_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, None)


def dataset_exists(runner: Runner, dataset: str) -> bool:
    """True if ``dataset`` (filesystem or snapshot) exists; other failures are raised."""
    result = runner(["zfs", "list", "-H", "-o", "name", dataset], check=False)
    if result.returncode == 0:
        return True
    if "does not exist" in result.stderr:
        return False
    raise CommandFailed(result.argv, result.returncode, result.stderr, result.stdout)


def pool_exists(runner: Runner, dataset: str) -> bool:
    """True when zfs answers here and ``dataset`` exists: the test for auto-selection.

    Any reason zfs cannot answer (no tools, no daemon, no pool) means "no"."""
    try:
        return dataset_exists(runner, dataset)
    except (CommandFailed, OSError):
        return False


def dataset_mountpoint(runner: Runner, dataset: str) -> Path:
    """Where ``dataset`` is mounted: the root of a store kept on it."""
    value = get_property(runner, dataset, "mountpoint")
    if not value.startswith("/"):
        raise InvalidArgument(f"dataset {dataset} has no usable mountpoint ({value})")
    return Path(value)


def unmount(runner: Runner, dataset: str) -> None:
    """Unmount ``dataset`` and its children; not being mounted is fine."""
    result = runner(["zfs", "umount", dataset], check=False)
    if result.returncode != 0 and "not currently mounted" not in result.stderr:
        raise CommandFailed(result.argv, result.returncode, result.stderr, result.stdout)


def destroy_dataset(runner: Runner, dataset: str, *, recursive: bool = False, with_clones: bool = False) -> None:
    """Unmount, then destroy ``dataset``: ``recursive`` takes its children and snapshots along;
    ``with_clones`` (``-R``) also every clone of them, wherever it is: never for live data."""
    unmount(runner, dataset)
    flag = ["-R"] if with_clones else ["-r"] if recursive else []
    run_while_busy(runner, ["zfs", "destroy", *flag, dataset])


def run_while_busy(runner: Runner, argv: list[str]) -> None:
    """Run a zfs/zpool command that needs datasets unmounted, retrying briefly while "busy".

    zfs-fuse keeps a dataset busy for a moment after an unmount (and for seconds when the
    command has to unmount it itself), so callers unmount first and this covers the moment."""
    for delay in _BUSY_RETRY_DELAYS:
        result = runner(argv, check=False)
        if result.returncode == 0:
            return
        if "is busy" not in result.stderr or delay is None:
            break
        time.sleep(delay)
    raise CommandFailed(result.argv, result.returncode, result.stderr, result.stdout)


def get_property(runner: Runner, dataset: str, prop: str) -> str:
    """One property, exact (bytes, not "1.5M"), as the string zfs prints."""
    return runner(["zfs", "get", "-Hp", "-o", "value", prop, dataset]).stdout.rstrip("\n")


class ZfsDriver(DriverBase):
    """States, bases and volumes as datasets under ``dataset``, stored at its mountpoint."""

    name = "zfs"
    receives = frozenset({STREAM_FORMAT})

    def __init__(self, runner: Runner, dataset: str):
        self._run = runner
        self.dataset = dataset.rstrip("/")
        self.root = Path(os.path.abspath(dataset_mountpoint(runner, self.dataset)))

    # -- the Protocol --------------------------------------------------------------------
    def create_volume(self, path: Path) -> None:
        self._prepare_parent(path)
        self._run(["zfs", "create", self.dataset_of(path)])

    def snapshot(self, volume: Path, target: Path) -> None:
        """Freeze ``volume`` into a read-only clone of its snapshot; ``publish`` promotes it."""
        vol_ds, target_ds = self.dataset_of(volume), self.dataset_of(target)
        snap = _snap(vol_ds)
        if dataset_exists(self._run, snap):  # left by a freeze that was never published
            self._run(["zfs", "destroy", snap])
        self._prepare_parent(target)
        guid = get_property(self._run, vol_ds, "guid")
        self._run(["zfs", "snapshot", snap])
        self._run(["zfs", "clone", "-o", "readonly=on", "-o", f"{BUILD_VOLUME_PROPERTY}={guid}", snap, target_ds])

    def clone(self, snapshot: Path, target: Path) -> None:
        self._prepare_parent(target)
        self._run(["zfs", "clone", _snap(self.dataset_of(snapshot)), self.dataset_of(target)])

    def destroy(self, path: Path) -> None:
        """Destroy a dataset; a leftover plain directory is removed; missing is fine.

        A state whose snapshot has clones (instances, child states) raises ``Conflict`` and
        nothing is destroyed; only the volume it was frozen from is detached first."""
        ds = self.dataset_of(path)
        if not dataset_exists(self._run, ds):
            remove_tree(path)
            return
        clones = self._clones_of(ds)
        build_guid = self._build_volume_guid(ds) if clones else ""
        blocking = [c for c in clones if not (build_guid and get_property(self._run, c, "guid") == build_guid)]
        if blocking:
            names = ", ".join(sorted(self._relative(c) for c in blocking))
            raise Conflict(f"{path.name} still has clones: {names}; destroy them first",
                           {"path": str(path), "clones": sorted(self._relative(c) for c in blocking)})
        if clones:  # only the build volume is left: give it the snapshot back, then drop it
            volume = clones[0]
            self._run(["zfs", "promote", volume])
            destroy_dataset(self._run, ds)
            self._run(["zfs", "destroy", _snap(volume)])
            return
        destroy_dataset(self._run, ds, recursive=True)

    def used_bytes(self, path: Path) -> int:
        """Bytes the dataset refers to, shared with its origin or not (``referenced``)."""
        return int(get_property(self._run, self.dataset_of(path), "referenced"))

    def publish(self, staged: Path, final: Path) -> None:
        """Rename into place; a new state then takes its snapshot from the build volume.

        The promote comes after the rename because zfs-fuse cannot rename a promoted dataset
        while its clone (the build volume) is mounted."""
        if os.path.lexists(final):
            raise Conflict(f"{final.name} already exists", {"path": str(final)})
        staged_ds, final_ds = self.dataset_of(staged), self.dataset_of(final)
        unmount(self._run, staged_ds)
        try:
            run_while_busy(self._run, ["zfs", "rename", staged_ds, final_ds])
        except CommandFailed as exc:
            self._run(["zfs", "mount", staged_ds], check=False)
            if dataset_exists(self._run, final_ds):
                raise Conflict(f"{final.name} already exists", {"path": str(final)}) from exc
            raise
        self._run(["zfs", "mount", final_ds])
        origin = get_property(self._run, final_ds, "origin")
        build_guid = self._build_volume_guid(final_ds)
        if build_guid and origin != "-" and get_property(self._run, origin.split("@")[0], "guid") == build_guid:
            self._run(["zfs", "promote", final_ds])

    def send_command(self, snapshot: Path, parent: Path | None) -> SendCommand:
        argv = ["zfs", "send"]
        if parent is not None:
            argv += ["-i", _snap(self.dataset_of(parent))]
        return SendCommand(argv + [_snap(self.dataset_of(snapshot))], STREAM_FORMAT, parent)

    def receive(self, stream: BinaryIO, staged: Path, fmt: str, parent: Path | None) -> None:
        """Receive a state at ``staged``; it ends up exactly like a locally built one.

        An incremental stream needs ``parent`` here: zfs finds it by the snapshot's guid and
        makes ``staged`` a clone of it (neither ``receive -o origin=`` nor receiving into an
        existing clone works on zfs-fuse)."""
        if fmt != STREAM_FORMAT:
            raise InvalidArgument(f"the {self.name} driver cannot receive a {fmt!r} stream")
        staged_ds = self.dataset_of(staged)
        if parent is not None:
            parent_ds = self.dataset_of(parent)
            if not dataset_exists(self._run, _snap(parent_ds)):
                raise NotFound(f"parent state {parent.name} is not in this store", {"path": str(parent)})
        self._prepare_parent(staged)
        self._run.pipe_into(["zfs", "receive", staged_ds], stream)
        self._run(["zfs", "set", "readonly=on", staged_ds])
        if parent is not None:
            origin = get_property(self._run, staged_ds, "origin")
            if origin != _snap(parent_ds):
                # Same guid, so same bytes: another copy of the parent on this pool was picked.
                _log.warning("received %s as a clone of %s rather than of %s", staged_ds, origin, _snap(parent_ds))

    # -- beyond the Protocol -------------------------------------------------------------
    def destroy_all(self, top: Path) -> None:
        """The pool is the operator's; what the store made lives under the dataset of ``top``."""
        dataset = self.dataset_of(top)
        if dataset_exists(self._run, dataset):
            destroy_dataset(self._run, dataset, recursive=True, with_clones=True)

    def set_quota(self, path: Path, limit_bytes: int | None) -> None:
        """Cap what a dataset may refer to (``refquota``); ``None`` removes the cap."""
        if limit_bytes is not None and limit_bytes <= 0:
            raise InvalidArgument(f"a quota must be positive, got {limit_bytes}")
        value = "none" if limit_bytes is None else str(int(limit_bytes))
        self._run(["zfs", "set", f"refquota={value}", self.dataset_of(path)])

    def dataset_of(self, path: Path) -> str:
        """The dataset a store path maps to (``<root>/a/b`` -> ``<dataset>/a/b``)."""
        try:
            relative = Path(os.path.abspath(path)).relative_to(self.root)
        except ValueError:
            raise InvalidArgument(f"{path} is not under the zfs store root {self.root}") from None
        return "/".join([self.dataset, *relative.parts])

    # -- internals -----------------------------------------------------------------------
    def _prepare_parent(self, path: Path) -> None:
        """Make every layout directory above ``path`` a dataset.

        The store creates them as plain (empty) directories first; zfs cannot mount over a
        non-empty directory, so the empty placeholders are replaced, keeping their modes."""
        parent = Path(os.path.abspath(path)).parent
        if parent == self.root or dataset_exists(self._run, self.dataset_of(parent)):
            return
        chain = [parent]
        while chain[-1].parent != self.root and not dataset_exists(self._run, self.dataset_of(chain[-1].parent)):
            chain.append(chain[-1].parent)
        top = chain[-1]
        modes = {p: os.stat(p).st_mode & 0o7777 for p in chain if os.path.isdir(p)}
        if os.path.lexists(top):
            _require_only_directories(top)
            remove_tree(top)
        self._run(["zfs", "create", "-p", self.dataset_of(parent)])
        for directory, mode in modes.items():
            os.chmod(directory, mode)

    def _clones_of(self, dataset: str) -> list[str]:
        """Filesystems under the store dataset whose origin is a snapshot of ``dataset``."""
        out = self._run(["zfs", "list", "-H", "-o", "name,origin", "-t", "filesystem", "-r", self.dataset]).stdout
        clones = []
        for line in out.splitlines():
            name, _, origin = line.partition("\t")
            if origin.split("@", 1)[0] == dataset:
                clones.append(name)
        return clones

    def _build_volume_guid(self, dataset: str) -> str:
        value = get_property(self._run, dataset, BUILD_VOLUME_PROPERTY)
        return "" if value in ("", "-") else value

    def _relative(self, dataset: str) -> str:
        return dataset[len(self.dataset) + 1:] if dataset.startswith(self.dataset + "/") else dataset


def _snap(dataset: str) -> str:
    return f"{dataset}@{SNAPSHOT_TAG}"


def _require_only_directories(top: Path) -> None:
    for current, _, files in os.walk(top):
        if files:
            raise Conflict(f"{current} holds files, so it cannot become a zfs dataset", {"path": str(current)})
