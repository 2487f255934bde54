"""ls / rm / status / cancel / extend: what exists on the appliance, and removing it."""
from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from appliance.cli import exit_codes
from appliance.cli.failures import CliFailure
from appliance.cli.output import (
    delete_tree_lines,
    human_bytes,
    instances_table,
    jobs_table,
    note,
    print_json,
    short,
    state_tree_lines,
    stdout_console,
    tasks_table,
)
from appliance.ids import is_hex

if TYPE_CHECKING:
    from sqlrs_client import Client

MIN_PREFIX = 8
MAX_JOB_ID = 32


# -- ls ------------------------------------------------------------------------------------
def list_objects(client: Client, what: str, job: str | None, output: str, long: bool,
                 at_most: int | None = None) -> int:
    """Every row (page after page), or the first ``at_most``; a state tree always needs them all."""
    rows: Any  # each list its own TypedDict; printed as rows of JSON
    if what == "states":
        rows = client.states()
    elif what == "instances":
        rows = client.instances(at_most=at_most)
    else:
        rows = (client.tasks if what == "tasks" else client.jobs)(job=job, at_most=at_most)
    if output == "json":
        print_json(rows)
        return exit_codes.OK
    console = stdout_console()
    if not rows:
        console.print(f"no {what}", markup=False)
    elif what == "states":
        for line in state_tree_lines(rows, long):
            console.print(line, markup=False, highlight=False)
    elif what == "tasks":
        console.print(tasks_table(rows, long, with_job=True))
    else:
        console.print((jobs_table if what == "jobs" else instances_table)(rows, long))
    return exit_codes.OK


# -- rm ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    kind: str  # instance | state | job
    id: str


def check_prefix(prefix: str) -> str:
    """Ids are hex; a short prefix would match too much by accident, so it must have 8+ characters."""
    if not is_hex(prefix):
        raise CliFailure("invalid_argument", f"{prefix!r} is not an id prefix (hex digits expected)",
                         exit_codes.USAGE)
    if len(prefix) < MIN_PREFIX:
        raise CliFailure("invalid_argument", f"id prefix {prefix!r} is too short: give at least "
                         f"{MIN_PREFIX} characters", exit_codes.USAGE)
    return prefix.lower()


def choose_target(prefix: str, instances: Sequence[Mapping[str, Any]], states: Sequence[Mapping[str, Any]],
                  jobs: Sequence[Mapping[str, Any]]) -> Target | None:
    """Exactly one match across all kinds wins; none is None; more than one is a usage error."""
    matches = [Target(kind, row[key]) for kind, key, rows in
               (("instance", "instance_id", instances), ("state", "state_id", states), ("job", "job_id", jobs))
               for row in rows if row[key].lower().startswith(prefix)]
    exact = [m for m in matches if m.id.lower() == prefix]
    if len(exact) == 1:
        return exact[0]
    if len(matches) > 1:
        listed = ", ".join(f"{m.kind} {m.id}" for m in matches[:10])
        raise CliFailure("ambiguous", f"id prefix {prefix} matches {len(matches)} objects: {listed}",
                         exit_codes.USAGE)
    return matches[0] if matches else None


def remove(client: Client, prefix: str, *, recurse: bool, force: bool, dry_run: bool, output: str,
           long: bool) -> int:
    prefix = check_prefix(prefix)
    target = choose_target(
        prefix,
        client.instances(id_prefix=prefix),
        client.states(id_prefix=prefix),
        client.jobs(job=prefix) if len(prefix) <= MAX_JOB_ID else [])
    if target is None:
        note(f"nothing matches {prefix}")
        return exit_codes.OK
    result: Any
    if target.kind == "state":
        result = client.delete_state(target.id, recurse=recurse, force=force, dry_run=dry_run)
    elif target.kind == "instance":
        result = client.delete_instance(target.id, force=force, dry_run=dry_run)
    else:
        result = client.delete_job(target.id, force=force, dry_run=dry_run)
    if output == "json":
        print_json(result)
    else:
        print_delete_result(result, long)
    if result.get("outcome") == "blocked":
        hint = "-r also deletes what depends on it, -f forces it" if target.kind == "state" else "-f forces it"
        note(f"error: blocked: {target.kind} {short(target.id, long)} was not deleted ({hint})")
        return exit_codes.BLOCKED
    return exit_codes.OK


def print_delete_result(result: dict[str, Any], long: bool) -> None:
    heading = {"deleted": "deleted:", "would_delete": "would delete (dry run):",
               "blocked": "blocked, nothing deleted:",
               "deleting": "deleting (a teardown failed; the appliance retries it):"}.get(
                   result.get("outcome", ""), result.get("outcome", ""))
    sys.stdout.write(heading + "\n")
    for line in delete_tree_lines(result["root"], long):
        sys.stdout.write("  " + line + "\n")


# -- status --------------------------------------------------------------------------------
def show_status(client: Client, output: str) -> int:
    """Health, readiness, and what the caller's org has now: jobs waiting or running, states and
    their size, live instances. Read from the usage and cache summaries, never from the lists,
    so it costs the same with a year of history."""
    health = client.health()
    ready = client.readiness()
    org = client.whoami()["org"]
    usage = client.usage(org)["usage"]
    cache = client.cache_status()
    counts = {"jobs_queued": usage["queued_jobs"], "jobs_running": usage["running_jobs"],
              "states": cache["state_count"], "states_bytes": usage["state_bytes"],
              "instances_live": usage["instances"]}
    if output == "json":
        print_json({"url": client.url, "org": org, "health": health, "ready": ready, "counts": counts})
    else:
        checks = ", ".join(f"{k} {v}" for k, v in (ready.get("checks") or {}).items())
        stdout_console().print(
            f"appliance  {client.url}  version {health.get('version', '?')}\n"
            f"ready      {'yes' if ready.get('ok') else 'NO'}  ({checks})\n"
            f"org        {org}\n"
            f"jobs       {counts['jobs_queued']} queued, {counts['jobs_running']} running\n"
            f"states     {counts['states']} on this host ({human_bytes(counts['states_bytes'])} in all)\n"
            f"instances  {counts['instances_live']} live", markup=False, highlight=False)
    return exit_codes.OK if ready.get("ok") else exit_codes.UNAVAILABLE


# -- cancel / extend -----------------------------------------------------------------------
def cancel_job(client: Client, job_id: str, output: str) -> int:
    cancelled = client.cancel(job_id)
    if output == "json":
        print_json(cancelled.job)
    elif cancelled.requested:
        note(f"job {job_id}: cancel requested")
    else:
        note(f"job {job_id} had already finished: {cancelled.job.get('status')}")
    return exit_codes.OK


def extend_instance(client: Client, ref: str, ttl_seconds: int, output: str) -> int:
    instance = client.extend(ref, ttl_seconds)
    if output == "json":
        print_json(instance)
    else:
        sys.stdout.write(f"instance {instance['instance_id']} expires at {instance['expires_at']}\n")
    return exit_codes.OK
