"""The single seam through which the appliance runs external programs.

Argv lists only (never ``sh -c`` strings), so nothing a user sends can be parsed by
a shell. Tests of drivers whose tools cannot run here replace the runner with a
``RecordingRunner`` and assert on the exact argv.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from .errors import CommandFailed


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class RunAs:
    """An unprivileged identity to drop to; only honoured when we are root."""

    uid: int
    gid: int


class Runner:
    """Runs argv lists and raises :class:`CommandFailed` on a non-zero exit."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        input: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        timeout: float | None = None,
        run_as: RunAs | None = None,
    ) -> Completed:
        argv = [os.fspath(a) for a in argv]
        kwargs: dict = {}
        if run_as is not None and os.geteuid() == 0 and run_as.uid != 0:
            kwargs.update(user=run_as.uid, group=run_as.gid, extra_groups=[])
        text = not isinstance(input, bytes)
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=text,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            timeout=timeout,
            **kwargs,
        )
        out = proc.stdout if text else proc.stdout.decode(errors="replace")
        err = proc.stderr if text else proc.stderr.decode(errors="replace")
        result = Completed(argv, proc.returncode, out or "", err or "")
        if check and proc.returncode != 0:
            raise CommandFailed(argv, proc.returncode, result.stderr, result.stdout)
        return result


@dataclass
class RecordingRunner:
    """A strict stand-in for tools that cannot run on this machine.

    ``responses`` maps an argv prefix (tuple) to a callable returning ``Completed``;
    an argv that matches no prefix is rejected, as the real tool would reject an
    unknown command, so a typo in a driver cannot pass silently.
    """

    responses: dict[tuple[str, ...], Callable[[list[str]], Completed]] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], *, check: bool = True, **_: object) -> Completed:
        argv = [os.fspath(a) for a in argv]
        self.calls.append(argv)
        for prefix in sorted(self.responses, key=len, reverse=True):
            if tuple(argv[: len(prefix)]) == prefix:
                result = self.responses[prefix](argv)
                if check and result.returncode != 0:
                    raise CommandFailed(argv, result.returncode, result.stderr, result.stdout)
                return result
        raise CommandFailed(argv, 127, f"RecordingRunner: no response registered for {argv!r}")
