"""One exception tree for the whole appliance.

Every error carries a stable ``code`` that clients script against; the API maps
``http_status`` to the response in exactly one place (``appliance.api.errors``).
Messages must never contain secrets: callers pass redacted text.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from appliance.logs import redact


class ApplianceError(Exception):
    code = "internal_error"
    http_status = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}

    @property
    def headers(self) -> dict[str, str]:
        """Extra HTTP headers the error's response carries."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidArgument(ApplianceError):
    code = "invalid_argument"
    http_status = 400


class InvalidCursor(InvalidArgument):
    """A list's ``cursor`` that this list did not give out, for these filters."""

    code = "invalid_cursor"


class ManifestRefused(InvalidArgument):
    """An export manifest that does not prove where it comes from: ``unsigned_manifest`` (no
    signature), ``untrusted_signature`` (a key not in ``trusted_keys``), ``bad_signature``
    (altered after it was signed)."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message, details)
        self.code = code


class PayloadTooLarge(InvalidArgument):
    """Same stable code as any bad input; the status tells HTTP clients to stop retrying."""

    http_status = 413


class Unauthenticated(ApplianceError):
    code = "unauthenticated"
    http_status = 401


class PermissionDenied(ApplianceError):
    """Authenticated, but the role (within the caller's own org) does not allow it."""

    code = "permission_denied"
    http_status = 403


class IsolationUnavailable(PermissionDenied):
    """This host cannot keep orgs apart (appliance.isolation.level), and it already serves
    another org; the operator may accept that with ``tenant_isolation = "none"``."""

    code = "isolation_unavailable"


class NotFound(ApplianceError):
    code = "not_found"
    http_status = 404


class Conflict(ApplianceError):
    code = "conflict"
    http_status = 409


class QuotaExceeded(ApplianceError):
    """Usage at its limit (jobs, instances, bytes): waiting, or freeing something, helps.
    ``details``: the limit's name, its value and the usage."""

    code = "quota_exceeded"
    http_status = 429


class QuotaForbids(QuotaExceeded):
    """The request itself is beyond a limit (e.g. a TTL): no amount of waiting helps."""

    http_status = 403


class ServiceUnavailable(ApplianceError):
    """A backing service is away for now; the request changed nothing and may be retried."""

    http_status = 503

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "2"}


class ControlDbUnavailable(ServiceUnavailable):
    code = "control_db_unavailable"


class QueueUnavailable(ServiceUnavailable):
    code = "queue_unavailable"


class SourcesUnwritable(ServiceUnavailable):
    """This host cannot write its sources dir (read-only, full, permissions): a new bundle
    cannot be unpacked until the operator fixes it. A bundle already here needs no write."""

    code = "sources_unwritable"


class ObjectStoreNotOurs(ApplianceError):
    """The object-store prefix belongs to another installation (its marker names another id):
    this one refuses to start rather than delete or overwrite what it did not write."""

    code = "object_store_not_ours"
    http_status = 503


class PriorityNotAllowed(ApplianceError):
    """A job priority above what the caller's role may set (``details``: the cap)."""

    code = "priority_not_allowed"
    http_status = 403


class RateLimited(ApplianceError):
    """Too many requests from one principal or org; ``retry_after`` says when to come back."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, details: dict[str, Any] | None = None, *, retry_after: float = 1.0):
        super().__init__(message, details)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class Cancelled(ApplianceError):
    code = "cancelled"
    http_status = 409


class CacheFullUnreclaimable(ApplianceError):
    """The store is full and nothing may be evicted; details say why (reasons, numbers)."""

    code = "cache_full_unreclaimable"
    http_status = 507


class InternalError(ApplianceError):
    code = "internal_error"
    http_status = 500


class NotSupported(ApplianceError):
    """A driver was asked for something its backend cannot do; never a silent success."""

    code = "not_supported"
    http_status = 501


class StepFailed(ApplianceError):
    """A user's step (psql script) failed; the message is the tool's own error text."""

    code = "step_failed"
    http_status = 422

    @classmethod
    def of_command(cls, what: str, exc: CommandFailed, message: str, task_id: str) -> StepFailed:
        """The step's tool failed (``message``: what it said) or ran past its time
        (``details.reason: step_timeout``, with the limit in ``details.timeout_seconds``)."""
        if isinstance(exc, CommandTimedOut):
            return cls(f"{what} did not finish within {exc.timeout:g} s (step_timeout_seconds); it was stopped",
                       {"task_id": task_id, "reason": "step_timeout", "timeout_seconds": exc.timeout})
        return cls(f"{what} failed: {message}", {"task_id": task_id, "exit_code": exc.returncode})


class CommandFailed(ApplianceError):
    """A shell-out returned non-zero. Carries argv, exit code and stderr for the operator."""

    code = "internal_error"
    http_status = 500

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str, stdout: str = ""):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout
        why = _why(stderr)
        super().__init__(
            f"{self.argv[0]} exited with {returncode}" + (f": {why}" if why else ""),
            {"argv": [redact(a) for a in self.argv], "exit_code": returncode, "stderr": redact(stderr[-4000:])},
        )


# A line that says why a program failed, as Postgres tools, coreutils and the JVM word it.
_ERROR_LINE = re.compile(r"\b(error|fatal|panic|could not|cannot|can't|denied|failed|no space|not permitted|"
                         r"exception|killed|out of memory)\b", re.IGNORECASE)
_TAIL_LINES = 3
_LINE_MAX = 300


def _why(stderr: str) -> str:
    """The first line that names an error, then the last few lines, joined by `` | `` (``…``
    where lines were left out): initdb's last line only says it removed the data directory,
    the cause is many lines above it. Bounded, and with every URL's password hidden."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    keep = set(range(max(len(lines) - _TAIL_LINES, 0), len(lines)))
    keep.update(next(([i] for i, line in enumerate(lines) if _ERROR_LINE.search(line)), []))
    parts, previous = [], -1
    for index in sorted(keep):
        if previous >= 0 and index != previous + 1:
            parts.append("…")
        line = lines[index]
        parts.append(line if len(line) <= _LINE_MAX else line[:_LINE_MAX] + "…")
        previous = index
    return redact(" | ".join(parts))


class CommandTimedOut(CommandFailed):
    """A shell-out ran past its ``timeout`` and was killed (with its process group).

    A :class:`CommandFailed` (exit code -9), so every handler of a failed command handles it;
    ``timeout`` says how long it was given."""

    def __init__(self, argv: Sequence[str], timeout: float, stderr: str = "", stdout: str = ""):
        super().__init__(argv, -9, stderr, stdout)
        self.timeout = timeout
        self.message = f"{self.argv[0]} did not finish within {timeout:g} s and was killed"
        self.args = (self.message,)
        self.details["timeout_seconds"] = timeout
