"""prepare:psql / plan:psql / prepare:lb / plan:lb: the request (``sqlrs_client.prepare`` packs
the files it reads), the job submitted, the outcome reported."""
from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from appliance.cli import exit_codes
from appliance.cli.failures import CliFailure
from appliance.cli.output import note, print_json, short, stdout_console, tasks_table
from sqlrs_client.errors import JobFailed
from sqlrs_client.prepare import PrepareRequest, liquibase_request, psql_request, reads_stdin

if TYPE_CHECKING:
    from sqlrs_client import Client
    from sqlrs_client.types import JobAccepted


def submit_psql(client: Client, *, image: str, psql_args: list[str], cwd: Path, stdin_stream: TextIO,
                plan_only: bool, ttl_seconds: int | None = None, name: str | None = None) -> JobAccepted:
    """Pack what the args read (nothing for ``-c`` only) and create the job; the files go up
    only if the appliance does not hold them yet."""
    return client.submit(psql_request_of(image=image, psql_args=psql_args, cwd=cwd, stdin_stream=stdin_stream,
                                         plan_only=plan_only, ttl_seconds=ttl_seconds, name=name))


def psql_request_of(*, image: str, psql_args: list[str], cwd: Path, stdin_stream: TextIO, plan_only: bool,
                    ttl_seconds: int | None = None, name: str | None = None) -> PrepareRequest:
    """The request for these args; this process's standard input is read only for ``-f -``."""
    stdin = stdin_stream.read() if reads_stdin(psql_args) else None
    return psql_request(psql_args, image=image, cwd=cwd, stdin=stdin, plan_only=plan_only,
                        ttl_seconds=ttl_seconds, name=name)


def submit_lb(client: Client, *, image: str, liquibase_args: list[str], project: Path, plan_only: bool,
              ttl_seconds: int | None = None, name: str | None = None) -> JobAccepted:
    """Pack the whole project directory and create the Liquibase job; the project goes up only
    if the appliance does not hold it yet."""
    return client.submit(liquibase_request(liquibase_args, project, image=image, plan_only=plan_only,
                                           ttl_seconds=ttl_seconds, name=name))


def print_accepted(accepted: Mapping[str, Any], url: str, output: str) -> None:
    """``--no-watch``: where to find the job, as KEY=VALUE lines (or the API's JSON)."""
    if output == "json":
        print_json(accepted)
        return
    sys.stdout.write(f"JOB_ID={accepted['job_id']}\nSTATUS_URL={url}{accepted['status_url']}\n"
                     f"EVENTS_URL={url}{accepted['events_url']}\n")


def job_failure(status: Mapping[str, Any]) -> CliFailure | None:
    """A failed or cancelled job as the failure to report (exit 1); None when it succeeded."""
    if status["status"] == "succeeded":
        return None
    failed = JobFailed(dict(status))
    return CliFailure(failed.code, failed.message, exit_codes.JOB_FAILED, failed.details or None)


def report_prepared(status: Mapping[str, Any], output: str) -> int:
    """Print a finished prepare job: JSON status, or ``DSN=…`` as the last line of stdout."""
    if output == "json":
        print_json(status)
        prepared_instance(status, quiet=True)
        return exit_codes.OK
    result = prepared_instance(status)
    sys.stdout.write(f"DSN={result['dsn']}\n")
    return exit_codes.OK


def prepared_instance(status: Mapping[str, Any], *, quiet: bool = False) -> Mapping[str, Any]:
    """The instance a finished prepare job made (noted on stderr); the job's failure, or
    ``no_dsn`` when the instance is already gone."""
    failure = job_failure(status)
    if failure is not None:
        raise failure
    result = status.get("result") or {}
    if quiet:
        return result
    if not result.get("dsn"):
        raise CliFailure("no_dsn", f"job {status['job_id']} succeeded but its instance has no DSN any more "
                         "(expired or deleted?)", exit_codes.JOB_FAILED)
    note(f"instance {short(result.get('instance_id'))} of state {short(result.get('state_id'))}")
    return result


def report_planned(status: dict[str, Any], output: str, long: bool) -> int:
    """Print a finished plan job: its tasks (cached or not), or the JSON status."""
    failure = job_failure(status)
    if output == "json":
        print_json(status)
    elif failure is None:
        stdout_console().print(tasks_table(status.get("tasks") or [], long))
    if failure is not None:
        raise failure
    return exit_codes.OK


def report_finished(status: dict[str, Any], output: str, long: bool = False) -> int:
    return report_planned(status, output, long) if status.get("plan_only") else report_prepared(status, output)
