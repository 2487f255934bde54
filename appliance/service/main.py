"""`sqlrs-appliance`: run the embedded appliance, a worker, or one reconciler pass."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from appliance.errors import ApplianceError
from appliance.settings import load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="INFO", show_default=True, envvar="SQLRS_LOG_LEVEL",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
              help="Lowest level logged, by this command and the workers `up` starts (also SQLRS_LOG_LEVEL).")
@click.option("--log-format", default="text", show_default=True, envvar="SQLRS_LOG_FORMAT",
              type=click.Choice(["text", "json"]),
              help="text: for people; json: one JSON object a line with job_id/task_id/org/request_id "
                   "(also SQLRS_LOG_FORMAT).")
def cli(log_level: str, log_format: str) -> None:
    """The sqlrs appliance service."""
    from appliance.logs import configure
    configure(log_level, log_format)
    os.environ.update(SQLRS_LOG_LEVEL=log_level, SQLRS_LOG_FORMAT=log_format)  # the workers `up` starts


@cli.command()
@click.option("--data-dir", type=click.Path(path_type=Path), help="Overrides SQLRS_DATA_DIR.")
@click.option("--listen", help="host:port for the API; overrides SQLRS_LISTEN.")
@click.option("--workers", type=int, help="Worker processes; overrides SQLRS_WORKERS.")
def up(data_dir: Path | None, listen: str | None, workers: int | None) -> None:
    """Run the embedded appliance (API, workers, private redis) until SIGTERM."""
    from appliance.service.supervisor import up as run_up
    run_up(load_settings(data_dir=data_dir, listen=listen, workers=workers))


@cli.command("api")
@click.option("--listen", help="host:port for the API; overrides SQLRS_LISTEN.")
def api_cmd(listen: str | None) -> None:
    """Serve the API and run the reconciler, without workers or a private Redis."""
    from appliance.service.supervisor import serve_api
    serve_api(load_settings(listen=listen))


@cli.command("token")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--org", help="Org the token acts for; default the default org.")
@click.option("--name", required=True, help="What the token is for, e.g. ci-pipeline.")
def token_cmd(data_dir: Path | None, org: str | None, name: str) -> None:
    """Create an admin API token and print it once; only its hash is stored."""
    from appliance.api.auth import create_token
    from appliance.control.db import open_database
    settings = load_settings(data_dir=data_dir)
    open_database(settings.control_db_url)
    click.echo(create_token(org or settings.default_org, name))


@cli.command()
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
def worker(burst: bool) -> None:
    """Run one RQ worker (settings from SQLRS_* variables)."""
    from appliance.service.worker import run_worker
    run_worker(load_settings(), burst=burst)


@cli.command("reconcile")
@click.option("--data-dir", type=click.Path(path_type=Path))
def reconcile_once(data_dir: Path | None) -> None:
    """Run one reconciler pass and print what it changed (JSON)."""
    from appliance.context import build_context
    from appliance.orchestrator.reconciler import reconcile
    ctx = build_context(load_settings(data_dir=data_dir))
    click.echo(json.dumps(vars(reconcile(ctx)), indent=2))


@cli.group("hosts", invoke_without_command=True)
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
@click.pass_context
def hosts_cmd(click_ctx: click.Context, data_dir: Path | None, as_json: bool) -> None:
    """List the host registry (status, heartbeat age, store, ports); subcommands drain/undrain."""
    from appliance.control.db import open_database
    from appliance.orchestrator import hosts
    settings = load_settings(data_dir=data_dir)
    open_database(settings.control_db_url)
    click_ctx.obj = settings
    if click_ctx.invoked_subcommand is not None:
        return
    rows = [hosts.describe(h, settings) for h in hosts.all_hosts()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'HOST':<20} {'STATUS':<8} {'HEARTBEAT':>9}  {'DRIVER':<6} {'FREE':>10}  PORTS")
    for row in rows:
        click.echo(f"{row['host_id']:<20} {row['status']:<8} {row['heartbeat_age_seconds']:>8}s  "
                   f"{row['storage_driver']:<6} {row['store_free_bytes'] // 1024**2:>8}Mi  {row['ports']}"
                   + (f"  ({row['drained_reason']})" if row["drained_reason"] else ""))


@hosts_cmd.command("drain")
@click.argument("host_id")
@click.option("--reason", help="Shown in `hosts` until the host is undrained.")
@click.pass_obj
def hosts_drain(settings, host_id: str, reason: str | None) -> None:
    """Send no new work to HOST; its queued jobs move to other hosts, its instances keep running."""
    from appliance.orchestrator import hosts
    hosts.set_drained(host_id, True, reason)
    click.echo(f"host {host_id} drained")


@hosts_cmd.command("undrain")
@click.argument("host_id")
@click.pass_obj
def hosts_undrain(settings, host_id: str) -> None:
    """Let HOST take new work again."""
    from appliance.orchestrator import hosts
    hosts.set_drained(host_id, False)
    click.echo(f"host {host_id} takes work again")


@cli.command("migrate")
@click.option("--data-dir", type=click.Path(path_type=Path))
def migrate_cmd(data_dir: Path | None) -> None:
    """Apply Control DB migrations and exit."""
    from appliance.control.db import open_database
    from appliance.control.migrations import migrate
    applied = migrate(open_database(load_settings(data_dir=data_dir).control_db_url))
    click.echo(f"applied migrations: {applied or 'none (up to date)'}")


@cli.command("doctor")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(data_dir: Path | None, as_json: bool) -> None:
    """Check the host: storage choice and why, Postgres, ports, Control DB, Redis, object store."""
    from appliance.service.doctor import as_dicts, run_checks
    checks = run_checks(load_settings(data_dir=data_dir))
    if as_json:
        click.echo(json.dumps(as_dicts(checks), indent=2))
    else:
        for check in checks:
            click.echo(f"{'ok ' if check.ok else 'FAIL'}  {check.name:<13} {check.detail}")
    if not all(check.ok for check in checks):
        sys.exit(1)


@cli.command("destroy")
@click.option("--data-dir", type=click.Path(path_type=Path), required=True)
@click.option("--yes", is_flag=True, help="Really delete everything under the data dir.")
def destroy(data_dir: Path, yes: bool) -> None:
    """Stop every server of a stopped appliance (on whichever runtime it ran), unmount its store, delete its data dir."""
    from appliance.service.teardown import destroy_data_dir
    if not yes:
        raise click.UsageError("this deletes every state and instance; pass --yes to confirm")
    done = destroy_data_dir(load_settings(data_dir=data_dir))
    click.echo(f"destroyed {data_dir}: {done.summary()}")


def main() -> None:
    from pydantic import ValidationError
    try:
        cli(standalone_mode=True)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        click.echo(f"configuration error: {problems}", err=True)
        sys.exit(2)
    except ApplianceError as exc:
        click.echo(f"error [{exc.code}]: {exc.message}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
