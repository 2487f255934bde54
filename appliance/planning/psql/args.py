"""psql command-line validation: what a user may pass, in getopt's own spellings.

Everything is parsed like psql's ``getopt_long`` (short clusters such as ``-1qf a.sql``,
attached values ``-fa.sql``, ``--file=a.sql``) so that what we hash is exactly what
psql will do. Unknown flags are rejected rather than passed through: a flag we do not
understand could change the database state without changing the hash.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Literal

from appliance.errors import InvalidArgument

# short letter -> canonical long name
NO_VALUE_FLAGS: dict[str, str] = {
    "1": "single-transaction",
    "X": "no-psqlrc",
    "q": "quiet",
    "a": "echo-all",
    "e": "echo-queries",
    "E": "echo-hidden",
    "b": "echo-errors",
    "n": "no-readline",
    "t": "tuples-only",
    "A": "no-align",
    "x": "expanded",
    "z": "field-separator-zero",
    "0": "record-separator-zero",
    "H": "html",
    "S": "single-line",
}
VALUE_FLAGS: dict[str, str] = {
    "c": "command",
    "f": "file",
    "v": "set",
    "F": "field-separator",
    "R": "record-separator",
    "P": "pset",
    "T": "table-attr",
}
LONG_ONLY_NO_VALUE = {"csv"}

_CONNECTION = "connection settings are chosen by the service"
REJECTED_FLAGS: dict[str, tuple[str, bool, str]] = {
    # short -> (long, takes a value, why)
    "h": ("host", True, _CONNECTION),
    "p": ("port", True, _CONNECTION),
    "U": ("username", True, _CONNECTION),
    "d": ("dbname", True, _CONNECTION),
    "w": ("no-password", False, _CONNECTION),
    "W": ("password", False, _CONNECTION),
    "l": ("list", False, "it lists databases instead of running a script"),
    "o": ("output", True, "it would write files on the server"),
    "L": ("log-file", True, "it would write files on the server"),
    "s": ("single-step", False, "it needs an interactive terminal"),
    "V": ("version", False, "it prints information instead of running a script"),
    "?": ("help", False, "it prints information instead of running a script"),
}

# What takes a value, in both spellings: every flag of psql's getopt table is in one of the tables
# above, so this is how any psql command line splits into flags and their values (the CLI checks
# a local psql's arguments with it).
SHORT_WITH_VALUE = frozenset(VALUE_FLAGS) | {short for short, (_, valued, _) in REJECTED_FLAGS.items() if valued}
LONG_WITH_VALUE = (frozenset(VALUE_FLAGS.values()) | {"variable"}
                   | {long for long, valued, _ in REJECTED_FLAGS.values() if valued})
# The connection flags that choose the server, database or user (-w/-W only decide whether psql
# asks for a password): short -> long.
TARGET_FLAGS: dict[str, str] = {short: long for short, (long, valued, why) in REJECTED_FLAGS.items()
                                if why == _CONNECTION and valued}

_LONG_TO_SHORT: dict[str, str] = {
    **{name: short for short, name in NO_VALUE_FLAGS.items()},
    **{name: short for short, name in VALUE_FLAGS.items()},
    "variable": "v",
}
_REJECTED_LONG = {long: short for short, (long, _, _) in REJECTED_FLAGS.items()}

# psql's valid_variable_name(): ASCII letters, digits, underscore, any non-ASCII. (Checked by
# hand: a regular expression with that character class takes milliseconds to compile, at every
# start of the `sqlrs` command.)
_ASCII_NAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_")


def _valid_variable_name(name: str) -> bool:
    return bool(name) and all(c in _ASCII_NAME_CHARACTERS or not c.isascii() for c in name)


ALWAYS_ON_ERROR_STOP = "ON_ERROR_STOP"
# Same effect as -s: waits for a terminal that a service never has.
_REJECTED_VARIABLES = {"SINGLESTEP": "it needs an interactive terminal (like -s)"}

# psql's special variables (PostgreSQL 15 docs, plus names added since). Setting any of
# them with -v can change how every script runs, so they key every step.
SPECIAL_VARIABLES = frozenset(
    {
        "AUTOCOMMIT", "COMP_KEYWORD_CASE", "DBNAME", "ECHO", "ECHO_HIDDEN", "ENCODING",
        "ERROR", "FETCH_COUNT", "HIDE_TABLEAM", "HIDE_TOAST_COMPRESSION", "HISTCONTROL",
        "HISTFILE", "HISTSIZE", "HOST", "IGNOREEOF", "LASTOID", "LAST_ERROR_MESSAGE",
        "LAST_ERROR_SQLSTATE", "ON_ERROR_ROLLBACK", "ON_ERROR_STOP", "PORT", "PROMPT1",
        "PROMPT2", "PROMPT3", "QUIET", "ROW_COUNT", "SERVER_VERSION_NAME",
        "SERVER_VERSION_NUM", "SERVICE", "SHELL_ERROR", "SHELL_EXIT_CODE",
        "SHOW_ALL_RESULTS", "SHOW_CONTEXT", "SINGLELINE", "SINGLESTEP", "SQLSTATE", "USER",
        "VERBOSITY", "VERSION", "VERSION_NAME", "VERSION_NUM", "WATCH_INTERVAL",
    }
)


@dataclass(frozen=True)
class Action:
    """One ``-c``/``-f``: where its value sits in the original argv (for rewriting paths)."""

    kind: Literal["file", "command"]
    value: str
    token_index: int
    value_offset: int


@dataclass(frozen=True)
class SharedFlag:
    """A flag applied to every step; ``key`` is the short letter (or ``csv``)."""

    key: str
    value: str | None = None

    def argv(self) -> list[str]:
        spelled = "--csv" if self.key == "csv" else f"-{self.key}"
        return [spelled] if self.value is None else [spelled, self.value]


@dataclass
class ParsedArgs:
    actions: list[Action] = field(default_factory=list)
    shared: list[SharedFlag] = field(default_factory=list)  # command-line order, no -X
    variables: dict[str, str] = field(default_factory=dict)  # last value wins, like psql


def parse_psql_args(args: list[str]) -> ParsedArgs:
    """Validate psql arguments; raise InvalidArgument naming the first offending one."""
    parsed = ParsedArgs()
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            if i + 1 < len(args):
                _reject_positional(i + 1)
            break
        if token.startswith("--"):
            i = _parse_long(args, i, parsed)
        elif token.startswith("-") and token != "-":
            i = _parse_short_cluster(args, i, parsed)
        else:
            _reject_positional(i)
    return parsed


def _parse_long(args: list[str], i: int, parsed: ParsedArgs) -> int:
    token = args[i]
    name, has_inline, inline = token[2:].partition("=")
    if name in _REJECTED_LONG:
        _reject_flag(_REJECTED_LONG[name])
    if name in LONG_ONLY_NO_VALUE or (name in _LONG_TO_SHORT and _LONG_TO_SHORT[name] in NO_VALUE_FLAGS):
        if has_inline:
            raise InvalidArgument(f"psql flag --{name} takes no value", {"flag": f"--{name}"})
        _apply(parsed, "csv" if name == "csv" else _LONG_TO_SHORT[name], None, i, 0)
        return i + 1
    if name not in _LONG_TO_SHORT:
        raise InvalidArgument(f"unknown psql flag --{name}", {"flag": f"--{name}"})
    short = _LONG_TO_SHORT[name]
    if has_inline:
        _apply(parsed, short, inline, i, len(name) + 3)
        return i + 1
    if i + 1 >= len(args):
        raise InvalidArgument(f"psql flag --{name} needs a value", {"flag": f"--{name}"})
    _apply(parsed, short, args[i + 1], i + 1, 0)
    return i + 2


def _parse_short_cluster(args: list[str], i: int, parsed: ParsedArgs) -> int:
    token = args[i]
    pos = 1
    while pos < len(token):
        letter = token[pos]
        if letter in REJECTED_FLAGS:
            _reject_flag(letter)
        if letter in NO_VALUE_FLAGS:
            _apply(parsed, letter, None, i, pos)
            pos += 1
            continue
        if letter not in VALUE_FLAGS:
            raise InvalidArgument(f"unknown psql flag -{letter}", {"flag": f"-{letter}"})
        if pos + 1 < len(token):
            _apply(parsed, letter, token[pos + 1 :], i, pos + 1)
            return i + 1
        if i + 1 >= len(args):
            raise InvalidArgument(f"psql flag -{letter} needs a value", {"flag": f"-{letter}"})
        _apply(parsed, letter, args[i + 1], i + 1, 0)
        return i + 2
    return i + 1


def _apply(parsed: ParsedArgs, key: str, value: str | None, token_index: int, offset: int) -> None:
    if key == "c" or key == "f":
        kind: Literal["file", "command"] = "file" if key == "f" else "command"
        parsed.actions.append(Action(kind, value or "", token_index, offset))
    elif key == "v":
        _apply_variable(parsed, value or "")
    elif key != "X":  # -X is always applied by the executor; it changes nothing per request
        parsed.shared.append(SharedFlag(key, value))


def _apply_variable(parsed: ParsedArgs, assignment: str) -> None:
    name, has_equal, value = assignment.partition("=")
    if not has_equal:
        raise InvalidArgument(
            f"psql variable {name!r} must be given as NAME=VALUE (unsetting is not supported)",
            {"variable": name},
        )
    if not _valid_variable_name(name):
        raise InvalidArgument(f"invalid psql variable name {name!r}", {"variable": name})
    if name in _REJECTED_VARIABLES:
        raise InvalidArgument(
            f"psql variable {name} is not accepted: {_REJECTED_VARIABLES[name]}", {"variable": name}
        )
    if name == ALWAYS_ON_ERROR_STOP:
        if value != "1":
            raise InvalidArgument(
                "psql variable ON_ERROR_STOP must be 1: steps always stop at the first error",
                {"variable": name},
            )
        return
    parsed.variables.pop(name, None)  # keep dict order = order of the effective assignment
    parsed.variables[name] = value
    parsed.shared.append(SharedFlag("v", f"{name}={value}"))


def _reject_flag(short: str) -> None:
    long, _, why = REJECTED_FLAGS[short]
    raise InvalidArgument(f"psql flag -{short}/--{long} is not accepted: {why}", {"flag": f"--{long}"})


def _reject_positional(index: int) -> None:
    # The value is not echoed: a positional argument may be a connection string with a password.
    raise InvalidArgument(
        f"unexpected positional psql argument (argument {index + 1}): "
        "database and user names are chosen by the service",
        {"argument_index": index},
    )
