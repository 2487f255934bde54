"""The ``sqlrs`` command line's machinery, shared by every verb: the global options (before the
verb or after it), the configuration they resolve to, and one place that turns any failure into
``error: <code>: <message>`` and the documented exit code."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from appliance.cli import exit_codes
from appliance.cli.config import CliConfig, default_config_path, read_config_file, resolve_config
from appliance.cli.failures import CliFailure
from appliance.errors import ApplianceError, InvalidArgument
from sqlrs_client.errors import ApiError, InvalidInput, JobFailed, SqlrsError

if TYPE_CHECKING:
    from sqlrs_client import Client

# The global options: before the verb, or after it (``sqlrs ls --output json``); after wins.
_GLOBAL_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--url",), {"metavar": "URL", "help": "Appliance API base URL [env SQLRS_URL; default http://127.0.0.1:7433]."}),
    (("--ca-cert",), {"metavar": "FILE", "help": "CA certificate to trust on https (an appliance's own: its "
                                                 "data_dir/tls/ca.crt) [env SQLRS_CA_CERT]."}),
    (("--token",), {"metavar": "TOKEN", "help": "Bearer token [env SQLRS_TOKEN]. Prefer --token-file."}),
    (("--token-file",), {"metavar": "FILE", "help": "File holding the bearer token [env SQLRS_TOKEN_FILE]."}),
    (("--output",), {"type": click.Choice(["human", "json"]), "help": "Output format [env SQLRS_OUTPUT; default human]."}),
    (("--org",), {"metavar": "ORG", "help": "Org to act in, for tokens of several orgs [env SQLRS_ORG]."}),
    (("--config", "config_file"), {"metavar": "FILE", "type": click.Path(dir_okay=False, path_type=Path),
                                   "help": "Config file [default $XDG_CONFIG_HOME/sqlrs/config.toml]."}),
]
GLOBAL_NAMES = ("url", "ca_cert", "token", "token_file", "output", "org", "config_file")
GLOBAL_FLAGS = "sqlrs.global_flags"


def _global_options(*, hidden: bool = False) -> list[click.Option]:
    return [click.Option(list(decls), hidden=hidden, **kwargs) for decls, kwargs in _GLOBAL_OPTIONS]


class SqlrsCommand(click.Command):
    """A verb: takes the global options after its name too, and runs with the configuration
    they resolve to (flags > environment > config file > defaults)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        taken = sorted({p.name for p in self.params if p.name} & set(GLOBAL_NAMES))
        if taken:  # it would be taken for the global option of that name
            raise TypeError(f"sqlrs {self.name}: parameter(s) {', '.join(taken)} shadow global options")
        self.params += _global_options(hidden=True)  # listed once, in ``sqlrs --help``

    def invoke(self, ctx: click.Context) -> Any:
        flags = dict(ctx.meta.get(GLOBAL_FLAGS) or {})
        for name in GLOBAL_NAMES:
            value = ctx.params.pop(name, None)
            if value is not None:
                flags[name] = value
        ctx.obj = _resolve(flags)
        return super().invoke(ctx)


def _resolve(flags: dict[str, Any]) -> CliConfig:
    env = os.environ
    config_file = flags.get("config_file")
    file_values = read_config_file(config_file or default_config_path(env), required=config_file is not None)
    file_values.update(_project_values())
    return resolve_config({name: flags.get(name) for name in ("url", "ca_cert", "token", "token_file", "output", "org")},
                          env, file_values)


def _project_values() -> dict[str, str]:
    """A project's sqlrs.toml (here or above) names its appliance and base image: over the
    user's config file, under the environment and flags."""
    from sqlrs_client.project import find
    project = find()
    if project is None:
        return {}
    return {"image": project.image, **({"url": project.url} if project.url else {})}


class SqlrsGroup(click.Group):
    """Turns every failure into ``error: <code>: <message>`` on stderr and the documented exit code."""

    command_class = SqlrsCommand
    group_class = type  # ``cache`` and its verbs behave the same

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CliFailure as failure:
            _print_error(failure.code, failure.message, failure.hint)
            ctx.exit(failure.exit_code)
        except SqlrsError as error:  # what the client raised: the API's code, or its own
            _print_error(error.code, error.message, error.hint or _hint_for(error))
            ctx.exit(_exit_code(error))
        except InvalidArgument as error:  # local input: a missing file, a bad flag, a bad config
            _print_error(error.code, error.message)
            ctx.exit(exit_codes.USAGE)
        except ApplianceError as error:
            _print_error(error.code, error.message)
            ctx.exit(exit_codes.UNAVAILABLE)


def _exit_code(error: SqlrsError) -> int:
    if isinstance(error, ApiError):
        return exit_codes.for_http_status(error.status)
    if isinstance(error, JobFailed) or error.code == "no_dsn":
        return exit_codes.JOB_FAILED
    return exit_codes.USAGE if isinstance(error, InvalidInput) else exit_codes.UNAVAILABLE


def _hint_for(error: SqlrsError) -> str | None:
    if error.code == "unavailable":
        return "is the appliance running? set --url or SQLRS_URL"
    if isinstance(error, ApiError) and error.status == 401:
        return "pass a token with --token or --token-file (or SQLRS_TOKEN / SQLRS_TOKEN_FILE)"
    return None


def _print_error(code: str, message: str, hint: str | None = None) -> None:
    click.echo(f"error: {code}: {message}", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)


def with_global_options(function: Any) -> Any:
    for decls, kwargs in reversed(_GLOBAL_OPTIONS):
        function = click.option(*decls, **kwargs)(function)
    return function


def client_for(cfg: CliConfig) -> Client:
    """The API client of every verb, as this configuration says (the CLI's own resolution of
    URL and token is the only one: an empty token stops the client reading the environment again)."""
    from appliance import __version__
    from sqlrs_client import Client  # the HTTP library only for verbs that talk to the API
    return Client(cfg.url, cfg.token or "", org=cfg.org, user_agent=f"sqlrs-cli/{__version__}", ca_cert=cfg.ca_cert)
