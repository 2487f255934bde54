"""Client side of source bundles: pack exactly the files a psql request reads.

The same planner that hashes steps on the server walks the includes here, so the
bundle holds every file the server will need and nothing else. Files are stored at
the path psql sees (symlinks on the client are followed and stored as plain files),
and the archive is deterministic: same files, same bytes, same ``source_id``.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import InvalidArgument
from appliance.planning.hashing import source_id
from appliance.planning.psql.args import parse_psql_args
from appliance.planning.psql.plan import plan_psql_with_files


@dataclass(frozen=True)
class PackedBundle:
    data: bytes  # tar.gz for POST /v1/sources
    work_dir: str  # psql's working directory inside the bundle
    psql_args: list[str]  # the args to send (absolute -f paths made relative)
    files: list[str]  # bundle paths, sorted
    source_id: str  # the id the appliance gives this bundle (planning.hashing.source_id)


def pack_psql_bundle(psql_args: list[str], cwd: Path, *, stdin: str | None = None) -> PackedBundle:
    """Bundle the files referenced by ``psql_args`` (and their includes) as seen from ``cwd``."""
    cwd = Path(os.path.abspath(cwd))
    args = _relativize_file_args(psql_args, cwd)
    _, visited = plan_psql_with_files(args, root=Path("/"), work_dir=str(cwd).lstrip("/") or ".", stdin=stdin)
    # name: path as psql sees it from cwd; physical: where to read it (symlinks followed)
    located = [(Path(os.path.normpath(cwd / name)), physical) for name, physical in visited.items()]
    root = Path(os.path.commonpath([str(cwd), *(str(path) for path, _ in located)]))
    for path, _ in located:
        _refuse_escaping_link(path, root)
    entries = sorted((path.relative_to(root).as_posix(), physical) for path, physical in located)
    work_dir = cwd.relative_to(root).as_posix()
    # psql runs in work_dir: it is in the bundle even when every file lies outside it (-f ../x.sql)
    empty_work_dir = [work_dir] if work_dir != "." and not any(
        name.startswith(f"{work_dir}/") for name, _ in entries) else []
    data, content = _deterministic_tar_gz(entries, directories=empty_work_dir)
    return PackedBundle(data=data, work_dir=work_dir, psql_args=args, files=[name for name, _ in entries],
                        source_id=source_id(content, set(empty_work_dir)))


def pack_directory_bundle(directory: Path) -> PackedBundle:
    """Bundle a whole directory (a Liquibase project: the changelog and whatever it includes or
    loads, which only Liquibase itself can tell); hidden entries such as ``.git`` are left out."""
    directory = Path(os.path.abspath(directory))
    entries = []
    for parent, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith("."):
                path = Path(parent) / name
                _refuse_escaping_link(path, directory)
                entries.append((path.relative_to(directory).as_posix(), path))
    entries.sort()
    data, content = _deterministic_tar_gz(entries)
    return PackedBundle(data=data, work_dir=".", psql_args=[], files=[name for name, _ in entries],
                        source_id=source_id(content))


def _relativize_file_args(psql_args: list[str], cwd: Path) -> list[str]:
    """Rewrite only absolute ``-f`` values (in whatever spelling) relative to ``cwd``."""
    args = list(psql_args)
    for action in parse_psql_args(psql_args).actions:
        if action.kind != "file" or not os.path.isabs(action.value):
            continue
        if not os.path.exists(action.value):
            raise InvalidArgument(f"file not found: {action.value!r}", {"path": action.value})
        relative = os.path.relpath(action.value, cwd)
        token = args[action.token_index]
        args[action.token_index] = token[: action.value_offset] + relative
    return args


def _refuse_escaping_link(path: Path, root: Path) -> None:
    """A link may point inside the project (it is uploaded as the file it names), never out of
    it: that would upload whatever it names, /etc/passwd say. The server refuses every link."""
    if not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root)):
        name = path.relative_to(root).as_posix()
        raise InvalidArgument(f"bundle entry {name!r} is a symlink out of the project; only regular files "
                              f"and directories are allowed", {"path": name})


def _deterministic_tar_gz(entries: list[tuple[str, Path]],
                          directories: Sequence[str] = ()) -> tuple[bytes, dict[str, str]]:
    """The tar.gz of ``entries`` (and empty ``directories``), and each file's SHA-256 by path."""
    raw = io.BytesIO()
    hashes: dict[str, str] = {}
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in directories:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info)
        for name, physical in entries:
            content = physical.read_bytes()
            hashes[name] = hashlib.sha256(content).hexdigest()
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(content))
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=compressed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return compressed.getvalue(), hashes
