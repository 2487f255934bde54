"""`sqlrs-appliance doctor` tells an operator what the host offers and what is wrong, in one run."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from appliance.service.doctor import run_checks
from appliance.settings import Settings
from tests.support.tmpdirs import public_tmpdir


def test_every_check_runs_and_names_the_storage_choice(tmp_path, redis_url):
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_url, storage_backend="copy")
    checks = {check.name: check for check in run_checks(settings)}
    assert set(checks) == {"data_dir", "storage", "resources", "postgres", "isolation", "ports", "control_db", "redis",
                           "object_store"}
    assert checks["storage"].ok and checks["storage"].detail.startswith("copy: storage_backend is copy")
    assert checks["postgres"].ok and "process runtime: postgres resolves to postgres:15@sha256:" in checks["postgres"].detail
    assert checks["redis"].ok


def test_a_failing_check_does_not_hide_the_others(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", redis_url="redis://:x@127.0.0.1:1/0", storage_backend="copy")
    checks = {check.name: check for check in run_checks(settings)}
    assert not checks["redis"].ok
    assert checks["postgres"].ok and checks["storage"].ok


def test_the_command_exits_non_zero_and_prints_json_when_a_check_fails(tmp_path):
    env = {"SQLRS_REDIS_URL": "redis://:x@127.0.0.1:1/0", "SQLRS_STORAGE_BACKEND": "copy", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "appliance.service.main", "doctor", "--data-dir",
                             str(tmp_path / "d"), "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1
    assert {c["name"]: c["ok"] for c in json.loads(result.stdout)}["redis"] is False


def test_doctor_on_a_fresh_data_dir_leaves_no_mount_and_no_file_and_says_what_it_undid(redis_url):
    base = public_tmpdir("sqlrs-doctor-")
    try:
        settings = Settings(data_dir=base / "data", redis_url=redis_url, btrfs_image_bytes=1024**3)
        checks = {check.name: check for check in run_checks(settings)}
        assert checks["storage"].ok and checks["storage"].detail.startswith("btrfs: the store is the btrfs image")
        assert "to try it, and unmounted it" in checks["storage"].detail
        assert f"It made and removed again: {base / 'data'}," in checks["storage"].detail
        assert list(base.iterdir()) == []
        assert str(base) not in Path("/proc/self/mountinfo").read_text()
    finally:
        shutil.rmtree(base)


def test_doctor_fails_a_host_whose_dev_shm_cannot_hold_postgres_shared_memory(redis_url):
    """As in a container whose /dev/shm is full: initdb would fail with only "removing contents
    of data directory" as its last line. Here /dev/shm is a 1 MiB tmpfs in a mount namespace."""
    base = public_tmpdir("sqlrs-doctor-")
    try:
        doctor = (f"mount -t tmpfs -o size=1m tmpfs /dev/shm && exec {sys.executable} -m appliance.service.main "
                  f"doctor --data-dir {base / 'data'} --json")
        result = subprocess.run(["unshare", "--mount", "sh", "-c", doctor], capture_output=True, text=True, timeout=300,
                                env={**os.environ, "SQLRS_REDIS_URL": redis_url, "SQLRS_STORAGE_BACKEND": "copy"})
        check = {c["name"]: c for c in json.loads(result.stdout)}["resources"]
        assert result.returncode == 1 and not check["ok"]
        assert check["detail"].startswith("only 1 MiB free in /dev/shm: initdb fails with 'could not resize shared "
                                          "memory segment")
        assert "--shm-size" in check["detail"]
    finally:
        shutil.rmtree(base)


def foreign_object_store(tmp_path) -> Settings:
    """Settings whose object store (a directory) another installation has claimed."""
    from appliance.objectstore.local import LocalObjectStore
    from appliance.objectstore.ownership import claim
    objects = tmp_path / "objects"
    claim(LocalObjectStore(objects), "f" * 32, "the store")
    return Settings(data_dir=tmp_path / "data", storage_backend="copy", btrfs_image="off",
                    artifacts_url=f"file://{objects}")


def test_the_object_store_check_fails_on_a_store_another_installation_owns(tmp_path):
    checks = {check.name: check for check in run_checks(foreign_object_store(tmp_path))}
    assert not checks["object_store"].ok
    assert checks["object_store"].detail.startswith("object_store_not_ours:") and "f" * 32 in checks["object_store"].detail


def test_up_refuses_to_start_on_an_object_store_another_installation_owns():
    base = public_tmpdir("sqlrs-doctor-")  # a data dir every cluster user can traverse: only the store is wrong
    settings = foreign_object_store(base)
    env = {"SQLRS_STORAGE_BACKEND": "copy", "SQLRS_BTRFS_IMAGE": "off", "SQLRS_ARTIFACTS_URL": settings.artifacts_url,
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "appliance.service.main", "up", "--data-dir",
                             str(settings.data_dir)], capture_output=True, text=True, timeout=120, env=env)
    shutil.rmtree(base)
    assert result.returncode == 1
    assert "error [object_store_not_ours]" in result.stderr and "f" * 32 in result.stderr
