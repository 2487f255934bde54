"""A fresh database per test, in the state a project declares (the ``pytest11`` entry point
``sqlrs``; docs/pytest.md).

The project says once how its database is prepared: ``[tool.sqlrs]`` in ``pyproject.toml`` or
``sqlrs.toml`` (found from pytest's rootdir upwards), or a ``sqlrs_project`` fixture in a
``conftest.py`` returning a :class:`sqlrs_client.project.Project`. Then:

- ``sqlrs_state`` (session): the prepare, run once per session (per xdist worker: each gets the
  same state, built once by the appliance and a cache hit for the others);
- ``sqlrs_database`` (function): a new clone of that state for the test, a
  :class:`sqlrs_client.database.Database` (``.dsn``, ``.env``), deleted after the test. Deleting
  is done in the background, so a test does not wait for it; the session waits for every delete
  before it ends. An appliance with a warm pool hands the clones out from it.

Nothing happens unless a test asks for these fixtures: the plugin is loaded wherever the package
is installed, and costs other suites nothing.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sqlrs_client.database import Database
from sqlrs_client.project import FILE_NAME, Project, find

DELETERS = 2  # background deletes at once (per xdist worker)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sqlrs", "databases from a sqlrs appliance")
    group.addoption("--sqlrs-url", metavar="URL", default=None,
                    help="the appliance (default: SQLRS_URL, then the project's url)")
    group.addoption("--sqlrs-keep", action="store_true", default=False,
                    help="keep each test's database after the test, for a look at it (sqlrs run:psql --instance ID)")


class Deleter:
    """Deletes instances in the background; ``drain`` waits for them and reports failures."""

    def __init__(self, client: Any):
        self.client = client
        self.pool = ThreadPoolExecutor(max_workers=DELETERS, thread_name_prefix="sqlrs-delete")
        self.pending: list[tuple[str, Future]] = []

    def delete(self, instance_id: str) -> None:
        self.pending.append((instance_id, self.pool.submit(self.client.delete_instance, instance_id, force=True)))

    def drain(self) -> None:
        self.pool.shutdown(wait=True)
        failed = [(instance_id, future.exception()) for instance_id, future in self.pending if future.exception()]
        for instance_id, error in failed:
            warnings.warn(f"sqlrs: instance {instance_id} was not deleted: {error}", stacklevel=1)


@pytest.fixture(scope="session")
def sqlrs_project(pytestconfig: pytest.Config) -> Project:
    """The project's prepare, from its files; override it in a conftest.py to declare it there."""
    project = find(Path(pytestconfig.rootpath))
    if project is None:
        pytest.fail(f"sqlrs: no [tool.sqlrs] in pyproject.toml and no {FILE_NAME} from {pytestconfig.rootpath} "
                    "upwards, and no sqlrs_project fixture: declare how the database is prepared (docs/pytest.md)",
                    pytrace=False)
    return project


@pytest.fixture(scope="session")
def sqlrs_client(pytestconfig: pytest.Config, sqlrs_project: Project) -> Iterator[Any]:
    """A :class:`sqlrs_client.Client` for the session (``SQLRS_TOKEN``/``SQLRS_TOKEN_FILE``)."""
    import os

    from sqlrs_client import Client
    url = pytestconfig.getoption("sqlrs_url") or os.environ.get("SQLRS_URL") or sqlrs_project.url
    with Client(url) as client:
        yield client


@pytest.fixture(scope="session")
def _sqlrs_deleter(sqlrs_client: Any) -> Iterator[Deleter]:
    deleter = Deleter(sqlrs_client)
    yield deleter
    deleter.drain()


@pytest.fixture(scope="session")
def sqlrs_state(sqlrs_client: Any, sqlrs_project: Project, _sqlrs_deleter: Deleter) -> dict[str, Any]:
    """The project's state, prepared once for the session: ``state_id`` and the request that
    hands out clones of it (``request``)."""
    request = sqlrs_project.request()
    result = sqlrs_client.wait_for_result(sqlrs_client.submit(request))
    _sqlrs_deleter.delete(result["instance_id"])
    return {"state_id": result["state_id"], "request": request}


@pytest.fixture
def sqlrs_database(request: pytest.FixtureRequest, sqlrs_client: Any, sqlrs_state: dict[str, Any],
                   _sqlrs_deleter: Deleter) -> Iterator[Database]:
    """A fresh database in the project's state, this test's alone; deleted after it."""
    result = sqlrs_client.wait_for_result(sqlrs_client.submit(sqlrs_state["request"]))
    database = Database(str(result["dsn"]), result["instance_id"], result["state_id"])
    yield database
    if request.config.getoption("sqlrs_keep"):
        request.node.user_properties.append(("sqlrs_instance", database.instance_id))  # never the DSN: a secret
        return
    _sqlrs_deleter.delete(database.instance_id)
