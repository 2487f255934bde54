"""The one-org rule: a host that cannot isolate tenants serves the first org that uses it.

Checked before a bundle is stored or a request is planned, so a refused org changes nothing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.control.models import PrepareJob, SourceBundle
from appliance.errors import IsolationUnavailable

if TYPE_CHECKING:
    from appliance.isolation.level import Isolation


def check_may_serve(isolation: Isolation | None, org: str) -> None:
    if isolation is None or not isolation.one_org_only:
        return
    served = (PrepareJob.select(PrepareJob.org).where(PrepareJob.org != org).limit(1).first()
              or SourceBundle.select(SourceBundle.org).where(SourceBundle.org != org).limit(1).first())
    if served is not None:
        raise IsolationUnavailable(
            f"this appliance cannot keep orgs apart ({isolation.reason}) and already serves another org; "
            "an operator may accept that with tenant_isolation = \"none\"",
            {"isolation": isolation.level})
