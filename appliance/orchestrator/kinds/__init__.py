"""Prepare kinds at admission: how a request of each kind (``psql``, ``lb``) is validated,
keyed and turned into steps, behind one Protocol (``base.PrepareKind``). Nothing else in
the orchestrator branches on the kind; the worker side has its twin in ``appliance.build.steps``.

May import: what ``appliance.orchestrator`` may import.
"""
from __future__ import annotations

from appliance.errors import InvalidArgument
from appliance.orchestrator.kinds.base import PlannedPrepare, PrepareKind, Target
from appliance.orchestrator.kinds.liquibase import LiquibaseKind
from appliance.orchestrator.kinds.psql import PsqlKind

KINDS: dict[str, PrepareKind] = {kind.name: kind for kind in (PsqlKind(), LiquibaseKind())}

__all__ = ["KINDS", "PlannedPrepare", "PrepareKind", "Target", "kind_of"]


def kind_of(name: object) -> PrepareKind:
    """The kind a request names; a 400 for anything else."""
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        expected = " or ".join(repr(known) for known in KINDS)
        raise InvalidArgument(f"unknown prepare_kind {name!r}; expected {expected}")
    return kind
