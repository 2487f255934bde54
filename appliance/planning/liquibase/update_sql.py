"""What Liquibase's ``update-sql`` plans, read from its output.

Planning runs ``update-sql`` against a cluster at the base: Liquibase prints, per pending
changeset, a ``-- Changeset <path>::<id>::<author>`` header, the changeset's SQL and the row it
would write to ``databasechangelog`` (whose MD5SUM is the changeset's checksum), and changes
nothing. That row is what the changeset leaves in the database besides its SQL's effects, so
it is kept (:attr:`Changeset.recorded`) without the columns that vary between runs
(``DATEEXECUTED``, ``ORDEREXECUTED``, ``DEPLOYMENT_ID``). Nothing else in that output that varies
between runs (the time, the host) is ever hashed.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

_HEADER = re.compile(r"^-- Changeset (?P<path>.+?)::(?P<id>.+)::(?P<author>[^:\n]+)$", re.M)
_CHANGELOG_ROW = re.compile(r"^INSERT INTO \S*databasechangelog \((?P<columns>[^)]*)\) VALUES \((?P<values>.*?)\);$",
                            re.M | re.I | re.S)  # a comment may span lines
_NOISE = re.compile(r"^SET SEARCH_PATH TO .*;$", re.M | re.I)
_TRAILER = re.compile(r"^-- Release Database Lock$", re.M)  # after the last changeset: the lock's release
_SQL_VALUE = re.compile(r"\s*('(?:[^']|'')*'|[^,']*?)\s*(?:,|$)")  # one cell of a VALUES list
PER_RUN_COLUMNS = frozenset({"DATEEXECUTED", "ORDEREXECUTED", "DEPLOYMENT_ID"})  # differ on every run


@dataclass(frozen=True)
class Changeset:
    path: str
    id: str
    author: str
    checksum: str | None  # Liquibase's own (e.g. "9:0fd9…"); None if it printed none
    sql: str  # what it would run, without Liquibase's bookkeeping
    # The databasechangelog row it writes, as canonical JSON {column: value or null}, without
    # PER_RUN_COLUMNS; None if Liquibase printed no row
    recorded: str | None = None

    @property
    def key(self) -> str:
        """What a state is keyed by: the checksum, or the SQL's hash when there is none."""
        return self.checksum or "sql:" + hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def name(self) -> str:
        return f"{self.path}::{self.id}::{self.author}"


def parse_update_sql(output: str) -> list[Changeset]:
    """The pending changesets, in order, from ``update-sql`` output."""
    headers = list(_HEADER.finditer(output))
    changesets = []
    for n, header in enumerate(headers):
        end = headers[n + 1].start() if n + 1 < len(headers) else _end_of_changesets(output, header.end())
        body = output[header.end():end]
        checksum = recorded = None
        if (row := _CHANGELOG_ROW.search(body)) is not None:
            checksum = _column(row["columns"], row["values"], "MD5SUM")
            recorded = _recorded(row["columns"], row["values"])
            body = body[:row.start()] + body[row.end():]
        sql = "\n".join(line for line in _NOISE.sub("", body).strip().splitlines() if line.strip())
        changesets.append(Changeset(header["path"], header["id"], header["author"], checksum, sql, recorded))
    return changesets


def _recorded(columns: str, values: str) -> str:
    """Every column of the row but PER_RUN_COLUMNS: a quoted value unquoted, NULL as null, any
    other cell (a number, a function call) as written. A row this cannot read is kept whole
    (run-varying columns and all): a state that is never shared, rather than a wrong one."""
    names, cells = _names(columns), _cells(values)
    if len(cells) != len(names):
        row: dict[str, str | None] = {"(unparsed)": f"({columns}) VALUES ({values})"}
    else:
        row = {name: _cell(cell) for name, cell in zip(names, cells) if name not in PER_RUN_COLUMNS}
    return json.dumps(row, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def _names(columns: str) -> list[str]:
    return [c.strip().upper() for c in columns.split(",")]


def _cells(values: str) -> list[str]:
    """The cells of a VALUES list in order; a comma inside a quoted value stays in it."""
    cells, at = [], 0
    while at < len(values):
        match = _SQL_VALUE.match(values, at)
        if match is None or match.end() == at:
            return []
        cells.append(match[1])
        at = match.end()
    return cells


def _cell(cell: str) -> str | None:
    if cell.startswith("'"):
        return cell[1:-1].replace("''", "'")
    return None if cell.upper() == "NULL" else cell


def _end_of_changesets(output: str, start: int) -> int:
    trailer = _TRAILER.search(output, start)
    return trailer.start() if trailer else len(output)


def _column(columns: str, values: str, name: str) -> str | None:
    names, cells = _names(columns), _cells(values)
    if name not in names or len(cells) != len(names):
        return None
    cell = cells[names.index(name)]
    return cell[1:-1].replace("''", "'") if cell.startswith("'") else None


_TABLES_STATEMENTS = (
    re.compile(r"^CREATE TABLE (\w+\.)?databasechangeloglock \([^;]*\);$", re.M | re.I),
    re.compile(r"^INSERT INTO (\w+\.)?databasechangeloglock \(ID, LOCKED\) VALUES \(1, FALSE\);$", re.M | re.I),
    re.compile(r"^CREATE TABLE (\w+\.)?databasechangelog \([^;]*\);$", re.M | re.I),
)


def changelog_tables_sql(output: str) -> str | None:
    """What Liquibase runs to create its own tables (``databasechangeloglock`` with its one row,
    ``databasechangelog``), as ``update-sql`` printed it before the first changeset; None unless
    it printed exactly that (the tables existed already, or it spells them otherwise)."""
    first = _HEADER.search(output)
    preamble = output[:first.start()] if first else output
    statements = []
    for pattern in _TABLES_STATEMENTS:
        matches = list(pattern.finditer(preamble))
        if len(matches) != 1:
            return None
        statements.append(matches[0][0])
    return "\n".join(statements)
