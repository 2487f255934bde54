"""The host facts `doctor` turns into the failures Postgres would hit (read from /proc's formats)."""
from __future__ import annotations

from appliance.service.resources import Resources, check_memory, check_sysv


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
