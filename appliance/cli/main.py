"""`sqlrs`: verbs and global options. Each verb is a thin shell over a module that does the work."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from appliance import __version__
from appliance.cli import exit_codes
from appliance.cli.config import CliConfig
from appliance.cli.group import GLOBAL_FLAGS, SqlrsGroup, client_for, with_global_options
from appliance.cli.output import print_json

if TYPE_CHECKING:
    from appliance.cli.session import RunStage
    from sqlrs_client import Client

PSQL_ARGS = {"ignore_unknown_options": True, "allow_interspersed_args": False}


@click.group(cls=SqlrsGroup, epilog=exit_codes.EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@with_global_options
@click.version_option(__version__, prog_name="sqlrs")
@click.pass_context
def cli(ctx: click.Context, **flags: Any) -> None:
    """sqlrs: PostgreSQL databases in known, reproducible states, from the sqlrs appliance.

    Global options may come before the verb or after it.
    """
    ctx.meta[GLOBAL_FLAGS] = flags  # each verb resolves them, with those it was given itself


def _follow_and_report(client: Client, cfg: CliConfig, job_id: str, long: bool = False) -> int:
    from appliance.cli.prepare import report_finished
    status = _follow(client, job_id)
    return exit_codes.DETACHED if status is None else report_finished(status, cfg.output, long)


def _follow(client: Client, job_id: str, *, skipped: str = "") -> dict[str, Any] | None:
    """The job's final status, progress on stderr meanwhile; None when Ctrl+C detached from it."""
    from appliance.cli.watch import follow_job
    try:
        return follow_job(client, job_id, sys.stderr)
    except KeyboardInterrupt:
        click.echo(f"\ndetached; job {job_id} keeps running{skipped}.\n  resume: sqlrs watch {job_id}\n"
                   f"  cancel: sqlrs cancel {job_id}", err=True)
        return None


def _prepare_then_run(client: Client, accepted: Any, stage: RunStage) -> int:
    """The composite's second half: once the job has its instance, the run stage against it."""
    from appliance.cli.prepare import prepared_instance
    from appliance.cli.session import run_stage_with
    status = accepted if accepted.get("result") else _follow(client, accepted["job_id"],
                                                             skipped=f" (its {stage.verb} is skipped)")
    if status is None:
        return exit_codes.DETACHED
    return run_stage_with(client, prepared_instance(status), stage)


def _run_stage_of(args: tuple[str, ...], no_watch: bool) -> tuple[tuple[str, ...], RunStage | None]:
    """The prepare's own args, and the run stage that follows them (checked before anything runs)."""
    from appliance.cli.session import check_stage, split_run_stage
    args, stage = split_run_stage(args)
    if stage is not None:
        if no_watch:
            raise click.UsageError(f"--no-watch cannot be combined with {stage.verb}: the run needs the instance")
        check_stage(stage)
    return args, stage


def _submit_and_follow(cfg: CliConfig, *, image: str | None, psql_args: tuple[str, ...], plan_only: bool,
                       ttl: int | None = None, instance_name: str | None = None, no_watch: bool = False,
                       long: bool = False, stage: RunStage | None = None) -> None:
    from appliance.cli.prepare import submit_psql
    if not psql_args:
        raise click.UsageError("give psql arguments after --, e.g. -- -f schema.sql")
    _follow_submission(cfg, lambda client: submit_psql(
        client, image=image or cfg.image, psql_args=list(psql_args), cwd=Path.cwd(), stdin_stream=sys.stdin,
        plan_only=plan_only, ttl_seconds=ttl, name=instance_name), no_watch=no_watch, long=long, stage=stage)


def _submit_lb_and_follow(cfg: CliConfig, *, image: str | None, project: Path, liquibase_args: tuple[str, ...],
                          plan_only: bool, ttl: int | None = None, instance_name: str | None = None,
                          no_watch: bool = False, long: bool = False, stage: RunStage | None = None) -> None:
    from appliance.cli.prepare import submit_lb
    if not liquibase_args:
        raise click.UsageError("give Liquibase arguments after --, e.g. -- update --changelog-file db/changelog.xml")
    _follow_submission(cfg, lambda client: submit_lb(
        client, image=image or cfg.image, liquibase_args=list(liquibase_args), project=project,
        plan_only=plan_only, ttl_seconds=ttl, name=instance_name), no_watch=no_watch, long=long, stage=stage)


def _follow_submission(cfg: CliConfig, submit, *, no_watch: bool, long: bool, stage: RunStage | None = None) -> None:
    from appliance.cli.prepare import print_accepted, report_finished
    with client_for(cfg) as client:
        accepted = submit(client)
        if stage is not None:
            sys.exit(_prepare_then_run(client, accepted, stage))
        if no_watch:
            print_accepted(accepted, cfg.url, cfg.output)
            sys.exit(exit_codes.OK)
        if accepted.get("result") and cfg.output == "human":  # answered at admission (warm pool)
            sys.exit(report_finished(accepted, cfg.output, long))
        sys.exit(_follow_and_report(client, cfg, accepted["job_id"], long))


_image = click.option("--image", metavar="IMG", help="Base image [config key image; default postgres:15].")
_long = click.option("--long", is_flag=True, help="Show ids in full.")
_args = click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)


def _instance_options(command):
    """--ttl, --name and --no-watch: what every prepare verb takes about the instance it hands out."""
    for option in reversed([
            click.option("--ttl", type=click.IntRange(min=1), metavar="SECONDS", help="Instance lifetime."),
            click.option("--name", "instance_name", metavar="NAME", help="Name the instance (for run:psql --instance)."),
            click.option("--no-watch", is_flag=True, help="Print JOB_ID/STATUS_URL/EVENTS_URL and return at once.")]):
        command = option(command)
    return command


@cli.command("prepare:psql", context_settings=PSQL_ARGS,
             epilog="Example: sqlrs prepare:psql -- -f schema.sql -f data.sql")
@_image
@_instance_options
@_long
@_args
@click.pass_obj
def prepare_psql(cfg: CliConfig, image: str | None, ttl: int | None, instance_name: str | None,
                 no_watch: bool, long: bool, psql_args: tuple[str, ...]) -> None:
    """Build (or reuse) the state the psql scripts produce; print DSN=… of a fresh instance of it.

    Local files named by -f (and their includes) are uploaded; -f - reads standard input.
    Followed by `run:psql -- PSQL ARGS` or `run -- COMMAND`, runs that against the instance,
    then deletes it, and exits with the run's exit code.
    """
    psql_args, stage = _run_stage_of(psql_args, no_watch)
    _submit_and_follow(cfg, image=image, psql_args=psql_args, plan_only=False, ttl=ttl,
                       instance_name=instance_name, no_watch=no_watch, long=long, stage=stage)


@cli.command("plan:psql", context_settings=PSQL_ARGS)
@_image
@_long
@_args
@click.pass_obj
def plan_psql(cfg: CliConfig, image: str | None, long: bool, psql_args: tuple[str, ...]) -> None:
    """Show the steps prepare:psql would run and which are already cached; creates nothing."""
    _submit_and_follow(cfg, image=image, psql_args=psql_args, plan_only=True, long=long)


_project = click.option("--dir", "project", type=click.Path(file_okay=False, path_type=Path), default=".",
                        show_default=True, help="The Liquibase project directory to upload (paths are relative to it).")
_lb_args = click.argument("liquibase_args", nargs=-1, type=click.UNPROCESSED)


@cli.command("prepare:lb", context_settings=PSQL_ARGS,
             epilog="Example: sqlrs prepare:lb -- update --changelog-file db/changelog.xml --contexts dev")
@_image
@_project
@_instance_options
@_long
@_lb_args
@click.pass_obj
def prepare_lb(cfg: CliConfig, image: str | None, project: Path, ttl: int | None, instance_name: str | None,
               no_watch: bool, long: bool, liquibase_args: tuple[str, ...]) -> None:
    """Build (or reuse) one state per Liquibase changeset; print DSN=... of a fresh instance.

    The project directory is uploaded; the appliance supplies the connection (no --url etc.).
    Followed by `run:psql -- PSQL ARGS` or `run -- COMMAND`, runs that against the instance,
    then deletes it, and exits with the run's exit code.
    """
    liquibase_args, stage = _run_stage_of(liquibase_args, no_watch)
    _submit_lb_and_follow(cfg, image=image, project=project, liquibase_args=liquibase_args, plan_only=False,
                          ttl=ttl, instance_name=instance_name, no_watch=no_watch, long=long, stage=stage)


@cli.command("plan:lb", context_settings=PSQL_ARGS)
@_image
@_project
@_long
@_lb_args
@click.pass_obj
def plan_lb(cfg: CliConfig, image: str | None, project: Path, long: bool, liquibase_args: tuple[str, ...]) -> None:
    """Show the changesets prepare:lb would apply and which are already cached; creates nothing."""
    _submit_lb_and_follow(cfg, image=image, project=project, liquibase_args=liquibase_args, plan_only=True,
                          long=long)


@cli.group()
def cache() -> None:
    """The state cache: capacity and pressure, and why a prepare would (not) be a cache hit."""


@cache.command("explain", context_settings=PSQL_ARGS)
@_image
@_args
@click.pass_obj
def cache_explain(cfg: CliConfig, image: str | None, psql_args: tuple[str, ...]) -> None:
    """Would prepare:psql with these args be a cache hit? If not, which step changed. Creates nothing."""
    from appliance.cli.prepare import psql_request_of
    if not psql_args:
        raise click.UsageError("give psql arguments after --, e.g. -- -f schema.sql")
    request = psql_request_of(image=image or cfg.image, psql_args=list(psql_args), cwd=Path.cwd(),
                              stdin_stream=sys.stdin, plan_only=False)
    with client_for(cfg) as client:
        answer = client.explain(request)
    if cfg.output == "json":
        print_json(answer)
        return
    click.echo(f"{answer['decision']}: {answer['reason_code']}")
    for step in answer["steps"]:
        mark = "cached" if step["cached"] else "build "
        click.echo(f"  {mark}  {step['task_id']:<12} {step['state_id'][:12]}  {step['summary']}")


@cache.command("status")
@click.pass_obj
def cache_status(cfg: CliConfig) -> None:
    """Usage, cap, watermarks, free space, reclaimable bytes and the last eviction."""
    with client_for(cfg) as client:
        status = client.cache_status()
    if cfg.output == "json":
        print_json(status)
        return
    gib = 1024**3
    click.echo(f"usage {status['usage_bytes'] / gib:.2f} GiB of {status['effective_max_bytes'] / gib:.2f} GiB "
               f"(evict above {status['high_watermark']:.0%}, down to {status['low_watermark']:.0%}); "
               f"store free {status['store_free_bytes'] / gib:.2f} GiB; {status['state_count']} states, "
               f"{status['reclaimable_bytes'] / gib:.2f} GiB reclaimable")
    if status["pressure_reasons"]:
        click.echo("pressure: " + ", ".join(status["pressure_reasons"]))
    if status["last_eviction"]:
        last = status["last_eviction"]
        click.echo(f"last eviction {last['completed_at']}: {last['evicted_count']} states, "
                   f"{last['freed_bytes'] / gib:.2f} GiB freed ({last['trigger']})")


@cli.command()
@click.argument("job_id")
@_long
@click.pass_obj
def watch(cfg: CliConfig, job_id: str, long: bool) -> None:
    """Follow a prepare job until it ends, then print what prepare:psql prints."""
    with client_for(cfg) as client:
        sys.exit(_follow_and_report(client, cfg, job_id, long))


@cli.command()
@click.argument("job_id")
@click.pass_obj
def cancel(cfg: CliConfig, job_id: str) -> None:
    """Cancel a queued or running prepare job."""
    from appliance.cli.inventory import cancel_job
    with client_for(cfg) as client:
        sys.exit(cancel_job(client, job_id, cfg.output))


@cli.command("ls")
@click.option("--instances", "what", flag_value="instances", default=True, help="Instances (the default).")
@click.option("--states", "what", flag_value="states", help="States, as a tree.")
@click.option("--jobs", "what", flag_value="jobs", help="Prepare jobs.")
@click.option("--tasks", "what", flag_value="tasks", help="Tasks (of one job with --job).")
@click.option("--job", metavar="JOB", help="Only this job (a job id prefix for --jobs, a full id for --tasks).")
@click.option("--limit", type=click.IntRange(min=1), metavar="N",
              help="At most N rows, oldest first (default: all; the state tree is always whole).")
@_long
@click.pass_obj
def ls(cfg: CliConfig, what: str, job: str | None, limit: int | None, long: bool) -> None:
    """List instances, states, jobs or tasks."""
    from appliance.cli.inventory import list_objects
    with client_for(cfg) as client:
        sys.exit(list_objects(client, what, job, cfg.output, long, at_most=limit))


@cli.command()
@click.option("-r", "--recurse", is_flag=True, help="Also delete the states (and instances) that depend on a state.")
@click.option("-f", "--force", is_flag=True, help="Delete even when in use (open connections, running job).")
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
@_long
@click.argument("id_prefix")
@click.pass_obj
def rm(cfg: CliConfig, recurse: bool, force: bool, dry_run: bool, long: bool, id_prefix: str) -> None:
    """Delete the one instance, state or job whose id starts with ID_PREFIX (8+ hex characters)."""
    from appliance.cli.inventory import check_prefix, remove
    check_prefix(id_prefix)  # before any network: a usage error needs no appliance
    with client_for(cfg) as client:
        sys.exit(remove(client, id_prefix, recurse=recurse, force=force, dry_run=dry_run, output=cfg.output,
                        long=long))


@cli.command()
@click.pass_obj
def status(cfg: CliConfig) -> None:
    """Health, readiness and counts of the appliance."""
    from appliance.cli.inventory import show_status
    with client_for(cfg) as client:
        sys.exit(show_status(client, cfg.output))


@cli.command("run:psql", context_settings=PSQL_ARGS)
@click.option("--instance", "instance_ref", metavar="ID|PREFIX|NAME", help="Default: the newest active instance.")
@_args
@click.pass_obj
def run_psql_command(cfg: CliConfig, instance_ref: str | None, psql_args: tuple[str, ...]) -> None:
    """Run the local psql against an instance (connection flags are rejected); exits with psql's code."""
    from appliance.cli.run import check_run_args, run_psql
    check_run_args(list(psql_args))
    with client_for(cfg) as client:
        sys.exit(run_psql(client, instance_ref, list(psql_args)))


@cli.command()
@click.argument("instance_ref", metavar="INSTANCE")
@click.option("--ttl", type=click.IntRange(min=1), required=True, metavar="SECONDS", help="New lifetime from now.")
@click.pass_obj
def extend(cfg: CliConfig, instance_ref: str, ttl: int) -> None:
    """Extend an instance's lifetime to SECONDS from now."""
    from appliance.cli.inventory import extend_instance
    with client_for(cfg) as client:
        sys.exit(extend_instance(client, instance_ref, ttl, cfg.output))


@cli.command("run", context_settings=PSQL_ARGS,
             epilog="Example: sqlrs run -- make test   (DATABASE_URL, PGHOST, PGPORT, PGUSER, PGPASSWORD, "
                    "PGDATABASE are set for it)")
@_instance_options
@_long
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run_command(cfg: CliConfig, ttl: int | None, instance_name: str | None, no_watch: bool, long: bool,
                command: tuple[str, ...]) -> None:
    """Prepare this project's database (sqlrs.toml), run COMMAND with it, then delete it.

    The exit code is COMMAND's. For test runners that are not Python; see also `sqlrs init`.
    """
    from appliance.cli.project import project_here
    from appliance.cli.session import RunStage, check_stage
    if no_watch:
        raise click.UsageError("--no-watch cannot be combined with run: the command needs the instance")
    stage = RunStage("run", command[1:] if command[:1] == ("--",) else command)
    check_stage(stage)
    request = project_here().request(ttl_seconds=ttl, name=instance_name)
    with client_for(cfg) as client:
        sys.exit(_prepare_then_run(client, client.submit(request), stage))


@cli.command("init", context_settings=PSQL_ARGS,
             epilog="Examples: sqlrs init psql --dir db -- -f schema.sql -f seed.sql\n"
                    "          sqlrs init lb --dir db -- update --changelog-file changelog.xml")
@click.argument("kind", type=click.Choice(["psql", "lb"]))
@_image
@click.option("--dir", "directory", default=".", show_default=True, metavar="DIR",
              help="psql's working directory, or the Liquibase project (relative to here).")
@click.option("--force", is_flag=True, help="Replace an existing sqlrs.toml.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def init(cfg: CliConfig, kind: str, image: str | None, directory: str, force: bool, args: tuple[str, ...]) -> None:
    """Write sqlrs.toml here: how this project's database is prepared (KIND psql or lb, its
    arguments after --, the base image, and the appliance URL when one is set)."""
    from appliance.cli.project import write_project
    write_project(cfg, kind, args[1:] if args[:1] == ("--",) else args, image=image, directory=directory,
                  force=force)


@cli.command("completion", epilog="Example (bash): echo 'eval \"$(sqlrs completion bash)\"' >> ~/.bashrc")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish)."""
    from appliance.cli.completion import script
    click.echo(script(shell, cli), nl=False)


def _add_admin_verbs() -> None:
    from appliance.cli.admin import VERBS
    for verb in VERBS:
        cli.add_command(verb)


_add_admin_verbs()


def main() -> None:
    if os.environ.get("_SQLRS_COMPLETE"):  # a shell asking what may come next
        from appliance.cli.completion import register
        register()
    cli(prog_name="sqlrs")


if __name__ == "__main__":
    main()
