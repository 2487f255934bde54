"""Which psql meta-commands a prepare step may use.

psql runs on the worker (in a sandbox as the org's own OS user; see appliance.isolation), and a
meta-command acts there, not in the database: ``\\!`` runs a shell, ``\\o``/``\\g``/``\\w`` write
files or pipe to programs, ``\\copy … program`` runs one, ``\\setenv``/``\\cd`` change psql's own
world, a backquoted argument is a shell command. None of that belongs in a step whose result must
be the same database wherever it is built, so they are refused when the request is planned (400,
``invalid_argument``, ``details.meta_command``), before anything runs. The sandbox stays the
real boundary: server-side programs (``COPY … TO PROGRAM``) cannot be refused by reading text.

Allowed: reading files of the source (``\\i``, ``\\ir``, ``\\copy … from 'relative/file'``,
``\\lo_import`` of a relative path), output to standard output, variables, ``\\connect`` to
another database of the same cluster, and every command that only talks to the server.
"""
from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING, NoReturn

from appliance.errors import InvalidArgument

if TYPE_CHECKING:  # the lexer calls this module with its pieces
    from appliance.planning.psql.lexer import Piece

Arguments = tuple[tuple["Piece", ...], ...]  # each argument, as the lexer's pieces

# Refused whatever their arguments: a shell, an editor, the environment, the working directory.
_ALWAYS = {
    "!": "runs a shell command on the worker",
    "setenv": "changes psql's environment",
    "cd": "changes psql's working directory",
    "e": "starts an editor", "edit": "starts an editor", "ef": "starts an editor", "ev": "starts an editor",
    "w": "writes the query buffer to a file or a program", "write": "writes the query buffer to a file or a program",
    "lo_export": "writes a file on the worker",
    "s": "writes the history to a file",
}
# Refused with any argument: a file or pipe to write to (without one, output goes to standard output).
_OUTPUT = {"o": "redirects output to a file or a program", "out": "redirects output to a file or a program"}
# Allowed with an option list ``(name=value …)`` only: anything after it is a file or a pipe.
_QUERY_OUTPUT = {"g": "sends output to a file or a program", "gx": "sends output to a file or a program"}
_STANDARD_STREAMS = {"stdin", "stdout", "pstdin", "pstdout"}
_SPACE = " \t\n\r\f\v"
_COPY_DIRECTION = re.compile(r"[" + _SPACE + r"]*(from|to)\b[" + _SPACE + r"]*", re.IGNORECASE)


def check_meta_command(name: str, arguments: Arguments, line: str, where: str) -> None:
    """Refuse ``\\name`` (its lexed ``arguments``, or the rest of its ``line`` for whole-line
    commands) when it would act on the worker rather than in the database."""
    if name in _ALWAYS and not (name == "s" and not arguments):
        _refuse(name, _ALWAYS[name], where)
    if any(piece.form == "backquote" for argument in arguments for piece in argument):
        _refuse(name, "has a backquoted argument, which psql runs as a shell command", where)
    if name in _OUTPUT and arguments:
        _refuse(name, _OUTPUT[name], where)
    if name in _QUERY_OUTPUT and not _only_options(line):
        _refuse(name, _QUERY_OUTPUT[name], where)
    if name == "copy":
        _check_copy(line, where)
    if name == "lo_import" and arguments:
        if any(piece.form != "literal" for piece in arguments[0]):
            _refuse(name, "reads a file named by a variable, which cannot be checked before running", where)
        _check_source_path("".join(piece.text for piece in arguments[0]), name, where)
    if name in ("c", "connect") and _names_another_server(arguments):
        _refuse(name, "may only switch to another database of the same server (no host, port or conninfo)",
                where)


def _check_copy(line: str, where: str) -> None:
    """``\\copy {table [(columns)] | (query)} {from | to} {'file' | program 'cmd' | stdin | …}``:
    the direction is the first ``from``/``to`` after the table or the parenthesized query."""
    rest = _skip_copy_source(line.lstrip(_SPACE))
    match = _COPY_DIRECTION.match(rest)
    if match is None:
        _refuse("copy", "could not be read before running (expected from or to after the table or query)", where)
    direction, words = match.group(1).lower(), rest[match.end():].split(None, 1)
    target = words[0] if words else ""
    if target.lower() == "program":
        _refuse("copy", "runs a program on the worker", where)
    if target.lower() in _STANDARD_STREAMS:
        return
    if direction == "to":
        _refuse("copy", "writes a file on the worker (use COPY … TO STDOUT)", where)
    _check_source_path(target.strip("'\""), "copy", where)


def _skip_copy_source(text: str) -> str:
    """What follows the table name (and its column list) or the parenthesized query."""
    i = 0 if text.startswith("(") else _skip_name(text)
    rest = text[i:].lstrip(_SPACE)
    if rest.startswith("("):  # a query, or the table's column list
        return rest[_balanced(rest):]
    return rest


def _skip_name(text: str) -> int:
    i = 0
    while i < len(text) and text[i] not in _SPACE + "(":
        if text[i] == '"':
            end = text.find('"', i + 1)
            i = len(text) if end < 0 else end + 1
        else:
            i += 1
    return i


def _balanced(text: str) -> int:
    """The index just past the parenthesis that closes ``text[0]``, quotes respected."""
    depth, i, quote = 0, 0, None
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def _only_options(line: str) -> bool:
    """Nothing, or one ``(option=value …)`` list and nothing after it."""
    text = line.strip(_SPACE)
    if not text:
        return True
    return text.startswith("(") and not text[_balanced(text):].strip(_SPACE)


def _check_source_path(path: str, name: str, where: str) -> None:
    if posixpath.isabs(path) or ".." in path.split("/"):
        _refuse(name, f"reads {path!r}, which is not a relative path inside the source", where)


def _names_another_server(arguments: Arguments) -> bool:
    texts = ["".join(piece.text for piece in argument) for argument in arguments]
    return len(texts) > 2 or any("=" in text or "://" in text for text in texts)


def _refuse(name: str, why: str, where: str) -> NoReturn:
    raise InvalidArgument(f"psql meta-command \\{name} in {where} is not allowed in a prepare step: it {why}",
                          {"meta_command": f"\\{name}", "path": where})
