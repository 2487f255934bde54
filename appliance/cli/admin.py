"""What an org's admin (and an operator) does: tokens, quota and usage, projects, the audit log,
sharing states, and moving them between appliances (export/import). Each verb prints a table, or
the API's JSON with ``--output json``."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from appliance.cli import exit_codes
from appliance.cli.config import CliConfig
from appliance.cli.failures import CliFailure
from appliance.cli.group import SqlrsCommand, SqlrsGroup, client_for
from appliance.cli.output import human_bytes, note, print_json, short, stdout_console, table

if TYPE_CHECKING:
    from sqlrs_client import Client


def _show(cfg: CliConfig, answer: Any, columns: list[str], cells: Callable[[Any], list[str]]) -> None:
    """JSON as the API gave it, or a table of ``cells`` per row."""
    if cfg.output == "json":
        print_json(answer)
        return
    rows = answer if isinstance(answer, list) else [answer]
    if not rows:
        note("none")
        return
    stdout_console().print(table(columns, [cells(row) for row in rows]))


def _org(cfg: CliConfig, client: Client) -> str:
    """The org acted in: ``--org`` (a global option), else the token's."""
    return cfg.org or client.whoami()["org"]


# -- tokens ------------------------------------------------------------------------------------
@click.group(cls=SqlrsGroup)
def token() -> None:
    """The org's API tokens (org admins)."""


def _token_cells(t: dict[str, Any]) -> list[str]:
    return [t["token_id"], t["name"], t["role"], t.get("expires_at") or "never", t.get("revoked_at") or "-",
            t.get("last_used_at") or "-"]


_TOKEN_COLUMNS = ["token", "name", "role", "expires", "revoked", "last used"]


@token.command("ls")
@click.pass_obj
def token_ls(cfg: CliConfig) -> None:
    """List the org's tokens (never their secrets)."""
    with client_for(cfg) as client:
        _show(cfg, client.tokens(_org(cfg, client)), _TOKEN_COLUMNS, _token_cells)


@token.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "member", "admin"]), default="member", show_default=True)
@click.option("--ttl", type=click.IntRange(min=1), metavar="SECONDS", help="Lifetime (default: the appliance's).")
@click.pass_obj
def token_create(cfg: CliConfig, name: str, role: str, ttl: int | None) -> None:
    """Create a token; its secret is printed once, to stdout (nothing else goes there)."""
    with client_for(cfg) as client:
        created = client.create_token(_org(cfg, client), name, role=role, ttl_seconds=ttl)
    if cfg.output == "json":
        print_json(created)
        return
    note(f"token {created['token_id']} ({created['role']}), expires {created.get('expires_at') or 'never'}; "
         "its secret follows, shown this once")
    sys.stdout.write(created["token"] + "\n")


@token.command("revoke")
@click.argument("token_id")
@click.pass_obj
def token_revoke(cfg: CliConfig, token_id: str) -> None:
    """Revoke a token: it stops working at once."""
    with client_for(cfg) as client:
        _show(cfg, client.revoke_token(_org(cfg, client), token_id), _TOKEN_COLUMNS, _token_cells)


# -- quota and usage ---------------------------------------------------------------------------
LIMITS = ("max_running_jobs", "max_queued_jobs", "max_instances", "max_state_bytes", "max_ttl_seconds",
          "instance_memory_mb", "instance_cpus")


def _usage_cells(answer: dict[str, Any]) -> list[list[str]]:
    limits, usage = answer["limits"], answer["usage"]
    used = {"max_running_jobs": usage["running_jobs"], "max_queued_jobs": usage["queued_jobs"],
            "max_instances": usage["instances"], "max_state_bytes": human_bytes(usage["state_bytes"])}
    return [[name, str(used.get(name, "-")), "none" if limits[name] is None else str(limits[name])] for name in LIMITS]


@click.command("usage", cls=SqlrsCommand)
@click.pass_obj
def usage(cfg: CliConfig) -> None:
    """The org's limits and what it uses of them now."""
    with client_for(cfg) as client:
        answer = client.usage(_org(cfg, client))
    if cfg.output == "json":
        print_json(answer)
        return
    stdout_console().print(table(["limit", "in use", "limit value"], _usage_cells(dict(answer))))


@click.command("quota", cls=SqlrsCommand)
@click.argument("org_name", metavar="ORG")
@click.option("--set", "changes", multiple=True, metavar="LIMIT=VALUE",
              help=f"Change a limit (repeatable); VALUE 'default' returns it to the appliance's. LIMIT: {', '.join(LIMITS)}.")
@click.pass_obj
def quota(cfg: CliConfig, org_name: str, changes: tuple[str, ...]) -> None:
    """Show an org's limits, or change them with --set (operators)."""
    body: dict[str, Any] = {}
    for change in changes:
        name, _, value = change.partition("=")
        if name not in LIMITS or not value:
            raise click.UsageError(f"--set {change!r}: expected LIMIT=VALUE with LIMIT one of {', '.join(LIMITS)}")
        body[name] = None if value == "default" else _number(name, value)
    with client_for(cfg) as client:
        answer = client.set_quota(org_name, **body) if body else client.usage(org_name)
    if cfg.output == "json":
        print_json(answer)
        return
    stdout_console().print(table(["limit", "in use", "limit value"], _usage_cells(dict(answer))))


def _number(name: str, value: str) -> int | float:
    try:
        return float(value) if name == "instance_cpus" else int(value)
    except ValueError:
        raise click.UsageError(f"--set {name}={value}: not a number") from None


# -- projects and audit --------------------------------------------------------------------------
@click.group(cls=SqlrsGroup)
def project() -> None:
    """Server-side repositories prepares can name (source.project)."""


@project.command("ls")
@click.pass_obj
def project_ls(cfg: CliConfig) -> None:
    """List the org's projects."""
    with client_for(cfg) as client:
        _show(cfg, client.projects(), ["project", "repository", "created"],
              lambda p: [p["name"], p["repo_path"], p["created_at"]])


@project.command("add")
@click.argument("name")
@click.argument("repo_path")
@click.pass_obj
def project_add(cfg: CliConfig, name: str, repo_path: str) -> None:
    """Register a git repository on the appliance (under one of its project roots) as NAME."""
    with client_for(cfg) as client:
        _show(cfg, client.create_project(name, repo_path), ["project", "repository", "created"],
              lambda p: [p["name"], p["repo_path"], p["created_at"]])


@click.command("audit", cls=SqlrsCommand)
@click.option("--since", metavar="TIME", help="Only events at or after this time (ISO 8601).")
@click.option("--action", metavar="ACTION", help="Only this action, e.g. prepare.submitted.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, metavar="N")
@click.pass_obj
def audit(cfg: CliConfig, since: str | None, action: str | None, limit: int) -> None:
    """The audit log: who did what, when, with what outcome (oldest first; an operator's
    token sees every org's, or one org's with --org)."""
    with client_for(cfg) as client:
        _show(cfg, client.audit(since=since, action=action, org=cfg.org, at_most=limit),
              ["at", "org", "actor", "action", "object", "outcome"],
              lambda e: [e["at"], e["org"], e["actor"], e["action"], short(e.get("object_id")), e["outcome"]])


# -- sharing and moving states ---------------------------------------------------------------------
_SHARE_COLUMNS = ["state", "org", "granted by", "since"]


def _share_cells(s: dict[str, Any]) -> list[str]:
    return [short(s["state_id"]), s["org"], s.get("granted_by", "-"), s.get("created_at", "-")]


@click.group(cls=SqlrsGroup)
def share() -> None:
    """Share a state with another org (read-only: it can prepare from it, never change it)."""


@share.command("ls")
@click.argument("state_id")
@click.pass_obj
def share_ls(cfg: CliConfig, state_id: str) -> None:
    """The orgs a state is shared with."""
    with client_for(cfg) as client:
        _show(cfg, client.shares(state_id), _SHARE_COLUMNS, _share_cells)


@share.command("add")
@click.argument("state_id")
@click.argument("grantee", metavar="ORG")
@click.pass_obj
def share_add(cfg: CliConfig, state_id: str, grantee: str) -> None:
    """Share STATE_ID with ORG."""
    with client_for(cfg) as client:
        _show(cfg, client.share(state_id, grantee), _SHARE_COLUMNS, _share_cells)


@share.command("rm")
@click.argument("state_id")
@click.argument("grantee", metavar="ORG")
@click.pass_obj
def share_rm(cfg: CliConfig, state_id: str, grantee: str) -> None:
    """Stop sharing STATE_ID with ORG."""
    with client_for(cfg) as client:
        answer = client.unshare(state_id, grantee)
    if cfg.output == "json":
        print_json(answer)
    else:
        note(f"state {short(state_id)} is no longer shared with {grantee}")


class _ProgressLines:
    """A transfer's progress on stderr: a rich bar on a terminal, else a line per ~10%."""

    def __init__(self, what: str) -> None:
        self.what, self.started, self._shown_tenth = what, time.monotonic(), -1
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _ProgressLines:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                                 console=Console(file=sys.stderr), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.what, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def show(self, transfer: Any) -> None:
        done, total = transfer["bytes_done"], transfer["bytes_total"]
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total or None,
                             description=f"{self.what} ({transfer['status']})")
            return
        tenth = min(10, done * 10 // total) if total else 0
        if transfer["status"] in ("running", "succeeded") and tenth > self._shown_tenth:
            self._shown_tenth = tenth
            note(f"{self.what}: {tenth * 10}% ({human_bytes(done)} of {human_bytes(total)})")

    def done(self, transfer: Any) -> None:
        note(f"{self.what}: {transfer['status']}, done in {time.monotonic() - self.started:.1f}s")


def _transfer(cfg: CliConfig, client: Client, transfer: Any, what: str, wait: bool) -> Any:
    """Follow the transfer to its end (unless ``--no-wait``); a failed one ends the command."""
    final = transfer
    if wait and transfer["status"] not in ("succeeded", "failed"):
        with _ProgressLines(what) as lines:
            for final in client.follow_transfer(transfer["transfer_id"]):
                if cfg.output != "json":
                    lines.show(final)
        if cfg.output != "json":
            lines.done(final)
    elif final["status"] == "succeeded" and cfg.output != "json":
        note(f"{what}: nothing to do (done already)")
    if final["status"] == "failed":
        error = final.get("error") or {"code": "internal_error", "message": "the transfer failed"}
        if cfg.output == "json":
            print_json(final)
        raise CliFailure(error["code"], f"{what} failed: {error['message']}", exit_codes.JOB_FAILED,
                         hint=f"its record: sqlrs transfer {final['transfer_id']}")
    return final


_TRANSFER_COLUMNS = ["transfer", "kind", "state", "status", "host", "progress"]


def _transfer_cells(t: dict[str, Any]) -> list[str]:
    total = t["bytes_total"]
    progress = f"{human_bytes(t['bytes_done'])} of {human_bytes(total)}" if total else human_bytes(t["bytes_done"])
    return [t["transfer_id"], t["kind"], short(t["state_id"]), t["status"], t["host"], progress]


def _manifest_cells(t: dict[str, Any]) -> list[str]:
    m = t.get("manifest") or {}
    ratio = f"{m['raw_bytes'] / m['stream_bytes']:.1f}x" if m.get("raw_bytes") and m.get("stream_bytes") else "-"
    return [t["state_id"], human_bytes(m.get("stream_bytes")), ratio, m.get("format", "-"),
            (m.get("signature") or {}).get("key_id", "unsigned")]


def _queued_only(cfg: CliConfig, transfer: dict[str, Any]) -> None:
    """``--no-wait``: the transfer's id (its JSON with ``--output json``)."""
    if cfg.output == "json":
        print_json(transfer)
    else:
        click.echo(transfer["transfer_id"])


@click.command("export", cls=SqlrsCommand)
@click.argument("state_id")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Follow the export to its end (with progress), or print its transfer id and return.")
@click.pass_obj
def export(cfg: CliConfig, state_id: str, wait: bool) -> None:
    """Stream a state (and what it needs) to the object store; another appliance imports it by id.
    A worker of a host holding the state does it; this follows its progress. ``--output json``
    prints the manifest."""
    with client_for(cfg) as client:
        final = _transfer(cfg, client, client.export_state(state_id), f"exporting state {short(state_id)}", wait)
    if final["status"] != "succeeded":
        _queued_only(cfg, final)
    elif cfg.output == "json":
        print_json(final["manifest"])
    else:
        _show(cfg, final, ["state", "stored", "ratio", "format", "signed by"], _manifest_cells)


@click.command("import", cls=SqlrsCommand)
@click.argument("state_id")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Follow the import to its end (with progress), or print its transfer id and return.")
@click.pass_obj
def import_(cfg: CliConfig, state_id: str, wait: bool) -> None:
    """Bring an exported state onto this appliance (exit 0 also when it was already here). Its
    manifest must be signed by this installation or a key in trusted_keys. ``--output json``
    prints the state."""
    with client_for(cfg) as client:
        final = _transfer(cfg, client, client.import_state(state_id), f"importing state {short(state_id)}", wait)
        if final["status"] != "succeeded":
            _queued_only(cfg, final)
            return
        state = client.state(state_id)
    _show(cfg, state, ["state", "image", "size", "summary"],
          lambda s: [s["state_id"], s["image_id"], human_bytes(s["size_bytes"]), s.get("summary") or "-"])


@click.command("transfer", cls=SqlrsCommand)
@click.argument("transfer_id")
@click.pass_obj
def transfer(cfg: CliConfig, transfer_id: str) -> None:
    """Show an export or import: its status and progress (``--output json``: also its manifest)."""
    with client_for(cfg) as client:
        _show(cfg, client.transfer(transfer_id), _TRANSFER_COLUMNS, _transfer_cells)


VERBS = (token, usage, quota, project, audit, share, export, import_, transfer)
