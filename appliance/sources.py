"""Source bundles (uploaded tar.gz) and server-side project refs, both content addressed.

An uploaded bundle is unpacked once into ``sources/<org>/<source_id>`` and never changes;
a project ref is resolved to a commit and its tree is stored the same way, so the planner
only ever reads an immutable directory. The bundle's bytes also go to the object store, so
another host (the one a job was placed on, or another API) unpacks the same tree on first use.
"""
from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.context import AppContext
from appliance.control.models import Project, SourceBundle
from appliance.control.tenancy import check_may_serve
from appliance.errors import InvalidArgument, NotFound, PayloadTooLarge, PermissionDenied, SourcesUnwritable
from appliance.ids import is_project_name, is_source_id, valid_org
from appliance.planning.bundle import bundle_source_id, unpack_bundle

log = logging.getLogger(__name__)

UNWRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})
GIT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@{}^~-]{0,254}$")


@dataclass(frozen=True)
class ResolvedSource:
    source_id: str
    root: Path
    commit: str | None = None


def source_root(ctx: AppContext, org: str, source_id: str) -> Path:
    return ctx.sources_dir / valid_org(org) / source_id


def bundle_key(org: str, source_id: str) -> str:
    return f"{valid_org(org)}/sources/{source_id}.tar.gz"


def store_bundle(ctx: AppContext, org: str, data: bytes) -> tuple[str, bool]:
    """Unpack, share and record a bundle; returns (source_id, created). Idempotent by content:
    a bundle already unpacked here is recognised without writing to the sources dir."""
    check_may_serve(ctx.isolation, org)
    source_id = bundle_source_id(valid_bundle_size(ctx, data), max_bytes=ctx.settings.max_bundle_bytes,
                                 max_files=ctx.settings.max_bundle_files)
    if not source_root(ctx, valid_org(org), source_id).is_dir():
        _unpack_here(ctx, org, data)
    if not ctx.objects.exists(bundle_key(org, source_id)):
        try:
            ctx.objects.put_bytes(bundle_key(org, source_id), data)
        except Exception as exc:  # one host still works; other hosts will say what is missing
            log.warning("could not share source %s through the object store: %s", source_id, exc)
    _, created = SourceBundle.get_or_create(org=org, source_id=source_id,
                                            defaults={"size_bytes": len(data)})
    return source_id, created


def local_source_root(ctx: AppContext, org: str, source_id: str | None) -> Path:
    """The unpacked bundle on this host, fetched from the object store on first use here."""
    org = valid_org(org)
    if source_id is None:
        root = ctx.sources_dir / org / ".empty"
        _open_to_org(ctx, org)
        root.mkdir(exist_ok=True)
        root.chmod(0o755)
        return root
    root = source_root(ctx, org, source_id)
    if root.is_dir():
        return root
    try:
        with ctx.objects.open(bundle_key(org, source_id)) as reader:
            data = reader.read(ctx.settings.max_bundle_bytes + 1)
    except NotFound:
        raise InvalidArgument(f"source {source_id} was uploaded to another host and is not in the object store",
                              {"source_id": source_id}) from None
    if _unpack_here(ctx, org, data) != source_id:
        raise InvalidArgument(f"the object store's copy of source {source_id} has other content",
                              {"source_id": source_id})
    return root


def valid_bundle_size(ctx: AppContext, data: bytes) -> bytes:
    if len(data) > ctx.settings.max_bundle_bytes:
        raise PayloadTooLarge(f"bundle is {len(data)} bytes; the limit is {ctx.settings.max_bundle_bytes}")
    return data


def _unpack_here(ctx: AppContext, org: str, data: bytes) -> str:
    org = valid_org(org)  # before anything is written under sources/<org>
    valid_bundle_size(ctx, data)
    try:
        return _unpack_into_sources(ctx, org, data)
    except OSError as exc:
        if exc.errno not in UNWRITABLE:
            raise
        raise SourcesUnwritable(f"this host cannot write its sources dir {ctx.sources_dir} "
                                f"({os.strerror(exc.errno)}); the operator must make it writable",
                                {"reason": errno.errorcode.get(exc.errno, str(exc.errno))}) from None


def _unpack_into_sources(ctx: AppContext, org: str, data: bytes) -> str:
    staging = ctx.sources_dir / org / ".incoming"
    _open_to_org(ctx, org)
    staging.mkdir(exist_ok=True)
    staged = staging / secrets.token_hex(8)
    try:
        source_id = unpack_bundle(data, staged, max_bytes=ctx.settings.max_bundle_bytes,
                                  max_files=ctx.settings.max_bundle_files)
        final = source_root(ctx, org, source_id)
        if staged.exists() and not final.exists():
            _readable_tree(staged)
            try:
                staged.rename(final)
            except OSError:
                if not final.is_dir():  # lost a race with an identical upload: fine
                    raise
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return source_id


def resolve_source(ctx: AppContext, org: str, source: dict | None) -> ResolvedSource | None:
    if not source:
        return None
    if source.get("source_id"):
        source_id = source["source_id"]
        if not is_source_id(source_id) or not SourceBundle.get_or_none(
                (SourceBundle.org == org) & (SourceBundle.source_id == source_id)):
            raise InvalidArgument(f"source {source_id} was not uploaded (POST /v1/sources first)",
                                  {"source_id": source_id})
        return ResolvedSource(source_id, local_source_root(ctx, org, source_id))
    return _resolve_project_ref(ctx, org, source.get("project") or "", source.get("ref") or "")


def register_project(ctx: AppContext, org: str, name: str, repo_path: str) -> Project:
    """Record a git repository on the server for the org. Only repositories under one of the
    operator's ``project_roots`` may be registered (none at all when that list is empty)."""
    if not is_project_name(name):
        raise InvalidArgument(f"invalid project name {name!r}")
    if not ctx.settings.project_roots:
        raise PermissionDenied("server-side projects are off on this appliance (the operator sets project_roots); "
                               "upload a bundle instead (POST /v1/sources)", {"reason": "projects_disabled"})
    path = Path(repo_path)
    if not path.is_absolute():
        raise InvalidArgument(f"repository path {repo_path!r} is not an absolute path")
    resolved = confined_repository(ctx, path)
    project, created = Project.get_or_create(org=org, name=name, defaults={"repo_path": str(resolved)})
    if not created and project.repo_path != str(resolved):
        project.repo_path = str(resolved)
        project.save()
    return project


def confined_repository(ctx: AppContext, path: Path) -> Path:
    """``path`` with symlinks and ``..`` resolved, once it is a git repository whose work tree,
    git directory and object alternates all lie under a project root; else InvalidArgument,
    with one message whatever the reason, so paths outside the roots cannot be probed."""
    roots = [root.resolve() for root in ctx.settings.project_roots]
    refused = InvalidArgument(f"{str(path)!r} is not a git repository under a project root of this appliance",
                              {"repo_path": str(path)})
    resolved = path.resolve()
    if not _under(resolved, roots) or not resolved.is_dir():
        raise refused
    found = ctx.runner(["git", "-C", str(resolved), "rev-parse", "--absolute-git-dir"], check=False)
    if found.returncode != 0:
        raise refused
    git_dir = Path(found.stdout.strip()).resolve()
    if not _under(git_dir, roots):  # a `.git` file naming a git directory elsewhere
        raise refused
    alternates = git_dir / "objects" / "info" / "alternates"
    if alternates.exists():  # objects borrowed from another repository: it must be confined too
        for line in alternates.read_text(errors="replace").splitlines():
            if line.strip() and not line.startswith("#"):
                borrowed = Path(line.strip())
                borrowed = borrowed if borrowed.is_absolute() else git_dir / "objects" / borrowed
                if not _under(borrowed.resolve(), roots):
                    raise refused
    return resolved


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _resolve_project_ref(ctx: AppContext, org: str, name: str, ref: str) -> ResolvedSource:
    project = Project.get_or_none((Project.org == org) & (Project.name == name))
    if project is None:
        raise NotFound(f"project {name!r} not found")
    if not GIT_REF.match(ref) or ".." in ref:
        raise InvalidArgument(f"invalid git ref {ref!r}")
    # Checked again now: the path may have been swapped for a symlink, or the roots changed, since.
    repo = str(confined_repository(ctx, Path(project.repo_path)))
    found = ctx.runner(["git", "-C", repo, "rev-parse", "--verify", "--quiet",
                        f"{ref}^{{commit}}"], check=False)
    if found.returncode != 0:
        raise InvalidArgument(f"ref {ref!r} does not name a commit in project {name!r}",
                              {"project": name, "ref": ref})
    commit = found.stdout.strip()
    archive = ctx.runner(["git", "-C", repo, "archive", "--format=tar.gz", commit],
                         binary_output=True)
    source_id, _ = store_bundle(ctx, org, archive.output)
    return ResolvedSource(source_id, source_root(ctx, org, source_id), commit)


_BUNDLE_KEY = re.compile(r"^([^/]+)/sources/([0-9a-f]{64})\.tar\.gz$")  # see bundle_key()


def sweep_orphans(ctx: AppContext, grace_seconds: float) -> list[str]:
    """Uploads no Control-DB row knows (an upload that died between storing its bytes and
    recording them): bundles this installation wrote to the object store (never another's:
    ``appliance.objectstore.ownership``), unpacked trees and staging dirs on this host.
    Only what is older than ``grace_seconds`` goes, so an upload in progress is never touched."""
    now = dt.datetime.now(dt.UTC)
    known = set(SourceBundle.select(SourceBundle.org, SourceBundle.source_id).tuples())
    removed = []
    for info in ctx.objects.list(""):
        match = _BUNDLE_KEY.match(info.key)
        old = info.last_modified is not None and (now - info.last_modified).total_seconds() > grace_seconds
        if match and old and (match[1], match[2]) not in known and ctx.objects.wrote(info):
            ctx.objects.delete(info.key)
            removed.append(info.key)
    for org_dir in _subdirs(ctx.sources_dir):
        for entry in _subdirs(org_dir):
            if entry.name == ".incoming":  # staging of uploads being unpacked: only the abandoned ones
                doomed = [e for e in _subdirs(entry) if _older_than(e, grace_seconds)]
            elif is_source_id(entry.name) and (org_dir.name, entry.name) not in known:
                doomed = [entry] if _older_than(entry, grace_seconds) else []
            else:
                doomed = []
            for path in doomed:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(str(path))
    return removed


def _subdirs(directory: Path) -> list[Path]:
    return [e for e in directory.iterdir() if e.is_dir()] if directory.is_dir() else []


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.lstat().st_mtime > seconds
    except FileNotFoundError:
        return False


def _readable_tree(root: Path) -> None:
    for directory, _, files in os.walk(root):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)


def _open_to_org(ctx: AppContext, org: str) -> None:
    """An org's bundles are read by its own psql and Liquibase (its OS identity, in a sandbox
    that binds the job's source read-only): its directory is root's, in the org's group, and
    closed to every other org."""
    ctx.sources_dir.mkdir(parents=True, exist_ok=True)
    ctx.sources_dir.chmod(0o711)
    if ctx.isolation is not None:
        ctx.isolation.identities.group_dir(org, ctx.sources_dir / org)
    else:
        (ctx.sources_dir / org).mkdir(exist_ok=True)
        (ctx.sources_dir / org).chmod(0o755)
