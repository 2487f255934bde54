"""Liquibase in tests: the runners under test (each driver as the appliance opens it, the
changelogs they plan, what a run leaves behind), and the shop changelog the end-to-end tests
prepare through a running appliance (``prepare``)."""
from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.isolation.sandbox import Sandbox
from appliance.liquibase_runners.base import Connection, LiquibaseRunner
from appliance.liquibase_runners.host import MAIN_CLASS
from appliance.liquibase_runners.select import open_liquibase
from appliance.planning.liquibase.args import parse_liquibase_args
from appliance.settings import Settings
from appliance.shell import Runner
from tests.support.processes import processes

TESTS = Path(__file__).resolve().parents[1]
# One changelog in four formats (XML including YAML, formatted SQL and JSON), with contexts.
MIXED = TESTS / "liquibase_runners" / "changelogs" / "mixed"
SHOP = TESTS / "e2e" / "changelogs" / "shop"
UPDATE = ["update", "--changelog-file", "changelog.xml"]


def prepare(appliance, project: Path, *args: str) -> dict:
    """A Liquibase prepare of ``project`` through a running appliance, waited for."""
    response = appliance.submit_lb([*UPDATE, *args], project)
    assert response.status_code == 201, response.text
    return appliance.wait(response.json()["job_id"], timeout=300)


@dataclass(frozen=True)
class Driver:
    """One ``liquibase_runner`` setting and the sandbox the host gives it: ``open`` builds the
    driver through the appliance's own select, its commands going through ``shell``."""

    settings: Settings
    sandbox: Sandbox

    @property
    def name(self) -> str:
        return "container" if self.settings.liquibase_runner == "docker" else "host"

    def open(self, shell: Runner | Callable) -> LiquibaseRunner:
        return open_liquibase(self.settings, shell, self.sandbox)

    def without_liquibase(self, missing: Path) -> Driver:
        """The same driver with neither a distribution nor an image to run."""
        settings = self.settings.model_copy(update={"liquibase_home": missing,
                                                    "liquibase_image": f"sqlrs-test/no-such-liquibase:{missing.name}"})
        return Driver(settings, self.sandbox)

    @property
    def needs(self) -> str:
        """What it runs: the distribution's directory, or the image."""
        return self.settings.liquibase_image if self.name == "container" else str(self.settings.liquibase_home)


def distribution_version(home: Path) -> str:
    """The version a distribution's core jar records, read here without Liquibase."""
    with zipfile.ZipFile(home / "internal" / "lib" / "liquibase-core.jar") as archive:
        manifest = archive.read("META-INF/MANIFEST.MF").decode()
    return re.search(r"^Liquibase-Version: (\S+)\s*$", manifest, re.M)[1]


def public_copy(changelogs: Path, base: Path) -> Path:
    """``changelogs`` copied to ``base/db``, readable by anyone (Liquibase runs as an unprivileged user)."""
    shutil.copytree(changelogs, base / "db")
    for path in [base, *base.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return base


def plan(liquibase: LiquibaseRunner, connection: Connection, project: Path, *args: str):
    command = parse_liquibase_args(["update", "--changelog-file=db/changelog.xml", *args])
    return liquibase.plan(command, connection, cwd=project)


def runs_liquibase(argv: list[str]) -> bool:
    """A JVM started on Liquibase's command line class (on the host, sandboxed or not, or in a
    container), or its launcher; not the appliance's own run that makes its class archive."""
    if any(arg.startswith("-XX:ArchiveClassesAtExit=") for arg in argv):
        return False
    return MAIN_CLASS in argv or "liquibase" in argv or any(Path(arg).name == "liquibase" for arg in argv)


class Recording:
    """A shell runner that notes every argv and environment, then runs it."""

    def __init__(self, shell: Runner | Callable):
        self.shell, self.calls = shell, []

    def __call__(self, argv, **kw):
        self.calls.append(([str(a) for a in argv], dict(kw.get("env") or {})))
        return self.shell(argv, **kw)


def liquibase_processes(connection: Connection) -> list[int]:
    """Processes running Liquibase against ``connection``'s database (a container's too: its
    JVM is a process of this host)."""
    url = f"--url={connection.jdbc_url}"
    return [pid for pid, argv, _ in processes() if url in argv]
