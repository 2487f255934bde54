"""A strict stand-in for the runner (``appliance.shell.Runner``), for drivers whose tools cannot
run where the tests run: it records every argv and answers only the commands a test expects."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from appliance.errors import CommandFailed
from appliance.shell import Completed


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
