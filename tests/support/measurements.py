"""Measurements a test takes (bundle size, install and upgrade times), printed at the end of the
run so CI logs carry them."""
from __future__ import annotations

MEASURED: list[str] = []


def measured(line: str) -> None:
    MEASURED.append(line)
