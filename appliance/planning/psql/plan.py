"""Plan a ``prepare:psql`` request: validated args, one step per ``-f``/``-c``, per-step hashes.

Unlike upstream sqlrs, everything that can change what a step does is hashed:

* the step's content, includes expanded (``psql_includes``), without what psql never sends
  (whitespace and ``--`` comments between statements);
* behaviour flags and psql's special variables, which key every step, in command-line
  order because psql applies them in that order (``-a -v ECHO=none`` differs from
  ``-v ECHO=none -a``);
* user variables, which key only the steps whose expanded text interpolates them.

``-X``, ``-n`` and ``-v ON_ERROR_STOP=1`` are not hashed: the executor always runs
``psql -X -v ON_ERROR_STOP=1`` and readline is never used for scripts.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from appliance.errors import InvalidArgument
from appliance.planning.hashing import digest
from appliance.planning.psql.args import SPECIAL_VARIABLES, SharedFlag, parse_psql_args
from appliance.planning.psql.includes import Expansion, IncludeExpander

HASH_VERSION = "2"  # bumped whenever a hash's meaning changes: no older state is found under a new one
_UNHASHED_FLAGS = {"n"}  # readline only matters at an interactive terminal
_SUMMARY_LIMIT = 60


@dataclass(frozen=True)
class PsqlStep:
    index: int
    kind: Literal["file", "command"]
    argv: list[str]
    stdin: str | None
    summary: str
    content_hash: str
    task_hash: str


@dataclass(frozen=True)
class PsqlPlan:
    steps: list[PsqlStep]
    normalized_args: list[str]
    variables: dict[str, str]


def plan_psql(psql_args: list[str], *, root: Path, work_dir: str = ".", stdin: str | None = None) -> PsqlPlan:
    """Validate ``psql_args`` against the source tree at ``root`` and hash every step."""
    plan, _ = plan_psql_with_files(psql_args, root=root, work_dir=work_dir, stdin=stdin)
    return plan


def plan_psql_with_files(
    psql_args: list[str], *, root: Path, work_dir: str = ".", stdin: str | None = None
) -> tuple[PsqlPlan, dict[str, Path]]:
    """Like :func:`plan_psql`, also returning every file read (psql-visible name -> path)."""
    parsed = parse_psql_args(psql_args)
    if not parsed.actions:
        raise InvalidArgument("nothing to run: give at least one -c or -f")
    if sum(1 for a in parsed.actions if a.kind == "file" and a.value == "-") > 1:
        raise InvalidArgument("-f - (standard input) can be given only once", {"flag": "-f"})
    expander = IncludeExpander(root, work_dir, parsed.variables)
    shared_argv = [token for flag in parsed.shared for token in flag.argv()]
    flags_record = _flags_record(parsed.shared)

    steps: list[PsqlStep] = []
    normalized = list(shared_argv)
    for index, action in enumerate(parsed.actions):
        own_argv, expansion, summary, step_stdin = _expand_action(action.kind, action.value, expander, stdin)
        task_hash = digest(
            ("kind", "psql"),
            ("hash_version", HASH_VERSION),
            ("content", expansion.content_hash),
            ("flags", flags_record),
            ("vars", _vars_record(parsed.variables, expansion)),
        )
        steps.append(
            PsqlStep(
                index=index,
                kind=action.kind,
                argv=shared_argv + own_argv,
                stdin=step_stdin,
                summary=summary,
                content_hash=expansion.content_hash,
                task_hash=task_hash,
            )
        )
        normalized += own_argv
    plan = PsqlPlan(steps=steps, normalized_args=normalized, variables=dict(parsed.variables))
    return plan, dict(expander.files)


def _expand_action(
    kind: str, value: str, expander: IncludeExpander, stdin: str | None
) -> tuple[list[str], Expansion, str, str | None]:
    if kind == "command":
        expansion = expander.expand_text(value.encode("utf-8", "surrogateescape"), kind="command", where="-c", current_name=None)
        return ["-c", value], expansion, "-c " + _quote_summary(value), None
    if value == "-":
        if stdin is None:
            raise InvalidArgument("-f - reads standard input, but no stdin was given", {"path": "-"})
        expansion = expander.expand_text(stdin.encode("utf-8", "surrogateescape"), kind="script", where="<stdin>",
                                         current_name="-")
        return ["-f", "-"], expansion, "-f - (stdin)", stdin
    name, expansion = expander.expand_file(value)
    shown = name if name != "-" else "./-"  # a file literally named "-" is not stdin
    return ["-f", shown], expansion, _truncate(f"-f {shown}"), None


def _flags_record(shared: list[SharedFlag]) -> str:
    keyed: list[list[str | None]] = []
    for flag in shared:
        if flag.key in _UNHASHED_FLAGS:
            continue
        if flag.key == "v" and flag.value is not None and flag.value.partition("=")[0] not in SPECIAL_VARIABLES:
            continue  # user variables are keyed per step, by use
        keyed.append([flag.key, flag.value])
    return json.dumps(keyed, ensure_ascii=True, separators=(",", ":"))


def _vars_record(variables: dict[str, str], expansion: Expansion) -> str:
    used = sorted(
        [name, value]
        for name, value in variables.items()
        if name not in SPECIAL_VARIABLES and name in expansion.variable_refs
    )
    return json.dumps(used, ensure_ascii=True, separators=(",", ":"))


def _quote_summary(sql: str) -> str:
    return '"' + _truncate(" ".join(sql.split()), _SUMMARY_LIMIT - 5) + '"'


def _truncate(text: str, limit: int = _SUMMARY_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

