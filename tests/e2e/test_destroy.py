"""`sqlrs-appliance destroy` removes every server a data dir owns, whatever settings it runs with:
an appliance served with SQLRS_RUNTIME=docker is often destroyed without that variable."""
from __future__ import annotations

import os
import subprocess
import sys

import docker
import pytest

from tests.support.appliance import appliance_on


@pytest.fixture(params=["docker", "nomad"])
def served_in_containers(request):
    yield from appliance_on(request, request.param)


def containers_mounting(path) -> list[str]:
    """Names of the local engine's containers with a mount under ``path``."""
    real = os.path.realpath(path)
    return [c.name for c in docker.from_env().containers.list(all=True)
            if any(m.get("Source", "").startswith(real + "/") for m in c.attrs.get("Mounts") or [])]


def test_destroy_without_the_runtime_setting_removes_the_containers_of_the_data_dir(served_in_containers, scripts):
    """With nomad, the Control DB names the runtime and the Nomad settings reach it."""
    app = served_in_containers
    runtime = app.env["SQLRS_RUNTIME"]
    app.prepare(["-f", "schema.sql"], scripts)
    assert containers_mounting(app.data_dir)  # the instance's container
    app.stop()
    env = {k: v for k, v in app.env.items() if k != "SQLRS_RUNTIME"}
    result = subprocess.run([sys.executable, "-m", "appliance.service.main", "destroy", "--data-dir",
                             str(app.data_dir), "--yes"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert containers_mounting(app.data_dir) == []
    assert not app.data_dir.exists()
    assert f"stopped 1 {runtime} server(s)" in result.stdout


@pytest.fixture
def served_on_nomad(request):
    yield from appliance_on(request, "nomad")


def test_destroy_refuses_to_delete_anything_while_the_runtime_the_data_dir_used_does_not_answer(served_on_nomad, scripts):
    app = served_on_nomad
    app.prepare(["-f", "schema.sql"], scripts)
    app.stop()
    env = {**{k: v for k, v in app.env.items() if not k.startswith(("SQLRS_RUNTIME", "SQLRS_NOMAD_"))},
           "SQLRS_NOMAD_ADDR": "http://127.0.0.1:1"}
    result = subprocess.run([sys.executable, "-m", "appliance.service.main", "destroy", "--data-dir",
                             str(app.data_dir), "--yes"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "ran on the nomad runtime, which does not answer" in result.stderr
    assert "nothing was deleted" in result.stderr
    assert (app.data_dir / "control.db").exists() and containers_mounting(app.data_dir)
