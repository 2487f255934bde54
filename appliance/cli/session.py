"""An instance for the length of one command: the composite ``prepare:psql … run:psql …`` /
``prepare:lb … run -- CMD``, and ``sqlrs run -- CMD`` (the project's prepare).

The command runs locally: psql with the instance's DSN (its password in ``PGPASSWORD``, never in
argv), or any program with ``DATABASE_URL`` and the ``PG*`` variables set. When it exits, however
it exits, the instance is deleted, and its exit code is this process's (128 + N for signal N).
Ctrl+C reaches the command, as it would without sqlrs in front of it; sqlrs waits for it, then
cleans up.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from appliance.cli import exit_codes
from appliance.cli.failures import CliFailure
from appliance.cli.output import note, short
from appliance.cli.run import check_run_args, split_password
from appliance.planning.psql.args import LONG_WITH_VALUE, SHORT_WITH_VALUE
from sqlrs_client.database import database_env

if TYPE_CHECKING:
    from sqlrs_client import Client

RUN_VERBS = ("run:psql", "run")


@dataclass(frozen=True)
class RunStage:
    verb: str  # run:psql | run
    args: tuple[str, ...]


def split_run_stage(args: Sequence[str]) -> tuple[tuple[str, ...], RunStage | None]:
    """``-f a.sql run:psql -- -c 'select 1'`` -> the prepare's args and the run stage. The first
    ``run:psql`` or ``run`` that is not the value of a psql option starts it; a ``--`` right
    after it is dropped."""
    i = 0
    while i < len(args):
        token = args[i]
        if token in RUN_VERBS:
            rest = list(args[i + 1:])
            if rest[:1] == ["--"]:
                rest = rest[1:]
            return tuple(args[:i]), RunStage(token, tuple(rest))
        i += 2 if _takes_value(token) else 1
    return tuple(args), None


def _takes_value(token: str) -> bool:
    if token.startswith("--"):
        name, has_value, _ = token[2:].partition("=")
        return name in LONG_WITH_VALUE and not has_value
    return len(token) == 2 and token[0] == "-" and token[1] in SHORT_WITH_VALUE


def check_stage(stage: RunStage) -> None:
    """Refused before anything is prepared: what the stage could never run."""
    if stage.verb == "run:psql":
        check_run_args(list(stage.args))
        if shutil.which("psql") is None:
            raise CliFailure("psql_not_found", "psql is not on PATH; install the PostgreSQL client", exit_codes.USAGE)
    elif not stage.args:
        raise CliFailure("invalid_argument", "give the command to run after run --, e.g. run -- make test",
                         exit_codes.USAGE)
    elif shutil.which(stage.args[0]) is None:
        raise CliFailure("invalid_argument", f"{stage.args[0]}: command not found", exit_codes.USAGE)


def run_stage_with(client: Client, result: Mapping[str, Any], stage: RunStage) -> int:
    """Run the stage against the instance in ``result``, then delete the instance; the
    stage's exit code."""
    dsn = str(result["dsn"])
    try:
        if stage.verb == "run:psql":
            bare, password = split_password(dsn)
            env = {"PGPASSWORD": password} if password is not None else {}
            return _run([str(shutil.which("psql")), bare, *stage.args], env)
        return _run(list(stage.args), database_env(dsn))
    finally:
        client.delete_instance(str(result["instance_id"]), force=True)
        note(f"instance {short(str(result['instance_id']))} deleted")


def _run(argv: list[str], extra_env: Mapping[str, str]) -> int:
    child = subprocess.Popen(argv, env={**os.environ, **extra_env})
    forward = signal.signal(signal.SIGTERM, lambda signum, _frame: child.send_signal(signum))
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the child's to handle
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, ignored)
    sys.stdout.flush()
    return 128 - code if code < 0 else code
