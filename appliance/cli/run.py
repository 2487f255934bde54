"""run:psql: run the LOCAL psql against an instance; the appliance never runs user commands.

The instance's DSN carries its password. It goes to psql through ``PGPASSWORD`` rather
than argv, because every local user can read another process's argv.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from appliance.cli import exit_codes
from appliance.cli.failures import CliFailure
from appliance.planning.psql.args import LONG_WITH_VALUE, SHORT_WITH_VALUE, TARGET_FLAGS

if TYPE_CHECKING:
    from sqlrs_client import Client


def check_run_args(args: list[str]) -> None:
    """Reject what would point psql at another server or database: the instance decides those."""
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            if i + 1 < len(args):
                _positional(args[i + 1])
            return
        if token.startswith("--"):
            name, has_value, _ = token[2:].partition("=")
            if name in TARGET_FLAGS.values():
                _connection_flag(f"--{name}")
            i += 2 if name in LONG_WITH_VALUE and not has_value else 1
        elif token.startswith("-") and token != "-":
            i = _short_cluster(args, i)
        else:
            _positional(token)
    return


def _short_cluster(args: list[str], i: int) -> int:
    token = args[i]
    for pos in range(1, len(token)):
        letter = token[pos]
        if letter in TARGET_FLAGS:
            _connection_flag(f"-{letter}/--{TARGET_FLAGS[letter]}")
        if letter in SHORT_WITH_VALUE:
            return i + 1 if pos + 1 < len(token) else i + 2
    return i + 1


def _connection_flag(flag: str) -> None:
    raise CliFailure("invalid_argument", f"psql flag {flag} is not accepted: run:psql connects to the "
                     "instance's own DSN (choose the instance with --instance)", exit_codes.USAGE)


def _positional(token: str) -> None:
    raise CliFailure("invalid_argument", f"unexpected psql argument {token!r}: the database is the "
                     "instance's (choose it with --instance)", exit_codes.USAGE)


def newest_active_instance(instances: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    active = [i for i in instances if i.get("status") == "active"]
    if not active:
        raise CliFailure("not_found", "no active instance; create one with `sqlrs prepare:psql`",
                         exit_codes.USAGE)
    return max(active, key=lambda i: (i.get("created_at") or "", i["instance_id"]))


def split_password(dsn: str) -> tuple[str, str | None]:
    """The DSN without its password, and the password (decoded) for ``PGPASSWORD``."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username is not None else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), unquote(parts.password)


def run_psql(client: Client, instance_ref: str | None, psql_args: list[str]) -> int:
    """Replace this process with psql (same terminal, same signals); its exit code is psql's."""
    check_run_args(psql_args)
    psql = shutil.which("psql")
    if psql is None:
        raise CliFailure("psql_not_found", "psql is not on PATH; install the PostgreSQL client",
                         exit_codes.USAGE)
    instance: Mapping[str, Any]
    if instance_ref:
        instance = client.instance(instance_ref)
    else:
        instance = newest_active_instance(client.instances())
    if instance.get("status") != "active" or not instance.get("dsn"):
        raise CliFailure("invalid_argument", f"instance {instance['instance_id']} is {instance.get('status')}"
                         " and has no DSN", exit_codes.USAGE)
    dsn, password = split_password(str(instance["dsn"]))
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    client.close()
    os.execve(psql, ["psql", dsn, *psql_args], env)
    return exit_codes.OK  # not reached
