"""The nomad_client role grants the Nomad client what the appliance's jobs use, and no more.

The role runs for real (ansible-playbook, on this machine, into a temporary directory) and its
drop-in is read back: raw_exec for the service jobs, Docker bind mounts only where instances run
as Nomad jobs, no privileged containers, no host volumes, and a max_kill_timeout no job's
KillTimeout exceeds."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from appliance.runtime.nomad_jobs import KILL_TIMEOUT_NS

REPO = Path(__file__).resolve().parents[2]
NOMAD_DIR = REPO / "nomad"
PLAY = """\
- name: Write the Nomad client drop-in
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: nomad_client
"""
GO_DURATION_UNITS_NS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


@cache
def rendered(runtime: str, workdir: Path, **overrides: str) -> str:
    """The role's sqlrs-client.hcl on a host of ``runtime``."""
    config_dir = workdir / f"nomad.d-{runtime}-{'-'.join(f'{k}={v}' for k, v in sorted(overrides.items()))}"
    playbook = workdir / "play.yml"
    playbook.write_text(PLAY)
    extra = {"nomad_client_config_dir": str(config_dir), "sqlrs_runtime": runtime, "sqlrs_host_id": "host1",
             "ansible_python_interpreter": sys.executable, **overrides}
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(REPO / "ansible" / "roles"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    result = subprocess.run(["ansible-playbook", "-i", "localhost,", "-e", json.dumps(extra), str(playbook)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return (config_dir / "sqlrs-client.hcl").read_text()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nomad-client-role")


def plugin_block(hcl: str, name: str) -> str | None:
    """The text of ``plugin "<name>" { … }`` (braces balanced), or None when there is none."""
    start = hcl.find(f'plugin "{name}" {{')
    if start < 0:
        return None
    depth = 0
    for end in range(hcl.index("{", start), len(hcl)):
        depth += {"{": 1, "}": -1}.get(hcl[end], 0)
        if depth == 0:
            return hcl[start:end + 1]
    raise AssertionError(f"unbalanced plugin block {name!r} in:\n{hcl}")


def go_duration_ns(text: str) -> int:
    parts = re.findall(r"(\d+)(ms|us|ns|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a Go duration: {text!r}"
    return sum(int(n) * GO_DURATION_UNITS_NS[u] for n, u in parts)


def kill_timeouts_the_jobs_ask_for() -> dict[str, int]:
    """Every task's KillTimeout (ns) in nomad/, the instance job's (a placeholder there) included."""
    found = {"postgres-instance": KILL_TIMEOUT_NS}
    for path in sorted(NOMAD_DIR.glob("sqlrs-*.nomad.json")):
        for group in json.loads(path.read_text())["Job"]["TaskGroups"]:
            for task in group["Tasks"]:
                if isinstance(task.get("KillTimeout"), int):
                    found[f"{path.name}:{task['Name']}"] = task["KillTimeout"]
    return found


@pytest.mark.parametrize("runtime", ["nomad", "docker", "process"])
def test_the_raw_exec_driver_the_service_jobs_use_is_enabled(workdir, runtime):
    block = plugin_block(rendered(runtime, workdir), "raw_exec")
    assert block is not None and re.search(r"config \{\s*enabled = true\s*\}", block)


def test_raw_exec_stays_off_when_the_site_turns_it_off(workdir):
    assert plugin_block(rendered("nomad", workdir, nomad_client_raw_exec="false"), "raw_exec") is None


@pytest.mark.parametrize("runtime", ["nomad", "docker", "process"])
def test_privileged_containers_are_never_allowed(workdir, runtime):
    assert "privileged" not in rendered(runtime, workdir)


@pytest.mark.parametrize("runtime", ["nomad", "docker", "process"])
def test_no_host_volume_is_declared(workdir, runtime):
    assert "host_volume" not in rendered(runtime, workdir)


def test_docker_bind_mounts_are_enabled_where_instances_run_as_nomad_jobs(workdir):
    block = plugin_block(rendered("nomad", workdir), "docker")
    assert block is not None and re.search(r"volumes \{\s*enabled = true\s*\}", block)


@pytest.mark.parametrize("runtime", ["docker", "process"])
def test_docker_bind_mounts_stay_off_where_no_instance_runs_as_a_nomad_job(workdir, runtime):
    assert plugin_block(rendered(runtime, workdir), "docker") is None


def test_the_jobs_ask_for_kill_timeouts_longer_than_nomads_default_cap():
    """What makes the role's max_kill_timeout necessary: Nomad's own cap is 30 s."""
    assert max(kill_timeouts_the_jobs_ask_for().values()) > 30 * 10**9


@pytest.mark.parametrize("task", sorted(kill_timeouts_the_jobs_ask_for()))
def test_max_kill_timeout_lets_every_task_have_the_kill_timeout_it_asks_for(workdir, task):
    match = re.search(r'^\s*max_kill_timeout\s*=\s*"([^"]+)"', rendered("nomad", workdir), re.MULTILINE)
    assert match, "the drop-in sets no max_kill_timeout"
    assert go_duration_ns(match.group(1)) >= kill_timeouts_the_jobs_ask_for()[task]
