"""The worker logs of `sqlrs-appliance up`: a pipe read by `up`, rotated by size, no line lost or split."""
from __future__ import annotations

import os
import subprocess
import sys

from appliance.service.log_files import RotatingLog, pump

WRITER = "import sys\nfor i in range(int(sys.argv[1])): print(f'line {i:05d} ' + 'x' * 80, flush=True)"


def run_writer(log: RotatingLog, lines: int) -> None:
    """A real process writing ``lines`` lines to a pipe that ``pump`` copies into ``log``."""
    read_end, write_end = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(lines)], stdout=write_end)
    os.close(write_end)
    thread = pump(read_end, log, "test")
    assert child.wait(timeout=60) == 0
    thread.join(timeout=60)
    log.close()


def all_lines(path) -> list[str]:
    files = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:])) + [path]
    return [line for f in files for line in f.read_text().splitlines()]


def test_a_log_past_its_size_is_rotated_and_keeps_every_line_whole(tmp_path):
    log = RotatingLog(tmp_path / "worker-0.log", max_bytes=64 * 1024, backups=100)
    run_writer(log, 3000)  # ~270 KB: four or five rotations
    assert len(list(tmp_path.glob("worker-0.log.*"))) >= 3
    assert all(f.stat().st_size <= 64 * 1024 for f in tmp_path.iterdir())
    assert all_lines(log.path) == [f"line {i:05d} " + "x" * 80 for i in range(3000)]


def test_only_the_newest_backups_are_kept(tmp_path):
    log = RotatingLog(tmp_path / "worker-0.log", max_bytes=64 * 1024, backups=2)
    run_writer(log, 3000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["worker-0.log", "worker-0.log.1", "worker-0.log.2"]
    assert all_lines(log.path)[-1] == "line 02999 " + "x" * 80


def test_log_files_are_readable_by_their_owner_only(tmp_path):
    log = RotatingLog(tmp_path / "worker-0.log", max_bytes=64 * 1024, backups=2)
    run_writer(log, 10)
    assert oct(log.path.stat().st_mode & 0o777) == "0o600"


def test_a_log_removed_under_the_writer_rotates_on_and_keeps_writing(tmp_path):
    log = RotatingLog(tmp_path / "worker-0.log", max_bytes=64 * 1024, backups=2)
    log.write(b"x" * 60_000 + b"\n")
    log.path.unlink()  # an operator freeing space; the open file lives on until the rotation
    log.write(b"y" * 10_000 + b"\n")
    log.write(b"after the rotation\n")
    log.close()
    assert log.path.read_bytes().endswith(b"after the rotation\n")
