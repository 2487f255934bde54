"""Identifiers that name directories, object-store keys and URL segments, validated in one place.

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
ORG_SLUG = re.compile(ORG_PATTERN)
ORG_RULE = "an org slug (1-63 lowercase letters, digits and dashes, not starting with a dash)"


def is_org(value: Any) -> bool:
    # fullmatch: `$` alone would also accept a trailing newline
    return isinstance(value, str) and ORG_SLUG.fullmatch(value) is not None


def valid_org(value: Any, what: str = "org") -> str:
    """``value`` when it is an org slug; otherwise 400 ``invalid_argument`` (the value is not echoed:
    it may be anything a caller sent)."""
    if not is_org(value):
        raise InvalidArgument(f"{what} must be {ORG_RULE}")
    return value
