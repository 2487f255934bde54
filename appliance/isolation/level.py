"""What tenant isolation this host provides, and why.

``os``: every org has its own OS identity, and psql, Liquibase and process-runtime servers run
in a sandbox (``sandbox``). It needs root (to make users and drop to them), ``useradd``, and
bubblewrap able to make a user namespace as an unprivileged user; ``auto`` takes it when all of
that holds. ``none``: everything runs as the one instance OS user, so any org's code could reach
any other's data; the appliance then serves one org only, unless the operator says
``tenant_isolation = "none"`` (a single-team install that accepts it).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from appliance.errors import CommandFailed, InvalidArgument
from appliance.isolation.identity import OrgIdentities
from appliance.isolation.sandbox import Sandbox
from appliance.settings import Settings
from appliance.shell import PATH_FALLBACK, RunAs, Runner


@dataclass(frozen=True)
class Isolation:
    level: Literal["os", "none"]
    reason: str
    one_org_only: bool  # no isolation, and the operator did not accept that for many orgs
    identities: OrgIdentities
    sandbox: Sandbox

    def describe(self) -> dict:
        return {"level": self.level, "reason": self.reason, "one_org_only": self.one_org_only}


def choose_isolation(settings: Settings, runner: Runner, fallback: RunAs | None) -> Isolation:
    """``fallback``: the instance OS user everything runs as without isolation (``None`` when
    the appliance is not root)."""
    wanted = settings.tenant_isolation
    if wanted == "none":
        return _none(runner, fallback, "tenant_isolation = \"none\": the operator accepts one OS identity "
                                       "for every org", one_org_only=False)
    missing = _what_is_missing(runner, fallback)
    if missing is None:
        identities = OrgIdentities(runner, per_org=True, fallback=fallback,
                                   uid_min=settings.tenant_uid_min, uid_max=settings.tenant_uid_max)
        return Isolation("os", "one OS user per org; psql, Liquibase and process-runtime servers in a "
                               "bubblewrap sandbox", False, identities, Sandbox(True))
    if wanted == "os":
        raise InvalidArgument(f"tenant_isolation = \"os\" cannot be provided here: {missing}")
    return _none(runner, fallback, f"{missing}; serving one org only (set tenant_isolation = \"none\" to "
                                   "serve more without isolation)", one_org_only=True)


def _none(runner: Runner, fallback: RunAs | None, reason: str, *, one_org_only: bool) -> Isolation:
    return Isolation("none", reason, one_org_only, OrgIdentities(runner, per_org=False, fallback=fallback),
                     Sandbox(False))


def _what_is_missing(runner: Runner, fallback: RunAs | None) -> str | None:
    if os.geteuid() != 0 or fallback is None:
        return "the appliance does not run as root, so it cannot give each org its own OS user"
    for tool in ("useradd", "groupadd"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    probe = Sandbox(True).client(["/bin/true"], cwd=Path("/"))
    try:
        runner(probe, run_as=fallback, env={"PATH": PATH_FALLBACK}, cwd="/", timeout=30)
    except CommandFailed as exc:
        return f"bubblewrap cannot make a user namespace here ({exc.stderr.strip()[:200] or exc.returncode}); " \
               "check kernel.unprivileged_userns_clone / user.max_user_namespaces"
    return None

