"""The process exit codes of `sqlrs`, in one place because scripts branch on them."""
from __future__ import annotations

OK = 0
JOB_FAILED = 1  # the prepare job failed or was cancelled
USAGE = 2  # invalid usage or input: bad flags, 4xx invalid_argument / not_found, ambiguous prefix
UNAVAILABLE = 3  # cannot reach the appliance, or it answered 5xx
BLOCKED = 4  # a delete was refused (409) because something still depends on the object
DETACHED = 130  # Ctrl+C while watching, like a shell: the job itself keeps running

EPILOG = """\b
Exit codes:
  0  success (also: rm found nothing to delete)
  1  the prepare job failed or was cancelled
  2  invalid usage or input (bad flags, invalid_argument, not_found, ambiguous prefix)
  3  the appliance cannot be reached, or it failed internally (5xx)
  4  a delete was blocked (409): something still depends on it
  130  detached from a job with Ctrl+C (it keeps running)
run:psql exits with psql's own exit code."""


def for_http_status(status: int) -> int:
    """Map an API error status to our exit code: 409 blocked, other 4xx usage, the rest unavailable."""
    if status == 409:
        return BLOCKED
    if 400 <= status < 500:
        return USAGE
    return UNAVAILABLE

