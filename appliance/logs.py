"""Logging for every process of the appliance: text for people, or JSON lines for machines.

A log line carries the context it was written in — ``request_id`` and ``org`` in the API,
``job_id``, ``org`` and ``task_id`` in a worker — so one job or request can be followed across
processes with a single filter. Context lives in a ContextVar: ``asyncio.to_thread`` and the
API's request tasks carry it along; a new thread starts without it. A line may add fields of its
own with ``extra={"fields": {...}}`` (the access log does): JSON gets them as keys, text as
``key=value`` after the message.

Every process logs to stderr only: under systemd that is the journal (rotated by journald);
under `sqlrs-appliance up` each worker's stderr goes to a file that ``up`` rotates itself.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
from collections.abc import Iterator
from contextvars import ContextVar

_context: ContextVar[dict[str, str]] = ContextVar("sqlrs_log_context", default={})  # noqa: B039 (never mutated: replaced)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A URL's password (``scheme://user:PASSWORD@``, ``?password=``) in any line, a library's
# exception text included: the Control DB's and Redis's URLs carry theirs.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:?#]*:)[^\s@/?#]+(?=@)")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&\s#'\"]+", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every URL's password replaced by ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***", text))


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: str | None) -> None:
    """Add to the context for the rest of the current task (an API request's own task)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": redact(record.getMessage()),
                **_context.get(), **_fields(record)}
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class _TextWithContext(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))
        context = {**_context.get(), **_fields(record)}
        return text + "".join(f" {k}={v}" for k, v in context.items()) if context else text


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else _TextWithContext(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings become log lines too, in the same format
    # peewee's DEBUG lines are every SQL statement with its parameters, instance passwords
    # included: never useful to an operator, and a secret leak. Kept at INFO whatever the level.
    logging.getLogger("peewee").setLevel(max(logging.INFO, root.level))
