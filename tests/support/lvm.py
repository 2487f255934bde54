"""A strict double of lvm2 2.03.16 and util-linux 2.38, for the lvm driver's tests (device-mapper
is absent where the tests run). It rejects what lvm2 would (unknown options, thick snapshots,
reserved or duplicate names, mounting an inactive or unformatted LV ...); directories are real,
mounts are simulated: an LV's files live in a backing directory of its own while it is not
mounted, appear at its mount point while it is (an unmounted mount point is empty, as on a real
host), and a snapshot starts with a copy of its origin's files. ``tar`` runs for real."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import CommandFailed
from appliance.shell import Completed, Runner
from tests.support.recording import RecordingRunner

VG, POOL = "vg0", "tp0"
GIB = 1024**3
EXTENT = 4 * 1024**2
POOL_FULL = "  Cannot create new thin volume, free space in thin pool vg0/tp0 reached threshold.\n"
_TAG = re.compile(r"^[A-Za-z0-9_+.\-/=!:#&]+$")
_RESERVED = ("_cdata", "_cmeta", "_corig", "_mlog", "_mimage", "_pmspare", "_rimage", "_rmeta",
             "_tdata", "_tmeta", "_vorigin", "_vdata")


# -- a strict double of lvm2 and util-linux --------------------------------------------------
@dataclass
class Lv:
    size: int
    origin: str = ""
    tags: tuple[str, ...] = ()
    active: bool = True
    skip_activation: bool = False
    fs: str | None = None
    fs_uuid: str | None = None
    data_percent: str = "0.00"
    backing: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sqlrs-lv-")))


@dataclass
class LvmHost:
    """VG ``vg0`` with thin pool ``tp0``, as lvm2 2.03.16 and util-linux 2.38 would answer.

    Messages copy lvm2's where known; where the double refuses something lvm2 would do
    (e.g. a thick snapshot) the message starts with "double:"."""

    lvs: dict[str, Lv] = field(default_factory=dict)
    mounts: dict[str, tuple[Lv, str]] = field(default_factory=dict)  # path -> (lv, options)
    pool_full: bool = False
    failures: dict[str, tuple[int, str]] = field(default_factory=dict)  # program -> next failure

    def runner(self) -> StreamingRecordingRunner:
        handlers = {"lvcreate": self.lvcreate, "lvchange": self.lvchange, "lvremove": self.lvremove,
                    "lvrename": self.lvrename, "lvs": self.lvs_report, "mkfs.xfs": self.mkfs,
                    "mkfs.ext4": self.mkfs, "mount": self.mount, "umount": self.umount,
                    "mountpoint": self.mountpoint, "sync": self.sync}
        return StreamingRecordingRunner(
            responses={(program,): self._guarded(handler) for program, handler in handlers.items()})

    def fail_next(self, program: str, returncode: int, stderr: str) -> None:
        self.failures[program] = (returncode, stderr)

    def _guarded(self, handler):
        def respond(argv: list[str]) -> Completed:
            if argv[0] in self.failures:
                returncode, stderr = self.failures.pop(argv[0])
                return Completed(argv, returncode, "", stderr)
            try:
                return handler(argv)
            except _Refused as refused:
                return Completed(argv, refused.returncode, "", refused.stderr)
        return respond

    # lvm2 ------------------------------------------------------------------------------
    def lvcreate(self, argv: list[str]) -> Completed:
        opts, positional = _parse(argv, {"-V": 1, "--virtualsize": 1, "-T": 0, "--thin": 0, "-n": 1,
                                         "--name": 1, "-s": 0, "--snapshot": 0, "-k": 1,
                                         "--setactivationskip": 1, "-K": 0, "--addtag": 1, "-L": 1,
                                         "--size": 1})
        name = _one(opts, "-n", "--name")
        tags = tuple(opts.get("--addtag", []))
        if name is None or len(positional) != 1:
            raise _Refused(3, "  Please specify a logical volume name and one target.\n")
        check_name(name)
        for tag in tags:
            if not _TAG.match(tag):
                raise _Refused(3, f'  Tag "{tag}" contains invalid characters.\n')
        if name in self.lvs:
            raise _Refused(5, f'  Logical Volume "{name}" already exists in volume group "{VG}"\n')
        skip = _one(opts, "-k", "--setactivationskip")
        if skip not in (None, "y", "n"):
            raise _Refused(3, f'  Invalid argument for --setactivationskip: {skip}\n')
        snapshot = "-s" in opts or "--snapshot" in opts
        if snapshot:
            if _one(opts, "-L", "--size") or _one(opts, "-V", "--virtualsize"):
                raise _Refused(5, "double: a size with -s makes a thick COW snapshot, not a thin one\n")
            origin = self._lv_arg(positional[0])
            if self.pool_full:
                raise _Refused(5, POOL_FULL)
            source = self.lvs[origin]
            # lvm.conf's default auto_set_activation_skip=1: a thin snapshot skips activation.
            skips = skip != "n"
            self.lvs[name] = Lv(source.size, origin, tags, not skips or "-K" in opts, skips,
                                source.fs, source.fs_uuid, source.data_percent)
            shutil.copytree(self._files_of(source), self.lvs[name].backing, symlinks=True, dirs_exist_ok=True)
        else:
            if not ("-T" in opts or "--thin" in opts) or positional[0] != f"{VG}/{POOL}":
                raise _Refused(3, "double: only thin volumes in vg0/tp0 exist here\n")
            if _one(opts, "-L", "--size"):
                raise _Refused(5, "double: -L with -T would create a thin pool\n")
            size = _bytes_arg(_one(opts, "-V", "--virtualsize"))
            if self.pool_full:
                raise _Refused(5, POOL_FULL)
            self.lvs[name] = Lv(-(-size // EXTENT) * EXTENT, tags=tags, skip_activation=skip == "y",
                                active=skip != "y")
        return Completed(argv, 0, f'  Logical volume "{name}" created.\n', "")

    def lvchange(self, argv: list[str]) -> Completed:
        opts, positional = _parse(argv, {"-a": 1, "--activate": 1, "-K": 0, "--ignoreactivationskip": 0})
        lv = self.lvs[self._lv_arg(_single(positional))]
        activate = _one(opts, "-a", "--activate") == "y"
        if activate and (not lv.skip_activation or "-K" in opts or "--ignoreactivationskip" in opts):
            lv.active = True  # without -K lvm2 silently leaves a skip-flagged LV inactive
        if _one(opts, "-a", "--activate") == "n":
            self._not_open(lv, _single(positional))
            lv.active = False
        return Completed(argv, 0, "", "")

    def lvremove(self, argv: list[str]) -> Completed:
        opts, positional = _parse(argv, {"-y": 0, "--yes": 0, "-f": 0})
        target = _single(positional)
        name = self._lv_arg(target)
        lv = self.lvs[name]
        self._not_open(lv, target)
        if lv.active and not ("-y" in opts or "--yes" in opts or "-f" in opts):
            raise _Refused(5, f"  Logical volume {target} not removed.\n")
        shutil.rmtree(self.lvs.pop(name).backing, ignore_errors=True)
        return Completed(argv, 0, f'  Logical volume "{name}" successfully removed.\n', "")

    def lvrename(self, argv: list[str]) -> Completed:
        _, positional = _parse(argv, {})
        if len(positional) != 3 or positional[0] != VG:
            raise _Refused(3, "  Old and new logical volume names required\n")
        _, old, new = positional
        check_name(new)
        if old not in self.lvs:
            raise _Refused(5, f'  Existing logical volume "{old}" not found in volume group "{VG}"\n')
        if new in self.lvs:
            raise _Refused(5, f'  Logical Volume "{new}" already exists in volume group "{VG}"\n')
        self.lvs[new] = self.lvs.pop(old)
        return Completed(argv, 0, f'  Renamed "{old}" to "{new}" in volume group "{VG}"\n', "")

    def lvs_report(self, argv: list[str]) -> Completed:
        opts, targets = _parse(argv, {"--reportformat": 1, "--units": 1, "--nosuffix": 0, "-o": 1})
        if _one(opts, "--reportformat") != "json" or _one(opts, "--units") != "b" or "--nosuffix" not in opts:
            raise _Refused(3, "double: only --reportformat json --units b --nosuffix is modelled\n")
        fields = _one(opts, "-o").split(",")
        rows = []
        for target in targets:
            if target.startswith("@"):
                rows += [self._row(n, fields) for n, lv in self.lvs.items() if target[1:] in lv.tags]
            elif target == f"{VG}/{POOL}":
                rows.append(self._pool_row(fields))
            else:
                rows.append(self._row(self._lv_arg(target), fields))
        lines = ",\n".join("                  {" + ", ".join(f'"{k}":"{v}"' for k, v in row.items()) + "}"
                           for row in rows)
        body = ("  {\n      \"report\": [\n          {\n              \"lv\": [\n" + lines
                + "\n              ]\n          }\n      ]\n  }\n")
        return Completed(argv, 0, body, "")

    def _row(self, name: str, fields: list[str]) -> dict[str, str]:
        lv = self.lvs[name]
        opened = any(m is lv for m, _ in self.mounts.values())
        state = ("a" if lv.active else "-") + ("o" if opened else "-")
        attr = f"Vwi-{state}tz-{'k' if lv.skip_activation else '-'}"
        values = {"lv_name": name, "vg_name": VG, "lv_attr": attr, "lv_size": str(lv.size), "pool_lv": POOL,
                  "origin": lv.origin, "data_percent": lv.data_percent if lv.active else "",
                  "metadata_percent": "", "lv_tags": ",".join(lv.tags)}
        return {f: values[f] for f in fields}

    def _pool_row(self, fields: list[str]) -> dict[str, str]:
        values = {"lv_name": POOL, "vg_name": VG, "lv_attr": "twi-aotzD-" if self.pool_full else "twi-aotz--",
                  "lv_size": str(100 * GIB), "pool_lv": "", "origin": "",
                  "data_percent": "100.00" if self.pool_full else "25.00", "metadata_percent": "2.50",
                  "lv_tags": ""}
        return {f: values[f] for f in fields}

    def _lv_arg(self, target: str) -> str:
        vg, _, name = target.partition("/")
        if vg != VG or name not in self.lvs:
            raise _Refused(5, f'  Failed to find logical volume "{target}"\n')
        return name

    def _not_open(self, lv: Lv, target: str) -> None:
        if any(mounted is lv for mounted, _ in self.mounts.values()):
            raise _Refused(5, f"  Logical volume {target} contains a filesystem in use.\n")

    # util-linux, coreutils, mkfs ----------------------------------------------------------
    def _device(self, device: str) -> Lv | None:
        prefix = f"/dev/{VG}/"
        lv = self.lvs.get(device[len(prefix):]) if device.startswith(prefix) else None
        return lv if lv is not None and lv.active else None  # inactive: no device node

    def mkfs(self, argv: list[str]) -> Completed:
        opts, positional = _parse(argv, {"-q": 0})
        lv = self._device(_single(positional))
        if lv is None:
            raise _Refused(1, f"{argv[0]}: cannot open {positional[0]}: No such file or directory\n")
        lv.fs, lv.fs_uuid = argv[0].split(".")[1], str(uuid.uuid4())
        return Completed(argv, 0, "", "")

    def mount(self, argv: list[str]) -> Completed:
        opts, positional = _parse(argv, {"-t": 1, "-o": 1})
        device, path = positional if len(positional) == 2 else (None, None)
        if path is None or not os.path.isdir(path):
            raise _Refused(32, f"mount: {path}: mount point does not exist.\n")
        lv = self._device(device)
        if lv is None:
            raise _Refused(32, f"mount: {path}: special device {device} does not exist.\n")
        options = _one(opts, "-o").split(",")
        shared_uuid = any(m.fs_uuid == lv.fs_uuid for m, _ in self.mounts.values())
        if (lv.fs is None or lv.fs != _one(opts, "-t") or path in self.mounts
                or (lv.fs == "xfs" and shared_uuid and "nouuid" not in options)):
            raise _Refused(32, f"mount: {path}: wrong fs type, bad option, bad superblock on {device}, "
                               "missing codepage or helper program, or other error.\n")
        self.mounts[path] = (lv, _one(opts, "-o"))
        _move_entries(lv.backing, Path(path))
        return Completed(argv, 0, "", "")

    def umount(self, argv: list[str]) -> Completed:
        path = _single(_parse(argv, {})[1])
        mounted = self.mounts.pop(path, None)
        if mounted is not None:
            _move_entries(Path(path), mounted[0].backing)
        if mounted is None:
            raise _Refused(32, f"umount: {path}: not mounted.\n")
        return Completed(argv, 0, "", "")

    def mountpoint(self, argv: list[str]) -> Completed:
        path = _single(_parse(argv, {"-q": 0})[1])
        return Completed(argv, 0 if path in self.mounts else 32, "", "")

    def sync(self, argv: list[str]) -> Completed:
        path = _single(_parse(argv, {"-f": 0})[1])
        if not os.path.exists(path):
            raise _Refused(1, f"sync: error opening '{path}': No such file or directory\n")
        return Completed(argv, 0, "", "")

    def _files_of(self, lv: Lv) -> Path:
        """Where the LV's files are now: its mount point, or its backing directory."""
        return next((Path(p) for p, (m, _) in self.mounts.items() if m is lv), lv.backing)

    def mounted_name(self, path: Path) -> str:
        lv, _ = self.mounts[str(path)]
        return next(name for name, candidate in self.lvs.items() if candidate is lv)


class StreamingRecordingRunner(RecordingRunner):
    """Records streamed commands too; ``tar`` runs for real, on the real directories."""

    def pipe_into(self, argv, source, **kwargs) -> Completed:
        self.calls.append(list(argv))
        if argv[0] != "tar":
            raise CommandFailed(argv, 127, f"no streaming response registered for {argv!r}")
        return Runner().pipe_into(argv, source, **kwargs)


class _Refused(Exception):
    def __init__(self, returncode: int, stderr: str):
        self.returncode, self.stderr = returncode, stderr


def _parse(argv: list[str], arity: dict[str, int]) -> tuple[dict[str, list[str]], list[str]]:
    """Options the way getopt sees them (``-kn`` is ``-k n``); an unknown one fails as in lvm2 (exit 3)."""
    opts: dict[str, list[str]] = {}
    positional: list[str] = []
    tokens = iter(argv[1:])
    for token in tokens:
        if re.fullmatch(r"-[a-zA-Z].+", token) and arity.get(token[:2]) == 1:
            opts.setdefault(token[:2], []).append(token[2:])
        elif token.startswith("-"):
            if token not in arity:
                raise _Refused(3, f"{argv[0]}: unrecognized option '{token}'\n"
                                  "  Error during parsing of command line.\n")
            opts.setdefault(token, []).extend(next(tokens) for _ in range(arity[token]))
        else:
            positional.append(token)
    return opts, positional


def _one(opts: dict[str, list[str]], *names: str) -> str | None:
    values = [v for n in names for v in opts.get(n, [])]
    if len(values) > 1:
        raise _Refused(3, f"  Option {names[0]} may only be given once.\n")
    return values[0] if values else None


def _single(positional: list[str]) -> str:
    if len(positional) != 1:
        raise _Refused(3, f"  Exactly one argument expected, got {positional}.\n")
    return positional[0]


def _bytes_arg(value: str | None) -> int:
    match = re.fullmatch(r"(\d+)[bB]", value or "")
    if not match:
        raise _Refused(3, f"double: only byte sizes are modelled, got {value!r}\n")
    return int(match.group(1))


def check_name(name: str) -> None:
    if not re.fullmatch(r"[a-zA-Z0-9+_.][a-zA-Z0-9+_.-]*", name) or name in (".", "..") or len(name) > 127:
        raise _Refused(3, f'  Logical volume name "{name}" is invalid.\n')
    for prefix in ("snapshot", "pvmove"):
        if name.startswith(prefix):
            raise _Refused(3, f'  Names starting "{prefix}" are reserved. '
                              'Please choose a different LV name.\n')
    for reserved in _RESERVED:
        if reserved in name:
            raise _Refused(3, f'  Names including "{reserved}" are reserved. '
                              'Please choose a different LV name.\n')


def _move_entries(source: Path, target: Path) -> None:
    for entry in os.listdir(source):
        shutil.move(str(source / entry), str(target / entry))
