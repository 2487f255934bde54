"""The data-access layer holds: routes read tenant rows only through an OrgScope, so no route
can forget the org (tests/api/test_cross_tenant.py checks the behaviour; this, the structure)."""
from __future__ import annotations

import re
from pathlib import Path

ROUTES = Path(__file__).resolve().parents[2] / "appliance" / "api" / "routes"
TENANT_MODELS = ("PrepareJob", "Task", "JobEvent", "State", "Instance", "Project", "SourceBundle", "ApiToken",
                 "BaseImage", "Volume", "AuditEvent", "OrgQuota", "Transfer")
DIRECT_QUERY = re.compile(rf"\b({'|'.join(TENANT_MODELS)})\.(select|get|get_or_none|get_by_id|update|delete|"
                          rf"create|insert)\(")


def test_no_route_queries_a_tenant_model_directly():
    offenders = [f"{path.name}:{number}: {line.strip()}"
                 for path in sorted(ROUTES.glob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1) if DIRECT_QUERY.search(line)]
    assert offenders == []
