"""The LVM thin-pool driver: every volume and state is a thin LV with its own filesystem,
mounted at its path in the store; snapshots and clones are thin snapshots (O(1), shared blocks).

The store still owns the layout: a path ``.../orgs/<org>/<kind>/<name>`` maps to the LV
``<prefix>+<org>+<k>+<name>`` (``k`` = s/b/v) and back. ``+`` and upper case never occur in
store ids, so the mapping is reversible; ``_`` is written as ``U`` so no id can spell one of
lvm2's reserved substrings (``_tdata``, ``_tmeta``, ...). Every LV also carries the tag
``<prefix>`` so ``lvs @<prefix>`` lists ours and nothing else.

States are read-only at the mount, not at the block device: a snapshot of a mounted
filesystem has a journal to replay, which XFS and ext4 only do on a writable device.
XFS needs ``nouuid`` because a snapshot keeps its origin's UUID; it is passed on every XFS
mount so that a clone, a state and their origin can all be mounted at once.
"""
from __future__ import annotations

import logging
import os
import re
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import BinaryIO, NamedTuple

from appliance.errors import CommandFailed, Conflict, InternalError, InvalidArgument, NotFound
from appliance.shell import Runner
from appliance.storage.base import DriverBase, SendCommand
from appliance.storage.copy import TAR_FORMAT
from appliance.storage.lvm_report import LvRecord, lvs_argv, parse_lvs_json
from appliance.storage.store import TEMPORARY_PREFIX, validate_id

_log = logging.getLogger(__name__)

FILESYSTEMS = ("xfs", "ext4")
_KIND_CODES = {"states": "s", "bases": "b", "volumes": "v"}
_CODE_KINDS = {code: kind for kind, code in _KIND_CODES.items()}
_READ_ONLY_KINDS = {"states", "bases"}
_LVM_NAME = re.compile(r"^[a-zA-Z0-9+_.][a-zA-Z0-9+_.-]*$")
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,15}$")
_TEMPORARY = re.compile(r"^" + re.escape(TEMPORARY_PREFIX) + r"(?P<id>.+)-[0-9a-f]+$")
# lvm2 stores names in NAME_LEN (128) bytes with the NUL; the device-mapper name
# "<vg>-<lv>" (hyphens doubled) must fit the same limit.
_MAX_NAME = 127
# `mountpoint` (util-linux) exits 32 for "not a mountpoint"; `lvremove`/`lvs` say this for a missing LV.
_NOT_A_MOUNTPOINT = 32
_MISSING_LV = "Failed to find logical volume"


class PoolUsage(NamedTuple):
    total_bytes: int
    used_bytes: int


class LvmDriver(DriverBase):
    """Thin volumes, thin snapshots and their mounts, all through the runner."""

    name = "lvm"
    receives = frozenset({TAR_FORMAT})  # the stream format is what matters, not which driver wrote it

    def __init__(self, runner: Runner, thin_pool: str, volume_bytes: int, filesystem: str = "xfs",
                 *, prefix: str = "sqlrs"):
        vg, _, pool = thin_pool.partition("/")
        if not (_valid_lvm_name(vg) and _valid_lvm_name(pool)):
            raise InvalidArgument(f"thin_pool must be 'vg/pool' with lvm names, got {thin_pool!r}")
        if filesystem not in FILESYSTEMS:
            raise InvalidArgument(f"filesystem must be one of {FILESYSTEMS}, got {filesystem!r}")
        if not isinstance(volume_bytes, int) or volume_bytes <= 0:
            raise InvalidArgument(f"volume_bytes must be a positive integer, got {volume_bytes!r}")
        if not _PREFIX.match(prefix):
            raise InvalidArgument(f"prefix must match {_PREFIX.pattern}, got {prefix!r}")
        self._run = runner
        self.vg, self.pool = vg, pool
        self.volume_bytes = volume_bytes
        self.filesystem = filesystem
        self.prefix = prefix

    # -- names ---------------------------------------------------------------------------
    def lv_name(self, path: Path) -> str:
        """The LV behind a store path; InvalidArgument for a path outside the store layout."""
        parts = PurePosixPath(path).parts[-4:]
        if len(parts) != 4 or parts[0] != "orgs" or parts[2] not in _KIND_CODES:
            raise InvalidArgument(f"{path} is not <root>/orgs/<org>/<kind>/<id> of a store")
        _, org, kind, entry = parts
        validate_id(org, "org")
        temporary = _TEMPORARY.match(entry)
        validate_id(temporary.group("id") if temporary else entry, "id")
        name = "+".join((self.prefix, org, _KIND_CODES[kind], entry)).replace("_", "U")
        dm_name = f"{self.vg.replace('-', '--')}-{name.replace('-', '--')}"
        if len(name) > _MAX_NAME or len(dm_name) > _MAX_NAME:
            raise InvalidArgument(f"the LV name for {path} would exceed lvm2's {_MAX_NAME} characters",
                                  {"lv_name": name})
        return name

    def relative_path(self, lv_name: str) -> PurePosixPath | None:
        """The store-relative path an LV of ours stands for; None for anybody else's LV."""
        fields = lv_name.split("+")
        if len(fields) != 4 or fields[0] != self.prefix or fields[2] not in _CODE_KINDS:
            return None
        org, entry = fields[1].replace("U", "_"), fields[3].replace("U", "_")
        return PurePosixPath("orgs", org, _CODE_KINDS[fields[2]], entry)

    def device(self, lv_name: str) -> str:
        return f"/dev/{self.vg}/{lv_name}"

    # -- the SnapshotDriver primitives ---------------------------------------------------
    def create_volume(self, path: Path) -> None:
        name = self.lv_name(path)
        with ExitStack() as undo:
            self._run(["lvcreate", "-V", f"{self.volume_bytes}b", "-T", f"{self.vg}/{self.pool}",
                       "-n", name, "--addtag", self.prefix])
            undo.callback(self._remove_lv, name)
            self._run([f"mkfs.{self.filesystem}", "-q", self.device(name)])
            self._mount_new(name, path, read_only=False, undo=undo)
            undo.pop_all()

    def snapshot(self, volume: Path, target: Path) -> None:
        """A read-only state of a volume whose Postgres the caller has already stopped."""
        self._run(["sync", "-f", str(volume)])
        self._thin_snapshot(self.lv_name(volume), target, read_only=True)

    def clone(self, snapshot: Path, target: Path) -> None:
        self._thin_snapshot(self.lv_name(snapshot), target, read_only=False)

    def destroy(self, path: Path) -> None:
        """Unmount, remove the LV, remove the mount point; each step is skipped if already done."""
        name = self.lv_name(path)
        if os.path.isdir(path) and not os.path.islink(path):
            if self._is_mountpoint(path):
                self._run(["umount", str(path)])
        self._remove_lv(name)
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)  # never a recursive delete: a non-empty dir here is a mount we missed
        elif os.path.lexists(path):
            os.unlink(path)

    def used_bytes(self, path: Path) -> int:
        """Pool bytes the LV maps (size x Data%). For an inactive LV lvm2 cannot tell, so its
        virtual size is returned: an upper bound, the safe side for cache accounting."""
        record = self._report_one(self.lv_name(path))
        used = record.used_bytes()
        return record.size_bytes if used is None else used

    def publish(self, staged: Path, final: Path) -> None:
        """Rename the LV and move its mount; ``final``'s directory is claimed first (mkdir is
        exclusive), and a failure after the rename puts the LV back under its staged name."""
        staged_name, final_name = self.lv_name(staged), self.lv_name(final)
        read_only = PurePosixPath(final).parts[-2] in _READ_ONLY_KINDS
        try:
            os.mkdir(final, 0o755)
        except FileExistsError:
            raise Conflict(f"{final.name} already exists", {"path": str(final)}) from None
        renamed = False
        try:
            if self._is_mountpoint(staged):
                self._run(["umount", str(staged)])
            self._rename_lv(staged_name, final_name)
            renamed = True
            self._mount(final_name, final, read_only)
            os.rmdir(staged)
        except BaseException:
            if renamed:
                self._undo_rename(final, final_name, staged_name)
            try:
                os.rmdir(final)
            except OSError:  # keep the original error
                _log.warning("could not remove the mount point %s", final, exc_info=True)
            raise

    def send_command(self, snapshot: Path, parent: Path | None) -> SendCommand:
        """LVM has no send: a full tar of the mounted state, the same stream the copy driver
        makes, so either driver can import the other's exports. ``parent`` is not used."""
        return SendCommand(["tar", "--create", "--file=-", "--numeric-owner", "--sparse",
                            f"--directory={snapshot}", "."], TAR_FORMAT, None)

    def receive(self, stream: BinaryIO, staged: Path, fmt: str, parent: Path | None) -> None:
        """A new thin volume, the tar extracted into it, then remounted read-only. The state is
        a plain thin volume, not a snapshot: clones of it are thin snapshots all the same."""
        if fmt != TAR_FORMAT:
            raise InvalidArgument(f"the {self.name} driver cannot receive a {fmt!r} stream")
        self.create_volume(staged)
        try:
            self._run.pipe_into(["tar", "--extract", "--file=-", "--numeric-owner", "--same-permissions",
                                 "--same-owner", f"--directory={staged}"], stream)
            self._run(["sync", "-f", str(staged)])
            self._run(["umount", str(staged)])
            self._mount(self.lv_name(staged), staged, read_only=True)
        except BaseException:
            self._destroy_quietly(staged)
            raise

    # -- pool-wide -----------------------------------------------------------------------
    def pool_usage(self) -> PoolUsage:
        """The thin pool's size and the bytes its data area has allocated, for the cache."""
        record = self._report_one(self.pool)
        if not record.is_thin_pool:
            raise InvalidArgument(f"{self.vg}/{self.pool} is not a thin pool (lv_attr {record.attr!r})")
        used = record.used_bytes()
        if used is None:
            raise InternalError(f"thin pool {self.vg}/{self.pool} is inactive: lvm2 reports no Data%")
        return PoolUsage(record.size_bytes, used)

    def owned_lvs(self) -> dict[PurePosixPath, LvRecord]:
        """Our LVs in our pool, by store-relative path (tagged, in this VG, named by us)."""
        records = parse_lvs_json(self._run(lvs_argv([f"@{self.prefix}"])).stdout)
        owned = {}
        for record in records:
            relative = self.relative_path(record.name)
            if relative and record.vg == self.vg and record.pool == self.pool and self.prefix in record.tags:
                owned[relative] = record
        return owned

    def activate(self, root: Path) -> None:
        self.mount_all(root)

    def mount_all(self, store_root: Path) -> list[Path]:
        """After a reboot nothing is mounted: activate and mount every LV of ours at its path.
        Returns the paths mounted now; temporaries are left for ``sweep_temporaries``."""
        mounted = []
        for relative, record in sorted(self.owned_lvs().items()):
            path = Path(store_root) / relative
            if relative.name.startswith(TEMPORARY_PREFIX) or (path.is_dir() and self._is_mountpoint(path)):
                continue
            if not record.is_active:
                self._run(["lvchange", "-ay", "-K", f"{self.vg}/{record.name}"])
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
            self._mount(record.name, path, relative.parts[2] in _READ_ONLY_KINDS)
            mounted.append(path)
        return mounted

    # -- internals -----------------------------------------------------------------------
    def _thin_snapshot(self, origin: str, target: Path, read_only: bool) -> None:
        """A thin snapshot (no size: with one lvm2 would make a thick COW snapshot), created
        without the activation-skip flag and activated with -K in case lvm.conf sets it anyway."""
        name = self.lv_name(target)
        with ExitStack() as undo:
            self._run(["lvcreate", "-s", "-kn", "-n", name, "--addtag", self.prefix, f"{self.vg}/{origin}"])
            undo.callback(self._remove_lv, name)
            self._run(["lvchange", "-ay", "-K", f"{self.vg}/{name}"])
            self._mount_new(name, target, read_only, undo)
            undo.pop_all()

    def _mount_new(self, name: str, path: Path, read_only: bool, undo: ExitStack) -> None:
        os.mkdir(path, 0o755)
        undo.callback(os.rmdir, path)
        self._mount(name, path, read_only)

    def _mount(self, name: str, path: Path, read_only: bool) -> None:
        options = ["ro" if read_only else "rw"] + (["nouuid"] if self.filesystem == "xfs" else [])
        self._run(["mount", "-t", self.filesystem, "-o", ",".join(options), self.device(name), str(path)])

    def _is_mountpoint(self, path: Path) -> bool:
        result = self._run(["mountpoint", "-q", str(path)], check=False)
        if result.returncode not in (0, _NOT_A_MOUNTPOINT):
            raise CommandFailed(result.argv, result.returncode, result.stderr, str(result.stdout))
        return result.returncode == 0

    def _remove_lv(self, name: str) -> None:
        result = self._run(["lvremove", "-y", f"{self.vg}/{name}"], check=False)
        if result.returncode != 0 and _MISSING_LV not in result.stderr:
            raise CommandFailed(result.argv, result.returncode, result.stderr, str(result.stdout))

    def _rename_lv(self, old: str, new: str) -> None:
        try:
            self._run(["lvrename", self.vg, old, new])
        except CommandFailed as exc:
            if "already exists" in exc.stderr:
                raise Conflict(f"LV {self.vg}/{new} already exists", {"lv_name": new}) from exc
            raise

    def _undo_rename(self, final: Path, final_name: str, staged_name: str) -> None:
        try:
            if self._is_mountpoint(final):
                self._run(["umount", str(final)])
            self._run(["lvrename", self.vg, final_name, staged_name])
        except Exception:  # keep the original error; sweep_temporaries cannot see this LV
            _log.warning("could not rename LV %s/%s back to %s", self.vg, final_name, staged_name,
                         exc_info=True)

    def _destroy_quietly(self, path: Path) -> None:
        try:
            self.destroy(path)
        except Exception:  # keep the original error; sweep_temporaries retries at start-up
            _log.warning("could not remove %s", path, exc_info=True)

    def _report_one(self, lv: str) -> LvRecord:
        try:
            out = self._run(lvs_argv([f"{self.vg}/{lv}"])).stdout
        except CommandFailed as exc:
            if _MISSING_LV in exc.stderr:
                raise NotFound(f"LV {self.vg}/{lv} does not exist", {"lv_name": lv}) from exc
            raise
        records = [r for r in parse_lvs_json(out) if r.name == lv and r.vg == self.vg]
        if len(records) != 1:
            raise InternalError(f"lvs reported {len(records)} rows for {self.vg}/{lv}",
                                {"stdout": out[:2000]})
        return records[0]


def _valid_lvm_name(name: str) -> bool:
    return bool(_LVM_NAME.match(name)) and name not in (".", "..") and len(name) <= _MAX_NAME
