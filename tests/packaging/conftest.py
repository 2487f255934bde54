"""The packaging tests' measurements (bundle size, install and upgrade times), printed at the end
of the run so CI logs carry them."""
from __future__ import annotations

from tests.support.measurements import MEASURED


def pytest_terminal_summary(terminalreporter) -> None:
    if MEASURED:
        terminalreporter.write_line("")
        terminalreporter.write_line("offline install measurements:")
        for line in MEASURED:
            terminalreporter.write_line(f"  {line}")
