"""How a command ends unsuccessfully on its own account (a usage error, a blocked delete, a job
that failed): a ``CliFailure`` carries the stable code, the message, an optional hint and the
exit code; the ``sqlrs`` group prints it as ``error: <code>: <message>``, as it prints what the
client raises (``sqlrs_client.SqlrsError``)."""
from __future__ import annotations

from typing import Any

from appliance.errors import ApplianceError


class CliFailure(ApplianceError):
    """Anything that ends the command unsuccessfully; carries the exit code to use."""

    def __init__(self, code: str, message: str, exit_code: int, details: dict[str, Any] | None = None,
                 hint: str | None = None):
        super().__init__(message, details)
        self.code = code
        self.exit_code = exit_code
        self.hint = hint
