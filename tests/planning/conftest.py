"""Helpers for engine tests: real files on disk and hand-made tar.gz archives."""
from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.tarballs import tar_entry


@pytest.fixture
def source(tmp_path: Path) -> Callable[..., Path]:
    """``source("a.sql", "select 1;")`` writes a file under a fresh source root."""
    root = tmp_path / "src"
    root.mkdir()

    def write(relative: str, text: str | bytes) -> Path:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path

    write.root = root  # type: ignore[attr-defined]
    return write


@pytest.fixture
def src_root(source) -> Path:
    return source.root


@pytest.fixture
def make_tar_gz() -> Callable[..., bytes]:
    """Build a tar.gz from ``tar_entry`` tuples exactly in the order given."""

    def build(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for info, data in entries:
                archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
        return gzip.compress(raw.getvalue())

    return build


@pytest.fixture
def entry() -> Callable[..., tuple[tarfile.TarInfo, bytes]]:
    return tar_entry
