"""Two orgs on one real appliance, for the cross-tenant escape suite: org A with a secret in a
state and in a running instance, org B the attacker."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.harness import Appliance


@dataclass
class Tenants:
    app: Appliance
    store: Path  # the store's root on the host
    org_a: str
    org_b: str
    secret: str
    a_dsn: str
    marker: str  # a name B's code gives every file it tries to create

    def a_state_files(self) -> dict[str, str]:
        """Every file of A's states, by path, with its SHA-256."""
        sums = {}
        for directory, _, files in os.walk(self.store / "orgs" / self.org_a / "states"):
            for name in files:
                path = os.path.join(directory, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as fh:
                        sums[path] = hashlib.sha256(fh.read()).hexdigest()
        return sums
