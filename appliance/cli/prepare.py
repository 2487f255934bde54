"""prepare:psql / plan:psql / prepare:lb / plan:lb: pack local files, upload them, submit the job,
report the outcome."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from appliance.cli import exit_codes
from appliance.cli.client import ApiClient
from appliance.cli.failures import ApiError, CliFailure
from appliance.cli.output import note, print_json, short, stdout_console, tasks_table
from appliance.planning.packing import PackedBundle, pack_directory_bundle, pack_psql_bundle
from appliance.planning.psql.args import parse_psql_args

JSON_GZIP = "application/gzip"


def reads_stdin(psql_args: list[str]) -> bool:
    """Whether ``-f -`` asks for this process's standard input."""
    return any(a.kind == "file" and a.value == "-" for a in parse_psql_args(psql_args).actions)


def build_request(*, image: str, psql_args: list[str], source: dict[str, str] | None, stdin: str | None,
                  plan_only: bool, ttl_seconds: int | None, name: str | None) -> dict[str, Any]:
    """The ``PrepareJobRequest`` body; unset optional fields are left out, not sent as null."""
    body: dict[str, Any] = {"prepare_kind": "psql", "image_id": image, "psql_args": psql_args,
                            "plan_only": plan_only}
    if source is not None:
        body["source"] = source
    if stdin is not None:
        body["stdin"] = stdin
    instance = {k: v for k, v in (("ttl_seconds", ttl_seconds), ("name", name)) if v is not None}
    if instance and not plan_only:
        body["instance"] = instance
    return body


def submit_psql(client: ApiClient, *, image: str, psql_args: list[str], cwd: Path, stdin_stream: TextIO,
                plan_only: bool, ttl_seconds: int | None = None, name: str | None = None) -> dict[str, Any]:
    """Pack what the args read (nothing for ``-c`` only) and create the job; the files go up
    only if the appliance does not hold them yet."""
    body, packed = psql_request(image=image, psql_args=psql_args, cwd=cwd, stdin_stream=stdin_stream,
                                plan_only=plan_only, ttl_seconds=ttl_seconds, name=name)
    return submit(client, body, packed)


def upload_and_build(client: ApiClient, *, image: str, psql_args: list[str], cwd: Path, stdin_stream: TextIO,
                     plan_only: bool, ttl_seconds: int | None = None, name: str | None = None) -> dict[str, Any]:
    """The PrepareJobRequest for these args, with the files they read uploaded first."""
    body, packed = psql_request(image=image, psql_args=psql_args, cwd=cwd, stdin_stream=stdin_stream,
                                plan_only=plan_only, ttl_seconds=ttl_seconds, name=name)
    if packed is not None:
        upload(client, packed)
    return body


def psql_request(*, image: str, psql_args: list[str], cwd: Path, stdin_stream: TextIO, plan_only: bool,
                 ttl_seconds: int | None, name: str | None) -> tuple[dict[str, Any], PackedBundle | None]:
    """The PrepareJobRequest for these args, naming the bundle of the files they read by its id;
    and that bundle (None when they read no file)."""
    stdin = stdin_stream.read() if reads_stdin(psql_args) else None
    packed = pack_psql_bundle(psql_args, cwd, stdin=stdin)  # InvalidArgument for a missing file
    if not packed.files:
        return build_request(image=image, psql_args=list(psql_args), source=None, stdin=stdin, plan_only=plan_only,
                             ttl_seconds=ttl_seconds, name=name), None
    source = {"source_id": packed.source_id, "work_dir": packed.work_dir}
    return build_request(image=image, psql_args=packed.psql_args, source=source, stdin=stdin, plan_only=plan_only,
                         ttl_seconds=ttl_seconds, name=name), packed


def submit_lb(client: ApiClient, *, image: str, liquibase_args: list[str], project: Path, plan_only: bool,
              ttl_seconds: int | None = None, name: str | None = None) -> dict[str, Any]:
    """Pack the whole project directory (what a changelog includes or loads only Liquibase can
    tell) and create the Liquibase job; the project goes up only if the appliance does not hold
    it yet."""
    if not project.is_dir():
        raise CliFailure("invalid_argument", f"{project} is not a directory", exit_codes.USAGE)
    packed = pack_directory_bundle(project)
    body = build_request(image=image, psql_args=[], source={"source_id": packed.source_id, "work_dir": "."},
                         stdin=None, plan_only=plan_only, ttl_seconds=ttl_seconds, name=name)
    del body["psql_args"]
    body.update(prepare_kind="lb", liquibase_args=liquibase_args)
    return submit(client, body, packed)


def submit(client: ApiClient, body: dict[str, Any], packed: PackedBundle | None) -> dict[str, Any]:
    """Create the job. A bundle the appliance does not hold yet (it says so by naming the
    source) is uploaded, and the job created again: a repeated prepare uploads nothing."""
    try:
        return client.post_json("/v1/prepare-jobs", body)
    except ApiError as error:
        if packed is None or (error.details or {}).get("source_id") != packed.source_id:
            raise
    upload(client, packed)
    return client.post_json("/v1/prepare-jobs", body)


def upload(client: ApiClient, packed: PackedBundle) -> None:
    uploaded = client.post_bytes("/v1/sources", packed.data, JSON_GZIP)
    if uploaded["source_id"] != packed.source_id:
        raise CliFailure("internal_error", f"the appliance names the uploaded bundle {uploaded['source_id']}, "
                         f"not {packed.source_id} as this client does (a client and server of different "
                         "versions?)", exit_codes.UNAVAILABLE)


def print_accepted(accepted: dict[str, Any], url: str, output: str) -> None:
    """``--no-watch``: where to find the job, as KEY=VALUE lines (or the API's JSON)."""
    if output == "json":
        print_json(accepted)
        return
    sys.stdout.write(f"JOB_ID={accepted['job_id']}\nSTATUS_URL={url}{accepted['status_url']}\n"
                     f"EVENTS_URL={url}{accepted['events_url']}\n")


def job_failure(status: dict[str, Any]) -> CliFailure | None:
    """A failed or cancelled job as the failure to report (exit 1); None when it succeeded."""
    if status["status"] == "succeeded":
        return None
    error = status.get("error") or {}
    code = error.get("code") or ("cancelled" if status["status"] == "cancelled" else "job_failed")
    message = error.get("message") or f"job {status['job_id']} {status['status']}"
    return CliFailure(code, message, exit_codes.JOB_FAILED, error.get("details"))


def report_prepared(status: dict[str, Any], output: str) -> int:
    """Print a finished prepare job: JSON status, or ``DSN=…`` as the last line of stdout."""
    failure = job_failure(status)
    if output == "json":
        print_json(status)
    if failure is not None:
        raise failure
    result = status.get("result") or {}
    if output == "json":
        return exit_codes.OK
    if not result.get("dsn"):
        raise CliFailure("no_dsn", f"job {status['job_id']} succeeded but its instance has no DSN any more "
                         "(expired or deleted?)", exit_codes.JOB_FAILED)
    note(f"instance {short(result.get('instance_id'))} of state {short(result.get('state_id'))}")
    sys.stdout.write(f"DSN={result['dsn']}\n")
    return exit_codes.OK


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
