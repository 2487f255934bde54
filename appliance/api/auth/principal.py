"""Who is calling, in which org, with which role."""
from __future__ import annotations

from dataclasses import dataclass

ROLES = ("viewer", "member", "admin")  # each role may do everything the ones before it may
OPERATOR = "operator"  # not an org role: the operator tokens (global admins) only


def role_rank(role: str) -> int:
    return ROLES.index(role)


@dataclass(frozen=True)
class Principal:
    subject: str  # "token:<token_id>" or the OIDC subject: what the audit log names
    org: str  # the org this request acts in
    role: str
    via: str  # api_token | oidc
    token_id: str | None = None
    global_admin: bool = False  # operator tokens (the token file, `sqlrs-appliance token`)
    memberships: tuple[tuple[str, str], ...] = ()  # (org, role) of every org it may act in; () for operators

    def may(self, role: str) -> bool:
        if self.global_admin:
            return True
        return role != OPERATOR and role_rank(self.role) >= role_rank(role)
