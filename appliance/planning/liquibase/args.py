"""Liquibase arguments from a prepare request: checked against an allow-list, normalised.

The appliance supplies the connection (url, username, password, driver, classpath), so every
option that could name another database, another driver or extra code is refused, as is any
option not on the list below: an unknown option is a mistake or an attempt, never a no-op.
Liquibase spells options several ways (``--changelog-file``, ``--changeLogFile``,
``--changelog-file=x``); they all normalise to one form, so spelling never changes a cache key.

Only the ``update`` family is accepted: ``update``, ``update-count --count N`` and
``update-to-tag --tag T``; the appliance runs them one changeset at a time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from appliance.errors import InvalidArgument

COMMANDS = {"update": "update", "updatecount": "update-count", "updatetotag": "update-to-tag"}
VALUED = {"changelogfile": "changelog_file", "contexts": "contexts", "contextfilter": "contexts",
          "labels": "labels", "labelfilter": "labels", "searchpath": "search_path", "count": "count",
          "tag": "tag"}
SUPPLIED = {"url", "username", "password", "classpath", "driver", "driverpropertiesfile", "defaultsfile",
            "referenceurl", "referenceusername", "referencepassword", "referencedriver"}
_PARAMETER = re.compile(r"^-D([A-Za-z_][A-Za-z0-9_.-]{0,127})=(.*)$", re.S)
_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


@dataclass(frozen=True)
class LiquibaseCommand:
    command: str  # update | update-count | update-to-tag
    changelog_file: str
    contexts: str | None = None
    labels: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()  # changelog parameters (-Dname=value), sorted
    search_path: tuple[str, ...] = ()
    count: int | None = None
    tag: str | None = None

    def argv(self, sql_only: bool = False) -> list[str]:
        """Everything but the connection, in one canonical order; ``sql_only`` asks for the
        command's ``-sql`` twin (``update-sql``), which plans without changing the database."""
        args = [f"--changelog-file={self.changelog_file}"]
        if self.search_path:
            args.append(f"--search-path={','.join(self.search_path)}")
        args.append(f"{self.command}-sql" if sql_only else self.command)
        args += [f"-D{name}={value}" for name, value in self.parameters]  # after the command, or 4.x refuses them
        if self.contexts is not None:
            args.append(f"--context-filter={self.contexts}")
        if self.labels is not None:
            args.append(f"--label-filter={self.labels}")
        if self.count is not None:
            args.append(f"--count={self.count}")
        if self.tag is not None:
            args.append(f"--tag={self.tag}")
        return args

    def key_parts(self) -> tuple[tuple[str, str], ...]:
        """What of the arguments goes into every changeset's state key: the changelog parameters,
        which may shape a changeset without showing in what Liquibase prints. The filters
        (contexts, labels) only choose changesets; a chosen changeset records its own contexts
        and labels, which its key holds (``liquibase_plans.changeset_key``)."""
        return tuple(("parameter", f"{k}={v}") for k, v in self.parameters)


def parse_liquibase_args(args: list[str]) -> LiquibaseCommand:
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args) or not args:
        raise InvalidArgument("liquibase_args must be a non-empty list of strings")
    command: str | None = None
    values: dict[str, str] = {}
    parameters: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if (match := _PARAMETER.match(arg)) is not None:
            parameters[match[1]] = match[2]
        elif arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            key = _option_key(name)
            if not eq:
                if i + 1 >= len(args):
                    raise InvalidArgument(f"liquibase option --{name} needs a value", {"argument": arg})
                i, value = i + 1, args[i + 1]
            if key in values:
                raise InvalidArgument(f"liquibase option --{name} is given twice", {"argument": arg})
            values[key] = value
        elif arg.startswith("-"):
            raise InvalidArgument(f"unsupported liquibase flag {arg!r}", {"argument": arg})
        elif command is None:
            command = _command(arg)
        else:
            raise InvalidArgument(f"unexpected liquibase argument {arg!r} (one command only)", {"argument": arg})
        i += 1
    if command is None:
        raise InvalidArgument("liquibase_args name no command; use update, update-count or update-to-tag")
    return _build(command, values, parameters)


def _option_key(name: str) -> str:
    key = name.replace("-", "").lower()
    if key in SUPPLIED:
        raise InvalidArgument(f"liquibase option --{name} is not allowed: the appliance supplies the connection "
                              "and the classpath", {"argument": f"--{name}"})
    if key not in VALUED:
        allowed = sorted({f"--{v.replace('_', '-')}" for v in VALUED.values()} | {"-D<parameter>=<value>"})
        raise InvalidArgument(f"unsupported liquibase option --{name}", {"argument": f"--{name}", "allowed": allowed})
    return VALUED[key]


def _command(word: str) -> str:
    key = word.replace("-", "").lower()
    if key not in COMMANDS:
        raise InvalidArgument(f"liquibase command {word!r} is not allowed; use update, update-count or update-to-tag",
                              {"argument": word, "allowed": sorted(COMMANDS.values())})
    return COMMANDS[key]


def _relative_path(value: str, what: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value or "\x00" in value:
        raise InvalidArgument(f"{what} must be a relative path inside the source bundle: {value!r}",
                              {"argument": value})
    return str(path)


def _build(command: str, values: dict[str, str], parameters: dict[str, str]) -> LiquibaseCommand:
    if "changelog_file" not in values:
        raise InvalidArgument("liquibase_args need --changelog-file")
    count = values.get("count")
    if command == "update-count":
        if count is None or not count.isdigit() or int(count) < 1:
            raise InvalidArgument("update-count needs --count with a positive whole number")
    elif count is not None:
        raise InvalidArgument(f"--count only goes with update-count, not {command}")
    tag = values.get("tag")
    if command == "update-to-tag":
        if tag is None or not _TAG.match(tag):
            raise InvalidArgument("update-to-tag needs --tag with a tag name")
    elif tag is not None:
        raise InvalidArgument(f"--tag only goes with update-to-tag, not {command}")
    search = tuple(_relative_path(p.strip(), "--search-path entries")
                   for p in values["search_path"].split(",") if p.strip()) if "search_path" in values else ()
    return LiquibaseCommand(
        command=command, changelog_file=_relative_path(values["changelog_file"], "--changelog-file"),
        contexts=values.get("contexts"), labels=values.get("labels"),
        parameters=tuple(sorted(parameters.items())), search_path=search,
        count=int(count) if count is not None else None, tag=tag)
