"""The btrfs driver: volumes are subvolumes, states are read-only subvolume snapshots.

A snapshot or clone is a new tree root sharing every block with its source, so both are
O(1) whatever the database size. All commands go through the runner as argv lists.
"""
from __future__ import annotations

import errno
import os
import struct
from pathlib import Path
from typing import BinaryIO, cast

from appliance.errors import InvalidArgument
from appliance.shell import Runner
from appliance.storage.base import DriverBase, SendCommand
from appliance.storage.copy import remove_tree

SEND_FORMAT = "btrfs-send"

# The root directory of every btrfs subvolume has this inode number (BTRFS_FIRST_FREE_OBJECTID).
_SUBVOLUME_ROOT_INODE = 256


def is_subvolume(path: Path) -> bool:
    """True when ``path`` is the root of a subvolume (not a plain directory inside one)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return st.st_ino == _SUBVOLUME_ROOT_INODE and os.path.isdir(path) and not os.path.islink(path)


class BtrfsDriver(DriverBase):
    """Snapshot and clone with ``btrfs subvolume snapshot``."""

    name = "btrfs"
    receives = frozenset({SEND_FORMAT})
    forks_in_use = True

    def __init__(self, runner: Runner):
        self._run = runner

    def create_volume(self, path: Path) -> None:
        self._run(["btrfs", "subvolume", "create", str(path)])

    def snapshot(self, volume: Path, target: Path) -> None:
        self._run(["btrfs", "subvolume", "snapshot", "-r", str(volume), str(target)])

    def clone(self, snapshot: Path, target: Path) -> None:
        self._run(["btrfs", "subvolume", "snapshot", str(snapshot), str(target)])

    def fork(self, volume: Path, target: Path) -> None:
        """A subvolume snapshot is atomic, whatever is writing to the volume."""
        self._run(["btrfs", "subvolume", "snapshot", str(volume), str(target)])

    def destroy(self, path: Path) -> None:
        """Delete a subvolume (read-only ones too, as root); a plain directory left by a crash
        (e.g. a half-made copy) is removed as a tree; a missing path is not an error."""
        if not os.path.lexists(path):
            return
        if is_subvolume(path):
            self._run(["btrfs", "subvolume", "delete", str(path)])
        else:
            remove_tree(path)

    def send_command(self, snapshot: Path, parent: Path | None) -> SendCommand:
        """``btrfs send``, as a delta against ``parent`` when given (both are read-only states)."""
        argv = ["btrfs", "send", "--quiet"]
        if parent is not None:
            argv += ["-p", str(parent)]
        return SendCommand(argv + [str(snapshot)], SEND_FORMAT, parent)

    def receive(self, stream: BinaryIO, staged: Path, fmt: str, parent: Path | None) -> None:
        """``btrfs receive`` creates the subvolume under the name the sender had, and a read-only
        subvolume cannot be moved to another directory afterwards (nor made writable without
        losing the received UUID that later deltas are matched by). So the name in the stream's
        first command is rewritten to ``staged``'s and the stream received into its directory.
        The parent of a delta is found by btrfs itself, by that received UUID."""
        if fmt != SEND_FORMAT:
            raise InvalidArgument(f"the {self.name} driver cannot receive a {fmt!r} stream")
        if os.path.lexists(staged):
            raise FileExistsError(errno.EEXIST, "receive target exists", str(staged))
        renamed = renamed_send_stream(stream, staged.name)
        try:
            self._run.pipe_into(["btrfs", "receive", str(staged.parent)], renamed)
        except BaseException:
            self.destroy(staged)
            raise

    def used_bytes(self, path: Path) -> int:
        """Bytes of data extents the subvolume refers to, shared or not."""
        out = self._run(["btrfs", "filesystem", "du", "-s", "--raw", str(path)]).stdout
        # Header line, then "<total> <exclusive> <set shared> <path>".
        for line in out.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0].isdigit():
                return int(fields[0])
        raise ValueError(f"unexpected 'btrfs filesystem du' output for {path}: {out!r}")


# -- the send stream's first command --------------------------------------------------------------
_STREAM_MAGIC = b"btrfs-stream\0"
_COMMAND_HEADER = struct.Struct("<IHI")  # payload length, command, crc32c (computed with crc = 0)
_ATTRIBUTE_HEADER = struct.Struct("<HH")  # type, length
_CMD_SUBVOL, _CMD_SNAPSHOT, _ATTR_PATH = 1, 2, 15


def renamed_send_stream(stream: BinaryIO, name: str) -> BinaryIO:
    """``stream`` with the subvolume name in its first command (SUBVOL or SNAPSHOT) replaced.

    The command's checksum is verified before and recomputed after, so a stream this code
    does not understand is refused instead of being mangled."""
    head = _read_exactly(stream, len(_STREAM_MAGIC) + 4)
    header = _read_exactly(stream, _COMMAND_HEADER.size) if head.startswith(_STREAM_MAGIC) else b""
    if len(header) != _COMMAND_HEADER.size:
        raise InvalidArgument("not a btrfs send stream")
    length, command, crc = _COMMAND_HEADER.unpack(header)
    payload = _read_exactly(stream, length)
    if (command not in (_CMD_SUBVOL, _CMD_SNAPSHOT) or len(payload) != length
            or _crc32c(_COMMAND_HEADER.pack(length, command, 0) + payload) != crc):
        raise InvalidArgument("the btrfs send stream does not start with an intact subvolume command")
    attributes, offset = [], 0
    while offset < len(payload):
        kind, size = _ATTRIBUTE_HEADER.unpack_from(payload, offset)
        offset += _ATTRIBUTE_HEADER.size
        value = name.encode() if kind == _ATTR_PATH else payload[offset:offset + size]
        attributes.append(_ATTRIBUTE_HEADER.pack(kind, len(value)) + value)
        offset += size
    payload = b"".join(attributes)
    crc = _crc32c(_COMMAND_HEADER.pack(len(payload), command, 0) + payload)
    return cast(BinaryIO, _Prefixed(head + _COMMAND_HEADER.pack(len(payload), command, crc) + payload, stream))


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := stream.read(size - len(data))):
        data += chunk
    return data


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def _crc32c(data: bytes) -> int:
    """CRC-32C as btrfs computes it for send streams: seed 0, no final inversion."""
    crc = 0
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


class _Prefixed:
    """Bytes already read from a stream, then the rest of the stream."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self._prefix, self._rest = prefix, rest

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size < 0 or size >= len(self._prefix):
                data, self._prefix = self._prefix, b""
            else:
                data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return self._rest.read(size)
