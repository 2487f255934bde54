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
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
              help="Lowest level logged by this command and the workers `up` starts; overrides the `log_level` "
                   "setting.")
@click.option("--log-format", type=click.Choice(["text", "json"]),
              help="`text` or `json`; overrides the `log_format` setting.")
def cli(log_level: str | None, log_format: str | None) -> None:
    """The sqlrs appliance service."""
    from pydantic import ValidationError

    from appliance.logs import configure
    try:  # the settings' own check is the command's, which reports it; logging starts either way
        settings = load_settings()
        level, fmt = log_level or settings.log_level, log_format or settings.log_format
    except ValidationError:
        level, fmt = log_level or "INFO", log_format or "text"
    configure(level, fmt)
    os.environ.update(SQLRS_LOG_LEVEL=level, SQLRS_LOG_FORMAT=fmt)  # the workers `up` starts, and every child


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
    """Serve the API only: the reconciler and the workers run as processes of their own."""
    from appliance.service.supervisor import serve_api
    serve_api(load_settings(listen=listen))


@cli.command("reconciler")
def reconciler_cmd() -> None:
    """Run this host's reconciler until SIGTERM: host heartbeat, expiry, crash repair, warm pool."""
    from appliance.service.supervisor import run_reconciler
    run_reconciler(load_settings())


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


@cli.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(path_type=Path))
def backup_cmd(file: Path, data_dir: Path | None) -> None:
    """Back up the Control DB to FILE (a tar.gz: manifest + SQLite online backup or pg_dump), 0600.
    Safe while the appliance runs. States' data is not in it: it lives in the store and the object store."""
    from appliance.service.backup import backup
    click.echo(f"backed up to {file}: {backup(load_settings(data_dir=data_dir), file).summary()}")


@cli.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--yes", is_flag=True,
              help="PostgreSQL Control DB: confirm that every API and worker, on every host, is stopped.")
def restore_cmd(file: Path, data_dir: Path | None, yes: bool) -> None:
    """Replace the Control DB with the one in FILE (made by `backup`); checks it first and changes
    nothing if it is damaged, altered or from a newer release.

    SQLite: refused while `up` runs on the data dir; the previous DB is kept beside it as
    control.db.before-restore-<time>. PostgreSQL: one transaction; nothing can tell whether an API
    or worker still uses it, so stop every one of them first and pass --yes. A backup of an older
    schema is restored as it is: run `migrate` (or `up`) afterwards, then `reconcile`."""
    from appliance.service.backup import restore
    click.echo(restore(load_settings(data_dir=data_dir), file, confirmed=yes).summary())


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
