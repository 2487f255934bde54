"""``sqlrs_client``: the appliance's v1 API for programs and test suites.

    from sqlrs_client import Client

    with Client("http://appliance:7433", token) as sqlrs:
        db = sqlrs.prepare_psql(["-f", "schema.sql"], cwd="db")
        print(db["dsn"])

``Client`` blocks, ``AsyncClient`` awaits; both drive the same request flows
(:mod:`sqlrs_client.calls`), so they send the same requests in the same order. Every failure is
a :class:`SqlrsError` carrying the API's stable ``code`` (docs/client.md).

What lives here: ``errors`` (the exception tree), ``types`` (the API's answers as TypedDicts),
``calls`` (requests as data, flows, no I/O), ``prepare`` (packing the files a request reads),
``follow`` (a job's status moved by its events), ``settings``, ``sync`` and ``aio`` (the two
clients). May import: httpx, and from the appliance only its pure ``planning`` layer and
``errors`` (to pack bundles exactly as the appliance reads them). The ``sqlrs`` command is built
on it; nothing here knows the command exists.

Names load on first use, so ``from sqlrs_client.errors import SqlrsError`` loads no HTTP library.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlrs_client.aio import AsyncClient
    from sqlrs_client.errors import ApiError, InvalidInput, JobFailed, SqlrsError, Unavailable
    from sqlrs_client.follow import Progress
    from sqlrs_client.prepare import PrepareRequest, liquibase_request, psql_request
    from sqlrs_client.sync import Client

__all__ = ["ApiError", "AsyncClient", "Client", "InvalidInput", "JobFailed", "PrepareRequest", "Progress",
           "SqlrsError", "Unavailable", "liquibase_request", "psql_request"]

_HOMES = {"AsyncClient": "aio", "Client": "sync", "Progress": "follow", "PrepareRequest": "prepare",
          "liquibase_request": "prepare", "psql_request": "prepare",
          **dict.fromkeys(("ApiError", "InvalidInput", "JobFailed", "SqlrsError", "Unavailable"), "errors")}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'sqlrs_client' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"sqlrs_client.{_HOMES[name]}"), name)
