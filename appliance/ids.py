"""Identifiers that name directories, object-store keys and URL segments, validated in one place.

Each grammar is written once, here, as a pattern (published as it is as the JSON Schema pattern
of API and settings fields) and as a check for Python callers; nothing else spells an id's grammar.

An org identifier becomes a path component (``sources/<org>/…``), a key prefix and a label, so
every way one reaches the appliance (the ``X-Sqlrs-Org`` header, an OIDC token's org claim or
group memberships, a robot or operator token, a quota, a share's grantee, a command line) goes
through :func:`valid_org` before it is used for anything.
"""
from __future__ import annotations

import re
from typing import Any

from appliance.errors import InvalidArgument

ORG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"  # also published as the JSON Schema pattern of org fields
ORG_RULE = "an org slug (1-63 lowercase letters, digits and dashes, not starting with a dash)"
# One safe path component: a state id, a base key, a volume id, the org part of an object key.
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
HEX_ID_PATTERN = r"^[0-9a-f]{32}$"  # a job, instance or volume id (16 random bytes in hex)
JOB_PREFIX_PATTERN = r"^[0-9a-f]{1,32}$"  # a job id or the start of one
ID_PREFIX_PATTERN = r"^[0-9a-fA-F]{1,64}$"  # the start of any hex id (instance, state, job), any case
SOURCE_ID_PATTERN = r"^[0-9a-f]{64}$"  # an uploaded bundle: the sha256 of its content
PROJECT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # a server-side project
HOST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"  # a host in the host registry
_HEX = re.compile(r"[0-9a-fA-F]+")


def _matches(pattern: str, value: Any) -> bool:
    # fullmatch: `$` alone would also accept a trailing newline
    return isinstance(value, str) and re.fullmatch(pattern, value) is not None


def is_name(value: Any) -> bool:
    return _matches(NAME_PATTERN, value)


def is_hex_id(value: Any) -> bool:
    return _matches(HEX_ID_PATTERN, value)


def is_source_id(value: Any) -> bool:
    return _matches(SOURCE_ID_PATTERN, value)


def is_project_name(value: Any) -> bool:
    return _matches(PROJECT_NAME_PATTERN, value)


def is_hex(value: Any) -> bool:
    """Hex digits of either case (what a user may type as the start of an id)."""
    return isinstance(value, str) and _HEX.fullmatch(value) is not None


def is_org(value: Any) -> bool:
    return _matches(ORG_PATTERN, value)


def valid_org(value: Any, what: str = "org") -> str:
    """``value`` when it is an org slug; otherwise 400 ``invalid_argument`` (the value is not echoed:
    it may be anything a caller sent)."""
    if not is_org(value):
        raise InvalidArgument(f"{what} must be {ORG_RULE}")
    return str(value)
