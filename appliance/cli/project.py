"""``sqlrs init`` and the project it writes: ``sqlrs.toml``, how a repository's database is
prepared (``sqlrs_client.project``), for ``sqlrs run``, the composite commands and the pytest
plugin."""
from __future__ import annotations

from pathlib import Path

from appliance.cli import exit_codes
from appliance.cli.config import DEFAULT_URL, CliConfig
from appliance.cli.failures import CliFailure
from appliance.cli.output import note
from sqlrs_client.project import FILE_NAME, Project, find, parse


def project_here() -> Project:
    project = find(Path.cwd())
    if project is None:
        raise CliFailure("no_project", f"no {FILE_NAME} here or in a directory above (nor [tool.sqlrs] in a "
                         "pyproject.toml): write one with `sqlrs init`", exit_codes.USAGE)
    return project


def write_project(cfg: CliConfig, kind: str, args: tuple[str, ...], *, image: str | None, directory: str,
                  force: bool) -> None:
    """Checked as it will be read (the files the arguments name must exist), then written."""
    if not args:
        raise CliFailure("invalid_argument", "give the prepare's arguments after --, e.g. "
                         "sqlrs init psql -- -f schema.sql", exit_codes.USAGE)
    target = Path.cwd() / FILE_NAME
    if target.exists() and not force:
        raise CliFailure("already_exists", f"{target} exists (--force replaces it)", exit_codes.USAGE)
    values = {"prepare": kind, "args": list(args), "dir": directory, "image": image or cfg.image}
    if cfg.url != DEFAULT_URL:
        values["url"] = cfg.url
    project = parse(values, Path.cwd(), target)
    project.request()  # packs what it reads: a missing file is an error now, not at the first run
    target.write_text(project.to_toml())
    note(f"wrote {target}: `sqlrs run -- COMMAND` prepares it and runs COMMAND against it")
