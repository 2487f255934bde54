"""The one seam for external programs: argv lists, errors that carry argv, exit code and stderr."""
from __future__ import annotations

import io
import json

import pytest

from appliance.errors import Cancelled, CommandFailed, CommandTimedOut
from appliance.shell import Completed, Runner, cancellable
from tests.support.recording import RecordingRunner


def test_a_failing_command_raises_with_its_argv_exit_code_and_stderr(runner: Runner):
    with pytest.raises(CommandFailed) as error:
        runner(["sh", "-c", "echo boom >&2; exit 3"])
    assert error.value.argv == ["sh", "-c", "echo boom >&2; exit 3"]
    assert error.value.returncode == 3 and "boom" in error.value.stderr


def test_a_failure_message_names_the_first_error_and_the_last_lines_without_passwords(runner: Runner):
    script = ("echo 'could not connect to postgresql://sqlrs:s3cret@db/sqlrs' >&2; "
              "for i in $(seq 1 500); do echo \"progress line $i\" >&2; done; exit 4")
    with pytest.raises(CommandFailed) as error:
        runner(["sh", "-c", script])
    message = error.value.message
    assert message.startswith("sh exited with 4: could not connect to postgresql://sqlrs:***@db/sqlrs | … |")
    assert message.endswith("progress line 498 | progress line 499 | progress line 500")
    assert "s3cret" not in message and "progress line 497" not in message
    assert "s3cret" not in json.dumps(error.value.to_dict())  # what a job's error records


def test_a_command_past_its_timeout_raises_our_own_error_with_its_argv_and_timeout(runner: Runner):
    with pytest.raises(CommandTimedOut) as error:
        runner(["sh", "-c", "echo started >&2; sleep 30"], timeout=0.5)
    assert error.value.argv == ["sh", "-c", "echo started >&2; sleep 30"]
    assert error.value.timeout == 0.5 and "started" in error.value.stderr


def test_a_cancellable_command_past_its_timeout_raises_our_own_error_too(runner: Runner):
    with pytest.raises(CommandTimedOut) as error:
        runner(["sleep", "30"], timeout=0.5, cancel=lambda: False)
    assert error.value.details["timeout_seconds"] == 0.5


def test_cancel_kills_a_running_command(runner: Runner):
    calls = iter([False, True])
    with pytest.raises(Cancelled):
        runner(["sleep", "30"], cancel=lambda: next(calls))


def test_inside_a_cancellable_block_every_command_is_killed_once_cancel_is_asked(runner: Runner):
    asked = iter([False, True])
    with cancellable(lambda: next(asked)), pytest.raises(Cancelled, match="cp"):
        runner(["cp", "/dev/zero", "/dev/null"])  # as a driver's snapshot or clone would


def test_cleanup_shielded_by_cancellable_none_runs_to_the_end_in_a_cancelled_job(runner: Runner):
    with cancellable(lambda: True):
        with cancellable(None):
            assert runner(["sh", "-c", "sleep 0.6; echo tidied"]).stdout.strip() == "tidied"
        with pytest.raises(Cancelled):
            runner(["sleep", "30"])


def test_pipe_from_streams_stdout_to_a_sink(runner: Runner):
    received = io.BytesIO()
    runner.pipe_from(["head", "-c", "3000000", "/dev/zero"], lambda stream: received.write(stream.read()))
    assert received.getbuffer().nbytes == 3_000_000


def test_pipe_from_raises_when_the_producer_fails_even_after_the_sink_read_it(runner: Runner):
    with pytest.raises(CommandFailed) as error:
        runner.pipe_from(["sh", "-c", "echo partial; echo broken >&2; exit 1"], lambda stream: stream.read())
    assert "broken" in error.value.stderr


def test_pipe_from_kills_the_producer_when_the_sink_fails(runner: Runner):
    def sink(stream):
        stream.read(10)
        raise RuntimeError("upload failed")
    with pytest.raises(RuntimeError, match="upload failed"):
        runner.pipe_from(["cat", "/dev/zero"], sink)


def test_pipe_into_feeds_a_stream_to_stdin(runner: Runner, tmp_path):
    target = tmp_path / "out"
    runner.pipe_into(["sh", "-c", f"cat > {target}"], io.BytesIO(b"x" * 5_000_000))
    assert target.stat().st_size == 5_000_000


def test_pipe_into_reports_a_consumer_that_fails(runner: Runner):
    with pytest.raises(CommandFailed):
        runner.pipe_into(["sh", "-c", "head -c 1 >/dev/null; exit 4"], io.BytesIO(b"y" * 5_000_000))


def test_the_recording_runner_rejects_a_command_nobody_expected():
    recorder = RecordingRunner({("lvs",): lambda argv: Completed(argv, 0, "{}", "")})
    assert recorder(["lvs", "--reportformat", "json"]).stdout == "{}"
    with pytest.raises(CommandFailed):
        recorder(["lvcreate", "-n", "x"])
    assert recorder.calls == [["lvs", "--reportformat", "json"], ["lvcreate", "-n", "x"]]


def test_the_stream_pipe_from_hands_over_raises_at_eof_when_the_producer_failed(runner: Runner):
    seen: list[bytes] = []
    raised_inside_the_sink: list[CommandFailed] = []

    def sink(stream):
        try:
            while chunk := stream.read(4):
                seen.append(chunk)
        except CommandFailed as exc:
            raised_inside_the_sink.append(exc)
            raise
    with pytest.raises(CommandFailed):
        runner.pipe_from(["sh", "-c", "echo partial; echo broken >&2; exit 1"], sink)
    assert b"".join(seen) == b"partial\n"
    assert "broken" in raised_inside_the_sink[0].stderr
