"""A directory nothing can be removed from, not even by root: the immutable attribute (chattr +i),
for tests that need a clone whose removal fails the way a busy or protected one does."""
from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


def set_immutable(path: Path, on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True, capture_output=True)


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[Path]:
    """``path`` stays immutable for the block (and is made mutable again however it ends)."""
    set_immutable(path, True)
    try:
        yield path
    finally:
        set_immutable(path, False)
