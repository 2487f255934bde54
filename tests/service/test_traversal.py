"""`up` and `doctor` refuse a data dir the users clusters run as cannot reach, and say what to do:
otherwise the appliance starts and the first prepare fails with initdb's "Permission denied"."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from appliance.service.doctor import run_checks
from appliance.settings import Settings
from tests.support.tmpdirs import public_tmpdir


@pytest.fixture
def closed_parent():
    """A directory only root may enter (as `mktemp -d` makes, or root's home)."""
    path = Path(tempfile.mkdtemp(prefix="sqlrs-closed-", dir="/tmp"))
    assert path.stat().st_mode & 0o777 == 0o700
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize(("isolation", "who"), [("auto", "the org users"), ("none", "the instance user postgres")])
def test_doctor_names_the_directory_cluster_users_cannot_traverse_and_the_fix(closed_parent, redis_url, isolation, who):
    settings = Settings(data_dir=closed_parent / "data", redis_url=redis_url, storage_backend="copy",
                        tenant_isolation=isolation)
    check = {check.name: check for check in run_checks(settings)}["data_dir"]
    assert not check.ok
    assert check.detail.startswith(f"{who}")
    assert f"cannot traverse {closed_parent} (mode 0700, owner uid 0)" in check.detail
    assert f"run `chmod o+x {closed_parent}`" in check.detail


def test_doctor_passes_a_data_dir_every_cluster_user_can_reach(redis_url):
    base = public_tmpdir("sqlrs-open-")
    try:
        settings = Settings(data_dir=base / "data", redis_url=redis_url, storage_backend="copy")
        check = {check.name: check for check in run_checks(settings)}["data_dir"]
        assert check.ok, check.detail
    finally:
        shutil.rmtree(base)


def test_up_refuses_to_start_on_a_data_dir_cluster_users_cannot_traverse(closed_parent, redis_url):
    env = {**os.environ, "SQLRS_DATA_DIR": str(closed_parent / "data"), "SQLRS_STORAGE_BACKEND": "copy",
           "SQLRS_REDIS_URL": redis_url}
    up = subprocess.Popen([sys.executable, "-m", "appliance.service.main", "up", "--listen", "127.0.0.1:0"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = up.communicate(timeout=120)
    finally:
        if up.poll() is None:  # it started serving: stop it and its workers
            os.killpg(up.pid, signal.SIGTERM)
            up.communicate()
    assert up.returncode == 1, stderr[-2000:]
    assert f"cannot traverse {closed_parent}" in stderr
    assert f"run `chmod o+x {closed_parent}`" in stderr


def test_directories_up_makes_above_its_data_dir_are_traversable_whatever_the_umask():
    base = public_tmpdir("sqlrs-open-")
    data_dir = base / "new" / "deeper" / "data"
    script = ("import os, sys; os.umask(0o077)\n"
              "from appliance.service.supervisor import prepare_data_dir\n"
              "from appliance.settings import Settings\n"
              "prepare_data_dir(Settings(data_dir=sys.argv[1]))\n")
    try:
        subprocess.run([sys.executable, "-c", script, str(data_dir)], check=True, timeout=60)
        assert [oct(p.stat().st_mode & 0o777) for p in (base / "new", base / "new" / "deeper")] == ["0o755", "0o755"]
    finally:
        shutil.rmtree(base)
