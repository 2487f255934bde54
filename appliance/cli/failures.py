"""How a command ends unsuccessfully: a ``CliFailure`` carries the stable code, the message, an
optional hint and the exit code; the ``sqlrs`` group prints it as ``error: <code>: <message>``.
Kept apart from the HTTP client so that printing a failure loads no HTTP library."""
from __future__ import annotations

from typing import Any

from appliance.cli import exit_codes
from appliance.errors import ApplianceError


class CliFailure(ApplianceError):
    """Anything that ends the command unsuccessfully; carries the exit code to use."""

    def __init__(self, code: str, message: str, exit_code: int, details: dict[str, Any] | None = None,
                 hint: str | None = None):
        super().__init__(message, details)
        self.code = code
        self.exit_code = exit_code
        self.hint = hint


class ApiError(CliFailure):
    """The API answered with an error body ``{code, message, details?}``."""

    def __init__(self, http_status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 hint: str | None = None):
        super().__init__(code, message, exit_codes.for_http_status(http_status), details, hint)
        self.http_status = http_status
