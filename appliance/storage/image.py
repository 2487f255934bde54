"""A btrfs filesystem in a sparse image file, for hosts whose store is not on btrfs.

Thin clones need btrfs (or a reflink filesystem); an image file loop-mounted over the store
directory gives that on any host where we are root, at the cost of one file in data_dir.
The image is formatted only when it holds no filesystem yet, so states survive restarts.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from appliance.errors import InternalError
from appliance.shell import Runner


class StorageConfigError(InternalError):
    """The configured storage cannot be provided; raised instead of silently degrading."""


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) for every mount, in mount order."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) >= 5 and right:
                found.append((_unescape_mountinfo(fields[4]), right.split()[0]))
    return found


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path.resolve()


def filesystem_type(path: Path) -> str:
    """Type of the filesystem ``path`` is (or, if it does not exist yet, would be) on."""
    target = str(_existing_ancestor(path))
    best, best_type = "", "unknown"
    for mountpoint, fstype in _mounts():  # later mounts shadow earlier ones
        inside = target == mountpoint or target.startswith(mountpoint.rstrip("/") + "/")
        if inside and len(mountpoint) >= len(best):
            best, best_type = mountpoint, fstype
    return best_type


def is_btrfs_mount(mountpoint: Path) -> bool:
    """True when a btrfs filesystem is mounted exactly at ``mountpoint``."""
    if not os.path.isdir(mountpoint):
        return False
    target = str(Path(mountpoint).resolve())
    types = [fstype for mp, fstype in _mounts() if mp == target]
    return bool(types) and types[-1] == "btrfs"


def can_mount() -> bool:
    """Whether this process could make and mount a btrfs image: root, the tools, loop devices."""
    return (
        os.geteuid() == 0
        and all(shutil.which(tool) for tool in ("mkfs.btrfs", "mount", "umount", "blkid"))
        and os.path.exists("/dev/loop-control")
    )


def _image_filesystem(image: Path, runner: Runner) -> str | None:
    """The filesystem type found in ``image``, or None for a blank file (blkid exits 2)."""
    result = runner(["blkid", "-p", "-o", "value", "-s", "TYPE", str(image)], check=False)
    if result.returncode == 2:
        return None
    if result.returncode != 0:
        raise StorageConfigError(
            f"Cannot probe the btrfs image {image}: blkid exited with {result.returncode}.",
            {"stderr": result.stderr[-2000:]},
        )
    return result.stdout.strip() or None


def ensure_btrfs_image(image: Path, mountpoint: Path, size_bytes: int, runner: Runner) -> None:
    """Make sure a btrfs filesystem from ``image`` is mounted at ``mountpoint``.

    Creates the sparse file and formats it only when needed. Refuses to mount over a
    non-empty directory, because hiding an existing store would lose every state in it.
    """
    if is_btrfs_mount(mountpoint):
        return
    image, mountpoint = Path(image), Path(mountpoint)
    mountpoint.mkdir(parents=True, exist_ok=True)
    if os.listdir(mountpoint):
        raise StorageConfigError(
            f"The store directory {mountpoint} is not empty, so the btrfs image was not mounted "
            "over it, which would hide the states already there; empty or move it, "
            "or set btrfs_image=off."
        )
    image.parent.mkdir(parents=True, exist_ok=True)
    if not image.exists():
        fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size_bytes)
        finally:
            os.close(fd)
    found = _image_filesystem(image, runner)
    if found is None:
        runner(["mkfs.btrfs", "-q", str(image)])
    elif found != "btrfs":
        raise StorageConfigError(
            f"The image file {image} holds a {found} filesystem, not btrfs; "
            "move it away or set btrfs_image=off."
        )
    runner(["mount", "-o", "loop", str(image), str(mountpoint)])


def unmount(mountpoint: Path, runner: Runner) -> None:
    """Unmount a store mount (the loop device is released with it); not mounted is fine."""
    if os.path.isdir(mountpoint) and os.path.ismount(mountpoint):
        runner(["umount", str(mountpoint)])
