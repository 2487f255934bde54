"""The single seam through which the appliance runs external programs.

Argv lists only (never ``sh -c`` strings), so nothing a user sends can be parsed by
a shell. Tests of drivers whose tools cannot run here replace the runner with a strict
recording double (``tests/support/recording.py``) and assert on the exact argv.
"""
from __future__ import annotations

import io
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, NoReturn, cast

from appliance.errors import Cancelled, CommandFailed, CommandTimedOut, InternalError

_cancel_scope: ContextVar[Callable[[], bool] | None] = ContextVar("sqlrs_cancel_scope", default=None)


@contextmanager
def cancellable(check: Callable[[], bool] | None):
    """Every command run inside the block, by whichever driver, is killed (and raises
    :class:`Cancelled`) as soon as ``check()`` says so: a cancelled job stops mid-snapshot or
    mid-clone, not only mid-psql. ``cancellable(None)`` shields cleanup from a cancellation
    that was already requested."""
    token = _cancel_scope.set(check)
    try:
        yield
    finally:
        _cancel_scope.reset(token)


PATH_FALLBACK = "/usr/bin:/bin"  # when the service itself was started without a PATH


def child_env(*, lang: str | None = None, home: str | None = None, **more: str | None) -> dict[str, str]:
    """The whole environment of a program the appliance runs: our ``PATH``, then only what is asked
    for (``LANG``, ``HOME``, ``more``; an entry given as None is left out). Nothing else is
    inherited, so no ``PG*``, ``LIQUIBASE_*`` or other variable of the service's own environment
    can redirect a tool."""
    env = {"PATH": os.environ.get("PATH", PATH_FALLBACK)}
    if lang is not None:
        env["LANG"] = lang
    if home is not None:
        env["HOME"] = home
    env.update({name: value for name, value in more.items() if value is not None})
    return env


def cancel_check() -> Callable[[], bool] | None:
    """What the enclosing :func:`cancellable` block checks; None outside one."""
    return _cancel_scope.get()


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    output: bytes = b""  # stdout as bytes, when asked for with binary_output=True (stdout is then "")


@dataclass(frozen=True)
class RunAs:
    """An unprivileged identity to drop to; only honoured when we are root."""

    uid: int
    gid: int


def unprivileged(os_user: str) -> RunAs | None:
    """Who to drop to when running as root; None when we are not root (nothing to drop)."""
    if os.geteuid() != 0:
        return None
    import pwd

    from appliance.errors import InvalidArgument
    try:
        entry = pwd.getpwnam(os_user)
    except KeyError:
        raise InvalidArgument(f"OS user {os_user!r} does not exist") from None
    if entry.pw_uid == 0:
        raise InvalidArgument(f"OS user {os_user!r} is root; name an unprivileged one")
    return RunAs(entry.pw_uid, entry.pw_gid)


class Runner:
    """Runs argv lists and raises :class:`CommandFailed` on a non-zero exit, and
    :class:`CommandTimedOut` (one of those) past its ``timeout``: no ``subprocess`` exception
    ever leaves the seam."""

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
        cancel: Callable[[], bool] | None = None,
        binary_output: bool = False,
    ) -> Completed:
        """Run ``argv``; with ``cancel`` (or inside :func:`cancellable`), poll it and kill the
        whole process group when it says so."""
        argv = [os.fspath(a) for a in argv]
        if cancel is None:
            cancel = _cancel_scope.get()
        kwargs: dict = {}
        if run_as is not None and os.geteuid() == 0 and run_as.uid != 0:
            kwargs.update(user=run_as.uid, group=run_as.gid, extra_groups=[])
        text = not (isinstance(input, bytes) or binary_output)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=text,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=cancel is not None,
            **kwargs,
        )
        out, err = _communicate(proc, input, timeout, cancel)
        output = b""
        if not text:
            err = err.decode(errors="replace")
            if binary_output:
                output, out = out or b"", ""
            else:
                out = out.decode(errors="replace")
        result = Completed(argv, proc.returncode, out or "", err or "", output)
        if check and proc.returncode != 0:
            raise CommandFailed(argv, proc.returncode, result.stderr, result.stdout)
        return result


    def pipe_from(self, argv: Sequence[str], sink: Callable[[BinaryIO], None], *,
                  env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None) -> Completed:
        """Run ``argv`` and hand its stdout, as a stream, to ``sink`` (e.g. an upload).

        The stream raises :class:`CommandFailed` when it reaches EOF and the program exited
        non-zero, so a consumer that completes only at EOF (a multipart upload) can never
        complete on a failed producer. If ``sink`` raises, the whole process group is killed and
        the error propagates; if the program fails, :class:`CommandFailed` is raised even when
        ``sink`` swallowed it. Nothing is buffered in memory."""
        argv = [os.fspath(a) for a in argv]
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                                    env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True)
            try:
                sink(cast(BinaryIO, _ProducerStream(proc, argv, stderr)))  # a readable binary stream
            except BaseException:
                _kill_group(proc)
                raise
            finally:
                _pipe(proc.stdout).close()
            proc.wait()
            return _finished(argv, proc.returncode, stderr)

    def pipe_into(self, argv: Sequence[str], source: BinaryIO, *, env: Mapping[str, str] | None = None,
                  cwd: str | os.PathLike | None = None, chunk_size: int = 1024 * 1024) -> Completed:
        """Run ``argv`` feeding ``source`` (e.g. a download) to its stdin in chunks."""
        argv = [os.fspath(a) for a in argv]
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr,
                                    env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True)
            try:
                stdin = _pipe(proc.stdin)
                while chunk := source.read(chunk_size):
                    stdin.write(chunk)
                stdin.close()
            except BrokenPipeError:
                pass  # the program stopped reading: its exit code and stderr say why
            except BaseException:
                _kill_group(proc)
                raise
            proc.wait()
            return _finished(argv, proc.returncode, stderr)


class _ProducerStream(io.RawIOBase):
    """A program's stdout that turns "EOF after a non-zero exit" into :class:`CommandFailed`.

    Without this a reader cannot tell a complete stream from one cut short by a failure."""

    def __init__(self, proc: subprocess.Popen, argv: list[str], stderr_file) -> None:
        super().__init__()
        self._proc, self._argv, self._stderr = proc, argv, stderr_file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = _pipe(self._proc.stdout).read(len(buffer))
        if not data:
            self._proc.wait()
            _finished(self._argv, self._proc.returncode, self._stderr)
            return 0
        buffer[: len(data)] = data
        return len(data)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _finished(argv: list[str], returncode: int, stderr_file) -> Completed:
    stderr_file.seek(0)
    err = stderr_file.read().decode(errors="replace")
    if returncode != 0:
        raise CommandFailed(argv, returncode, err)
    return Completed(argv, returncode, "", err)


def _communicate(proc: subprocess.Popen, input, timeout: float | None, cancel) -> tuple:
    if cancel is None:
        try:
            return proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _timed_out(proc, timeout)
    pending_input, waited = input, 0.0
    while True:
        try:
            return proc.communicate(pending_input, timeout=0.25)
        except subprocess.TimeoutExpired:
            pending_input = None  # already written by the first communicate() call
            waited += 0.25
            expired = timeout is not None and waited >= timeout
            if expired or cancel():
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if expired:
                    _timed_out(proc, timeout)
                proc.communicate()
                raise Cancelled("cancelled while running " + os.path.basename(str(cast(Sequence[str], proc.args)[0]))) from None


def _timed_out(proc: subprocess.Popen, timeout: float | None) -> NoReturn:
    """Collect what the killed program wrote, and say it ran out of time (only ever called with
    the timeout that expired)."""
    out, err = proc.communicate()
    text = lambda data: (data.decode(errors="replace") if isinstance(data, bytes) else data) or ""  # noqa: E731
    argv = cast(Sequence[str], proc.args)  # always the list of strings run() passed
    raise CommandTimedOut([os.fspath(a) for a in argv], timeout or 0.0, text(err), text(out))


def _pipe(stream: IO[Any] | None) -> IO[Any]:
    """A pipe the process was started with (``subprocess.PIPE``), so never None."""
    if stream is None:
        raise InternalError("a pipe the process was started with is missing")
    return stream
