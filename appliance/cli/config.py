"""Where the CLI's settings come from: flags > environment > config file > defaults.

Resolution is a pure function of its inputs so the precedence is testable without a
process environment. The token is read here and nowhere else, and is never echoed.
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import InvalidArgument
from appliance.ids import valid_org

DEFAULT_URL = "http://127.0.0.1:7433"
DEFAULT_IMAGE = "postgres:15"
OUTPUT_FORMATS = ("human", "json")
FILE_KEYS = frozenset({"url", "ca_cert", "token_file", "output", "image", "org"})


@dataclass(frozen=True)
class CliConfig:
    url: str
    token: str | None
    output: str
    image: str
    org: str | None = None  # for principals in several orgs (sent as X-Sqlrs-Org)
    ca_cert: str | None = None  # the CA to trust on https instead of the system's store

    def __repr__(self) -> str:  # never show the token, not even in a traceback
        return f"CliConfig(url={self.url!r}, token={'***' if self.token else None}, " \
               f"output={self.output!r}, image={self.image!r}, org={self.org!r}, ca_cert={self.ca_cert!r})"


def default_config_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME", os.path.expanduser("~")), ".config")
    return Path(base) / "sqlrs" / "config.toml"


def read_config_file(path: Path, *, required: bool) -> dict[str, str]:
    """The file's known keys; a missing default file is fine, a missing explicit one is not."""
    if not path.exists():
        if required:
            raise InvalidArgument(f"config file {path} does not exist")
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgument(f"cannot read config file {path}: {exc}") from exc
    unknown = sorted(set(data) - FILE_KEYS)
    if unknown:
        raise InvalidArgument(f"unknown key(s) in {path}: {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(FILE_KEYS))})")
    for key, value in data.items():
        if not isinstance(value, str):
            raise InvalidArgument(f"{path}: {key} must be a string")
    return dict(data)


def resolve_config(flags: Mapping[str, str | None], env: Mapping[str, str],
                   file_values: Mapping[str, str]) -> CliConfig:
    """Merge the three sources; ``flags`` holds url, ca_cert, token, token_file, output, org (None = not given)."""
    def pick(flag: str, env_name: str, file_key: str | None = None) -> str | None:
        for value in (flags.get(flag), env.get(env_name), file_values.get(file_key or flag)):
            if value:
                return value
        return None

    output = pick("output", "SQLRS_OUTPUT") or "human"
    if output not in OUTPUT_FORMATS:
        raise InvalidArgument(f"output must be one of {', '.join(OUTPUT_FORMATS)}, not {output!r}")
    return CliConfig(
        url=(pick("url", "SQLRS_URL") or DEFAULT_URL).rstrip("/"),
        token=_token(flags, env, file_values),
        output=output,
        image=file_values.get("image") or DEFAULT_IMAGE,
        org=_org(pick("org", "SQLRS_ORG")),
        ca_cert=_path(pick("ca_cert", "SQLRS_CA_CERT")),
    )


def _path(value: str | None) -> str | None:
    return os.path.expanduser(value) if value else None


def _org(org: str | None) -> str | None:
    """Checked here too, so a typo is reported before any request is made."""
    return None if org is None else valid_org(org, "org (--org, SQLRS_ORG)")


def _token(flags: Mapping[str, str | None], env: Mapping[str, str],
           file_values: Mapping[str, str]) -> str | None:
    """A literal token beats a token file at the same level; a higher level beats both."""
    for literal, token_file in ((flags.get("token"), flags.get("token_file")),
                                (env.get("SQLRS_TOKEN"), env.get("SQLRS_TOKEN_FILE")),
                                (None, file_values.get("token_file"))):
        if literal:
            return literal.strip()
        if token_file:
            return read_token_file(Path(os.path.expanduser(token_file)))
    return None


def read_token_file(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise InvalidArgument(f"cannot read token file {path}: {exc.strerror or exc}") from exc
    if not token:
        raise InvalidArgument(f"token file {path} is empty")
    return token
