"""Recursive include expansion and the content hash of one psql input.

A script's hash is a tree of length-prefixed records: its text segments (by SHA-256 of
their bytes) interleaved with the hashes of the files it includes. That is the
"expansion with boundary markers" of the design, but unforgeable: no file content can
imitate a boundary, and moving text from an included file into its includer (or back)
changes the hash. The spelling of a path never enters the hash, only resolved bytes.

What psql never sends is left out of a script's hash: whitespace and ``--`` comments where its
query buffer is empty (the *gaps* of ``psql_lexer.scan``). A gap at the start or the end of a
script counts as nothing, any other as one line break; everything else counts byte for byte.
A ``-c`` command is sent whole, so it is hashed whole.

Paths are resolved the way psql resolves them, from a directory (``work_dir``) inside a
``root`` that nothing may leave: ``\\i`` from work_dir, ``\\ir`` from the including
file's directory (lexically, as psql's canonicalize_path does).
"""
from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import InvalidArgument
from appliance.planning.hashing import digest
from appliance.planning.psql.lexer import (
    IncludeDirective,
    Piece,
    from_user,
    scan,
    to_bytes,
    to_text,
    variable_references,
)

MAX_INCLUDED_FILES = 10_000


@dataclass(frozen=True)
class Expansion:
    content_hash: str
    variable_refs: frozenset[str]


class IncludeExpander:
    """Expands inputs of one request; memoizes files so diamonds are hashed once."""

    def __init__(self, root: Path, work_dir: str, variables: dict[str, str]):
        self.root_real = Path(root).resolve(strict=True)
        if posixpath.isabs(work_dir) or os.path.isabs(work_dir):
            raise InvalidArgument(f"work_dir must be relative: {work_dir!r}", {"path": work_dir})
        self.base = Path(root) / work_dir
        base_real = self.base.resolve()
        if not base_real.is_relative_to(self.root_real) or not base_real.is_dir():
            raise InvalidArgument(f"work_dir {work_dir!r} is not a directory inside the source", {"path": work_dir})
        self.variables = {from_user(k): from_user(v) for k, v in variables.items()}
        self.files: dict[str, Path] = {}  # psql-visible name -> physical path, in visit order
        self._memo: dict[str, Expansion] = {}
        self._stack: list[tuple[Path, str]] = []

    # -- public --------------------------------------------------------------
    def expand_text(self, data: bytes, *, kind: str, where: str, current_name: str | None) -> Expansion:
        """Hash an inline input (``-c`` text or stdin); ``current_name`` anchors ``\\ir``."""
        return self._expand(data, kind=kind, where=where, current_name=current_name)

    def expand_file(self, raw: str) -> tuple[str, Expansion]:
        """Hash a ``-f`` file; returns its normalized psql-visible name too."""
        name, physical = self.resolve(raw, relative_to=None)
        return name, self._expand_file(name, physical)

    def resolve(self, raw: str, relative_to: str | None) -> tuple[str, Path]:
        """Map a path as psql would see it to (normalized name, physical path), or refuse."""
        if not raw:
            raise InvalidArgument("empty file name", {"path": raw})
        if posixpath.isabs(raw):
            raise InvalidArgument(f"absolute paths are not allowed: {raw!r}", {"path": raw})
        joined = posixpath.join(posixpath.dirname(relative_to), raw) if relative_to else raw
        name = posixpath.normpath(joined)
        physical = self.base / name
        real = physical.resolve()
        if not real.is_relative_to(self.root_real):
            raise InvalidArgument(f"path {raw!r} is outside the source", {"path": raw})
        if ".." in joined.split("/") and (self.base / joined).resolve() != real:
            # psql would let the OS follow a symlink before "..": refuse rather than guess.
            raise InvalidArgument(f"path {raw!r} mixes '..' with a symlink", {"path": raw})
        if not real.exists():
            raise InvalidArgument(f"file not found: {raw!r}", {"path": raw})
        if not real.is_file():
            raise InvalidArgument(f"not a regular file: {raw!r}", {"path": raw})
        return name, physical

    # -- internals -----------------------------------------------------------
    def _expand_file(self, name: str, physical: Path) -> Expansion:
        real = physical.resolve()
        if any(real == seen for seen, _ in self._stack):
            chain = [n for _, n in self._stack] + [name]
            raise InvalidArgument("include cycle: " + " -> ".join(chain), {"path": name, "cycle": chain})
        if name in self._memo:
            return self._memo[name]
        if len(self.files) >= MAX_INCLUDED_FILES and name not in self.files:
            raise InvalidArgument(f"more than {MAX_INCLUDED_FILES} included files", {"path": name})
        self.files.setdefault(name, physical)
        self._stack.append((real, name))
        try:
            expansion = self._expand(physical.read_bytes(), kind="script", where=name, current_name=name)
        finally:
            self._stack.pop()
        self._memo[name] = expansion
        return expansion

    def _expand(self, data: bytes, *, kind: str, where: str, current_name: str | None) -> Expansion:
        text = to_text(data)
        refs = set(variable_references(text))
        records: list[tuple[str, str]] = [("input", kind)]
        cursor = 0
        includes, gaps = scan(text, where)
        canonical = _without_gaps(text, [] if kind == "command" else gaps)
        for directive in includes:
            records.append(("text", _sha256(canonical(cursor, directive.start))))
            raw = self._include_path(directive, where)
            name, physical = self.resolve(raw, relative_to=current_name if directive.relative else None)
            child = self._expand_file(name, physical)
            records.append(("include", child.content_hash))
            refs |= child.variable_refs
            cursor = directive.end
        records.append(("text", _sha256(canonical(cursor, len(text)))))
        return Expansion(digest(*records), frozenset(refs))

    def _include_path(self, directive: IncludeDirective, where: str) -> str:
        if not directive.arguments:
            raise InvalidArgument(f"include without a file name in {where}", {"path": where})
        parts: list[str] = []
        for piece in directive.arguments[0]:
            parts.append(self._substitute(piece, where))
        return to_user_path("".join(parts))

    def _substitute(self, piece: Piece, where: str) -> str:
        if piece.form == "literal":
            return piece.text
        if piece.form == "var":
            # psql leaves an unknown :name as written; so do we.
            return self.variables.get(piece.text, ":" + piece.text)
        raise InvalidArgument(
            f"include path in {where} uses a form that cannot be resolved before running "
            f"({piece.form.replace('_', ' ')})",
            {"path": where},
        )


def to_user_path(latin1: str) -> str:
    return latin1.encode("latin-1").decode("utf-8", "surrogateescape")


def _without_gaps(text: str, gaps: list[tuple[int, int]]) -> Callable[[int, int], bytes]:
    """``canonical(start, end)``: the bytes of text[start:end] with each gap replaced."""
    def canonical(start: int, end: int) -> bytes:
        out, cursor = [], start
        for gap_start, gap_end in gaps:
            if gap_end <= start or gap_start >= end:
                continue
            out.append(text[cursor:gap_start])
            out.append("" if gap_start == 0 or gap_end == len(text) else "\n")
            cursor = gap_end
        out.append(text[cursor:end])
        return to_bytes("".join(out))
    return canonical


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
