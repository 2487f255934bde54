"""The Liquibase runner family: one Protocol, a host driver and a container driver.

A runner runs the Liquibase CLI against a build cluster for one org, confined so that what a
changelog names (``sqlFile``, ``loadData``, includes, ``executeCommand``) reaches only the job's
source. The conformance suite in ``tests/liquibase_runners/`` holds both drivers to it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from appliance.planning.liquibase.args import LiquibaseCommand
from appliance.planning.liquibase.update_sql import Changeset
from appliance.shell import Completed, RunAs


@dataclass(frozen=True)
class Connection:
    jdbc_url: str
    username: str
    password: str | None = None


class LiquibaseRunner(Protocol):
    @property
    def where(self) -> str:
        """Where Liquibase runs, for job notes ("on the host (…)", "in a container of …")."""

    def health(self) -> str:
        """``"ok"`` or ``"error: …"`` saying what is missing; runs nothing."""

    def version(self) -> str:
        """The Liquibase version, part of every Liquibase state's key."""

    def run(self, command: LiquibaseCommand, connection: Connection, *, cwd: Path, sql_only: bool = False,
            cancel: Callable[[], bool] | None = None, timeout: float | None = None,
            run_as: RunAs | None = None, source: Path | None = None) -> Completed:
        """Run ``command`` as the org's identity (``run_as``), seeing ``source`` (default ``cwd``) only."""

    def plan(self, command: LiquibaseCommand, connection: Connection, *, cwd: Path, **kw) -> list[Changeset]:
        """The pending changesets, from ``update-sql``; changes nothing."""
