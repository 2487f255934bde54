"""Temporary directories an unprivileged Postgres user can traverse."""
from __future__ import annotations

import tempfile
from pathlib import Path


def public_tmpdir(prefix: str) -> Path:
    """A tmp dir the unprivileged Postgres user can traverse (we run as root in CI)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path
