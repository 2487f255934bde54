"""The offline install, for real: the bundle's own playbook against a fresh Debian host that has
no network at all, a `sqlrs prepare:psql` against what it installed, then a second run that must
change nothing; then a changed bundle file, an upgrade, and the same install on systemd.
See offline_host.py for how the host is built and reached."""
from __future__ import annotations

import os
import re
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.measurements import measured

from .offline_host import OfflineHost, bundle, host_image

pytestmark = pytest.mark.timeout(900)

SMOKE_SQL = """\
create table release (id int primary key, name text not null);
insert into release values (1, 'offline'), (2, 'bundle');
"""
LB_CHANGELOG = """\
<?xml version="1.0" encoding="UTF-8"?>
<databaseChangeLog xmlns="http://www.liquibase.org/xml/ns/dbchangelog"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.liquibase.org/xml/ns/dbchangelog
    http://www.liquibase.org/xml/ns/dbchangelog/dbchangelog-4.20.xsd">
  <changeSet id="1" author="smoke"><sql>create table offline (note text)</sql></changeSet>
  <changeSet id="2" author="smoke"><sql>insert into offline values ('liquibase')</sql></changeSet>
</databaseChangeLog>
"""


class Playbook:
    def __init__(self, ansible_dir: Path, inventory: Path):
        self.ansible_dir, self.inventory = ansible_dir, inventory

    def run(self) -> tuple[subprocess.CompletedProcess, dict[str, int], float]:
        env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
        started = time.monotonic()
        # From the bundle's ansible/ directory, as docs/install.md says: its ansible.cfg applies.
        result = subprocess.run(["ansible-playbook", "-i", str(self.inventory), "site.yml"],
                                cwd=self.ansible_dir, env=env, text=True, capture_output=True, timeout=600)
        return result, recap(result.stdout), time.monotonic() - started


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP counters of the one host."""
    match = re.search(r"^PLAY RECAP \*+\n(\S+)\s+:\s+(.*)$", output, re.MULTILINE)
    assert match, f"no PLAY RECAP in:\n{output[-3000:]}"
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}


def tasks_with(status: str, output: str) -> list[str]:
    """Names of the tasks (and handlers) that reported ``status`` (changed, fatal) for the host."""
    found, task = [], None
    for line in output.splitlines():
        if match := re.match(r"(?:TASK|RUNNING HANDLER) \[(.*)\] \*+$", line):
            task = match.group(1)
        elif line.startswith(f"{status}:") and (not found or found[-1] != task):
            found.append(task)
    return found


def unpack(tarball: Path, workdir: Path) -> Path:
    """The operator's layout: the tarball, and next to it the directory it unpacks to."""
    (workdir / tarball.name).symlink_to(tarball)
    with tarfile.open(tarball) as tar:
        tar.extractall(workdir, filter="tar")
    return workdir / tarball.name.removesuffix(".tar.gz") / "ansible"


def sqlrs(host: OfflineHost, *args: str) -> subprocess.CompletedProcess:
    return host.exec("env", "SQLRS_URL=http://127.0.0.1:7433", "SQLRS_TOKEN_FILE=/var/lib/sqlrs-appliance/admin.token",
                     "/opt/sqlrs/venv/bin/sqlrs", *args, check=False)


def prepare(host: OfflineHost, path: str, sql: str) -> str:
    host.exec("sh", "-c", f"cat > {path}", input=sql)
    result = sqlrs(host, "prepare:psql", "--", "-f", path)
    assert result.returncode == 0, result.stdout + result.stderr
    dsn = re.search(r"^DSN=(\S+)$", result.stdout, re.MULTILINE)
    assert dsn, result.stdout
    return dsn.group(1)


def query(host: OfflineHost, dsn: str, sql: str) -> str:
    return host.exec("psql", "-X", "-At", dsn, "-c", sql).stdout.strip()


def installed_version(host: OfflineHost) -> str:
    return host.exec("/opt/sqlrs/venv/bin/python", "-c",
                     "import importlib.metadata as m; print(m.version('sqlrs-appliance'))").stdout.strip()


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Bundle built (or reused), host started, playbook run once; the host is removed afterwards."""
    workdir = tmp_path_factory.mktemp("playbook")
    tarball = bundle()
    ansible_dir = unpack(tarball, workdir)
    host = OfflineHost(host_image(), workdir)
    # The later version the upgrade test moves to is built while this host installs the first.
    later = ThreadPoolExecutor(max_workers=1)
    later_bundle = later.submit(bundle, ".post1")
    try:
        inventory = workdir / "inventory.yml"
        # The Nomad client configuration is only written (there is no Nomad here to run it).
        inventory.write_text(host.inventory(nomad_client_enabled="true"))
        playbook = Playbook(ansible_dir, inventory)
        first = playbook.run()
        measured(f"bundle {tarball.name}: {tarball.stat().st_size / 2**20:.0f} MiB; "
              f"first playbook run (install): {first[2]:.0f} s")
        yield host, playbook, first, later_bundle
    finally:
        later.shutdown()
        host.remove()


def test_host_has_no_network(installed):
    host, *_ = installed
    interfaces = host.exec("ls", "/sys/class/net").stdout.split()
    assert interfaces == ["lo"]


def test_playbook_installs_from_the_bundle(installed):
    host, _, (result, counts, _), _ = installed
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert counts["failed"] == 0 and counts["unreachable"] == 0
    assert counts["changed"] > 0
    # Everything came from the bundle: the venv's appliance and the apt repository in use.
    version = installed_version(host)
    assert version
    policy = host.exec("env", "APT_CONFIG=/etc/sqlrs/apt/apt.conf", "apt-cache", "policy", "redis-server").stdout
    assert f"file:/opt/sqlrs/bundles/sqlrs-appliance-{version}/debs" in policy
    assert host.exec("/etc/init.d/sqlrs-appliance", "status").returncode == 0


def nomad_client_drop_in(host: OfflineHost) -> str:
    return host.exec("cat", "/etc/nomad.d/sqlrs-client.hcl").stdout


def test_the_nomad_client_drop_in_enables_raw_exec_for_the_service_jobs(installed):
    host, *_ = installed
    assert re.search(r'plugin "raw_exec" \{\s*config \{\s*enabled = true\s*\}', nomad_client_drop_in(host))


def test_the_nomad_client_drop_in_allows_no_privileged_container(installed):
    host, *_ = installed
    assert "privileged" not in nomad_client_drop_in(host)


def test_the_nomad_client_drop_in_declares_no_host_volume(installed):
    host, *_ = installed
    assert "host_volume" not in nomad_client_drop_in(host)


def test_the_nomad_client_drop_in_enables_no_docker_bind_mounts_on_a_process_runtime_host(installed):
    host, *_ = installed
    assert 'plugin "docker"' not in nomad_client_drop_in(host)


def test_the_nomad_client_drop_in_raises_max_kill_timeout_to_the_workers_five_minutes(installed):
    host, *_ = installed
    assert re.search(r'^\s*max_kill_timeout = "5m"$', nomad_client_drop_in(host), re.MULTILINE)


def test_the_nomad_client_drop_in_marks_the_node_as_a_store_host(installed):
    host, *_ = installed
    assert re.search(r'meta \{\s*"sqlrs_host" = "sqlrs-host1"\s*"sqlrs_store" = "true"', nomad_client_drop_in(host))


def test_smoke_prepare_psql(installed):
    host, *_ = installed
    dsn = prepare(host, "/root/smoke.sql", SMOKE_SQL)
    assert query(host, dsn, "select string_agg(name, ',' order by id) from release") == "offline,bundle"


def test_smoke_prepare_lb(installed):
    """prepare:lb with the bundle's own Liquibase and JRE, on a host that never had network."""
    host, *_ = installed
    host.exec("mkdir", "-p", "/root/lb")
    host.exec("sh", "-c", "cat > /root/lb/changelog.xml", input=LB_CHANGELOG)
    result = host.exec("sh", "-c", "cd /root/lb && exec env SQLRS_URL=http://127.0.0.1:7433 "
                       "SQLRS_TOKEN_FILE=/var/lib/sqlrs-appliance/admin.token /opt/sqlrs/venv/bin/sqlrs "
                       "prepare:lb -- update --changelog-file changelog.xml", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    dsn = re.search(r"^DSN=(\S+)$", result.stdout, re.MULTILINE)
    assert dsn, result.stdout
    assert query(host, dsn.group(1), "select count(*) from databasechangelog") == "2"
    assert query(host, dsn.group(1), "select note from offline") == "liquibase"


def test_second_run_changes_nothing(installed):
    _, playbook, *_ = installed
    result, counts, seconds = playbook.run()
    measured(f"second playbook run: {seconds:.0f} s, {counts}")
    assert result.returncode == 0, result.stdout[-6000:]
    assert counts["changed"] == 0, tasks_with("changed", result.stdout)
    assert counts["failed"] == 0


def test_changed_bundle_file_stops_the_play(installed):
    """SHA256SUMS is checked on every run, before any task installs from the bundle."""
    host, playbook, *_ = installed
    wheel = host.exec("sh", "-c", "ls /opt/sqlrs/bundles/*/wheels/sqlrs_appliance-*.whl").stdout.split()[0]
    host.exec("sh", "-c", f"printf x >> {wheel}")
    result, counts, _ = playbook.run()
    assert result.returncode != 0 and counts["failed"] == 1
    assert tasks_with("fatal", result.stdout) == ["sqlrs : Verify the bundle against its SHA256SUMS"]
    assert "FAILED" in result.stdout and wheel.rsplit("/", 1)[-1] in result.stdout


def test_upgrade_keeps_states_and_instances(installed, tmp_path):
    """The same code released as a later version: the venv moves to it, the appliance is stopped,
    migrated once and started again, and what existed before is still there and still running."""
    host, playbook, _, later_bundle = installed
    dsn = prepare(host, "/root/before.sql", "create table kept (v text); insert into kept values ('before');\n")
    before = installed_version(host)
    api_pid = host.exec("cat", "/run/sqlrs/api.pid").stdout.strip()

    newer = later_bundle.result()
    upgrade = Playbook(unpack(newer, tmp_path), playbook.inventory)
    result, counts, seconds = upgrade.run()
    measured(f"upgrade {before} -> {newer.name}: {seconds:.0f} s")
    assert result.returncode == 0, result.stdout[-6000:]
    changed = tasks_with("changed", result.stdout)
    assert f"appliance : Install from the wheelhouse sqlrs-appliance {before}.post1" in changed
    assert "appliance : Bring the appliance to stopped" in changed
    assert "appliance : Apply the Control DB migrations" not in changed  # ran, had nothing to apply
    assert installed_version(host) == f"{before}.post1"
    assert host.exec("cat", "/run/sqlrs/api.pid").stdout.strip() != api_pid

    assert query(host, dsn, "select v from kept") == "before"  # the instance ran through it
    explain = sqlrs(host, "cache", "explain", "--", "-f", "/root/before.sql")
    assert explain.stdout.startswith("hit: exact_state_match"), explain.stdout + explain.stderr

    result, counts, _ = upgrade.run()
    assert result.returncode == 0 and counts["changed"] == 0, tasks_with("changed", result.stdout)


def test_systemd_host(tmp_path):
    """The systemd path, on a host that boots systemd as PID 1: the units of systemd/ installed,
    enabled and running (with the copy driver's drop-in), a smoke prepare, a rerun that changes nothing."""
    host = OfflineHost(host_image(), tmp_path, systemd=True)
    try:
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(host.inventory())
        playbook = Playbook(unpack(bundle(), tmp_path), inventory)
        result, counts, seconds = playbook.run()
        measured(f"systemd host: first playbook run (install): {seconds:.0f} s")
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]

        units = ["sqlrs-api", "sqlrs-reconciler", "sqlrs-worker@1", "sqlrs-worker@2", "sqlrs-migrate", "postgresql@15-main",
                 "redis-server"]
        assert host.exec("systemctl", "is-active", *units, check=False).stdout.split() == ["active"] * len(units)
        assert host.exec("systemctl", "is-enabled", "sqlrs.target", "sqlrs-worker@2").stdout.split() == ["enabled"] * 2
        caps = host.exec("systemctl", "show", "--property=CapabilityBoundingSet", "sqlrs-worker@1").stdout
        assert "cap_chown" in caps and "cap_sys_admin" not in caps  # the copy driver mounts nothing

        dsn = prepare(host, "/root/smoke.sql", SMOKE_SQL)
        assert query(host, dsn, "select string_agg(name, ',' order by id) from release") == "offline,bundle"

        result, counts, _ = playbook.run()
        assert result.returncode == 0 and counts["changed"] == 0, tasks_with("changed", result.stdout)
    finally:
        host.remove()
