"""The one hash primitive; every state id and task hash is built from it.

Records are length-prefixed (``<key>=<len>:<value>\\n``), so no choice of values can
make two different record sequences encode to the same bytes.
"""
from __future__ import annotations

import hashlib

_PARENT_PREFIXES = ("image:", "state:")

# What a base cluster holds besides the image's initdb: part of every key, so a change to it
# (initdb options, the stock roles) never reuses states built on an older base.
BASE_RECIPE = "2"  # 2: the stock ``postgres`` role exists


def digest(*records: tuple[str, str]) -> str:
    """SHA-256 (lowercase hex) over ``"<key>=<len>:<value>\\n"`` records, len in UTF-8 bytes."""
    h = hashlib.sha256()
    for key, value in records:
        raw = value.encode("utf-8")
        h.update(f"{key}={len(raw)}:".encode())
        h.update(raw)
        h.update(b"\n")
    return h.hexdigest()


def source_id(files: dict[str, str], empty_dirs: set[str] | frozenset[str] = frozenset()) -> str:
    """A bundle's id: each file's path and SHA-256, then each empty directory (a psql working
    directory that holds no file of the bundle): what a step can see, and nothing else. The
    server computes it from the upload, the client from what it packs."""
    records = [record for path in sorted(files) for record in (("path", path), ("sha256", files[path]))]
    return digest(*records, *(("dir", path) for path in sorted(empty_dirs)))


def state_id(parent: str, task_hash: str) -> str:
    """``H(parent, step)``: parent is ``image:<resolved image id>`` or ``state:<state id>``."""
    if not parent.startswith(_PARENT_PREFIXES) or parent.endswith(":"):
        raise ValueError(f"parent must be 'image:<id>' or 'state:<id>', got {parent!r}")
    return digest(("parent", parent), ("task", task_hash))


def base_key(resolved_image_id: str) -> str:
    """The base cluster of an image, as the recipe of this version makes it."""
    return digest(("image", resolved_image_id), ("recipe", BASE_RECIPE))[:32]


def image_parent(resolved_image_id: str) -> str:
    """The parent of a chain's first state: the image's base cluster, recipe included."""
    return f"image:{resolved_image_id}#base{BASE_RECIPE}"


def chain_state_ids(resolved_image_id: str, task_hashes: list[str]) -> list[str]:
    """The state id after each step; a shared prefix of steps gives a shared prefix of ids."""
    ids: list[str] = []
    parent = image_parent(resolved_image_id)
    for task_hash in task_hashes:
        current = state_id(parent, task_hash)
        ids.append(current)
        parent = f"state:{current}"
    return ids
