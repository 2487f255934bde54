"""The host facts `doctor` turns into the failures Postgres would hit (read from /proc's formats)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

from appliance.service.resources import Resources, check_memory, check_sysv
from tests.support.ports import free_tcp_port
from tests.support.tmpdirs import public_tmpdir


def test_strict_overcommit_without_headroom_is_reported_as_a_shared_memory_failure(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemAvailable:    8000000 kB\nCommitLimit:     4000000 kB\nCommitted_AS:    3900000 kB\n")
    overcommit = tmp_path / "overcommit_memory"
    overcommit.write_text("2\n")
    found = Resources()
    check_memory(found, meminfo, overcommit)
    assert found.problems == ["vm.overcommit_memory=2 leaves 97 MiB to commit: servers fail with 'could not map "
                              "anonymous shared memory: Cannot allocate memory'"]


def test_little_available_memory_is_reported_as_servers_killed_mid_statement(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemAvailable:     300000 kB\n")
    found = Resources()
    check_memory(found, meminfo, tmp_path / "absent")
    assert found.problems[0].startswith("only 292 MiB of memory available: the OOM killer ends servers")


def test_system_v_segments_near_kernel_shmmni_are_reported(tmp_path):
    (tmp_path / "sys/kernel").mkdir(parents=True)
    (tmp_path / "sys/kernel/shmmni").write_text("20\n")
    (tmp_path / "sysvipc").mkdir()
    (tmp_path / "sysvipc/shm").write_text("header\n" + "segment\n" * 10)
    found = Resources()
    check_sysv(found, tmp_path)
    assert found.problems and found.problems[0].startswith("10 of kernel.shmmni=20 System V segments are taken")


def test_up_warns_at_start_when_dev_shm_cannot_hold_postgres_shared_memory(redis_url):
    base = public_tmpdir("sqlrs-shm-")
    up_command = (f"mount -t tmpfs -o size=1m tmpfs /dev/shm && exec {sys.executable} -m appliance.service.main up "
                  f"--data-dir {base / 'data'} --listen 127.0.0.1:{free_tcp_port()} --workers 1")
    up = subprocess.Popen(["unshare", "--mount", "sh", "-c", up_command], stderr=subprocess.PIPE, text=True,
                          start_new_session=True,
                          env={**os.environ, "SQLRS_REDIS_URL": redis_url, "SQLRS_STORAGE_BACKEND": "copy"})
    try:
        # Up to the line that says it serves: the warning comes before it, at start.
        warning = next((line for line in up.stderr if "this host will fail Postgres" in line
                        or "sqlrs appliance listening on" in line), "")
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(60)
        shutil.rmtree(base, ignore_errors=True)
    assert "only 1 MiB free in /dev/shm" in warning
