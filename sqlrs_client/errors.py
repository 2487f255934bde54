"""What the client raises: one tree, each error carrying the API's stable ``code``.

``SqlrsError`` is the root; catch it to handle anything the appliance or the way to it said.
The ``code`` is the API's own (``not_found``, ``quota_exceeded``, ``invalid_argument``, …, see
docs/api.md) or one of the client's: ``unavailable`` (the appliance could not be reached or did
not answer in time), ``job_failed`` / ``cancelled`` (a job ended without its database), and
``invalid_argument`` for local input (a file to upload that does not exist).
"""
from __future__ import annotations

from typing import Any


class SqlrsError(Exception):
    """Anything the client could not do, with the API's stable ``code`` and its ``details``."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None, *,
                 hint: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ApiError(SqlrsError):
    """The appliance answered with an error body ``{code, message, details?}`` (or, from
    something in front of it, with a bare error status)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None, *,
                 hint: str | None = None):
        super().__init__(code, message, details, hint=hint)
        self.status = status


class Unavailable(SqlrsError):
    """The appliance could not be reached, or did not answer in time."""

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__("unavailable", message, hint=hint)


class JobFailed(SqlrsError):
    """A prepare job ended failed or cancelled; ``job`` is its last status, with the error the
    appliance recorded (``code`` is that error's, or ``cancelled``)."""

    def __init__(self, job: dict[str, Any]):
        error = job.get("error") or {}
        code = error.get("code") or ("cancelled" if job.get("status") == "cancelled" else "job_failed")
        super().__init__(code, error.get("message") or f"job {job.get('job_id')} {job.get('status')}",
                         error.get("details"))
        self.job = job


class InvalidInput(SqlrsError):
    """Local input the client cannot send: a file a psql argument names is missing, a project
    is not a directory, a link leaves it."""

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__("invalid_argument", message, details)
