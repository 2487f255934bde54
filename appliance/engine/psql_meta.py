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

from appliance.errors import InvalidArgument

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
# Refused with an argument: a file or pipe to write to (without one they go to standard output).
_OUTPUT = {"o": "redirects output to a file or a program", "out": "redirects output to a file or a program",
           "g": "sends output to a file or a program", "gx": "sends output to a file or a program"}
_STANDARD_STREAMS = {"stdin", "stdout", "pstdin", "pstdout"}
_COPY_TARGET = re.compile(r"\b(from|to)\s+(\S+)", re.IGNORECASE)


def check_meta_command(name: str, arguments: tuple, line: str, where: str) -> None:
    """Refuse ``\\name`` (its lexed ``arguments``, or the rest of its ``line`` for whole-line
    commands) when it would act on the worker rather than in the database."""
    if name in _ALWAYS and not (name == "s" and not arguments):
        _refuse(name, _ALWAYS[name], where)
    if any(piece.form == "backquote" for argument in arguments for piece in argument):
        _refuse(name, "has a backquoted argument, which psql runs as a shell command", where)
    if name in _OUTPUT and any(not _is_option_list(argument) for argument in arguments):
        _refuse(name, _OUTPUT[name], where)
    if name == "copy":
        _check_copy(line, where)
    if name == "lo_import" and arguments:
        _check_source_path("".join(piece.text for piece in arguments[0]), name, where)
    if name in ("c", "connect") and _names_another_server(arguments):
        _refuse(name, "may only switch to another database of the same server (no host, port or conninfo)",
                where)


def _check_copy(line: str, where: str) -> None:
    match = _COPY_TARGET.search(line)
    if match is None:
        return  # psql itself will say what is wrong with it
    direction, target = match.group(1).lower(), match.group(2)
    if target.lower() == "program":
        _refuse("copy", "runs a program on the worker", where)
    if target.lower() in _STANDARD_STREAMS:
        return
    if direction == "to":
        _refuse("copy", "writes a file on the worker (use COPY … TO STDOUT)", where)
    _check_source_path(target.strip("'\""), "copy", where)


def _check_source_path(path: str, name: str, where: str) -> None:
    if posixpath.isabs(path) or ".." in path.split("/"):
        _refuse(name, f"reads {path!r}, which is not a relative path inside the source", where)


def _is_option_list(argument: tuple) -> bool:
    text = "".join(piece.text for piece in argument)
    return text.startswith("(") or text.endswith(")")


def _names_another_server(arguments: tuple) -> bool:
    texts = ["".join(piece.text for piece in argument) for argument in arguments]
    return len(texts) > 2 or any("=" in text or "://" in text for text in texts)


def _refuse(name: str, why: str, where: str) -> None:
    raise InvalidArgument(f"psql meta-command \\{name} in {where} is not allowed in a prepare step: it {why}",
                          {"meta_command": f"\\{name}", "path": where})
