"""The systemd units: `systemd-analyze verify` clean, and the ordering, restart and hardening they
promise, as systemd itself parses them (`systemd-analyze security --offline`)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.service.main import cli as service_cli
from tests.packaging.units import UNIT_DIR, UNITS, VENV_BIN, directives, instance, make_root, value, words

SERVICES = [u for u in UNITS if u.endswith(".service")]
LONG_RUNNING = ["sqlrs-api.service", "sqlrs-reconciler.service", "sqlrs-worker@.service"]
# What the storage and instance drivers use; each is explained in sqlrs-worker@.service.
DRIVER_CAPABILITIES = {"cap_sys_admin", "cap_mknod", "cap_chown", "cap_fowner", "cap_dac_override",
                       "cap_setuid", "cap_setgid", "cap_kill", "cap_sys_ptrace"}


def analyze(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: scripts/install-deps --tests installs the `systemd` package"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return make_root(tmp_path_factory.mktemp("root"))


def security(root: Path, unit: str) -> dict[str, bool | None]:
    done = analyze("security", "--offline=true", f"--root={root}", "--json=short", instance(unit))
    assert done.returncode == 0, done.stderr
    return {entry["json_field"]: entry["set"] for entry in json.loads(done.stdout)}


def test_the_systemd_directory_holds_the_api_reconciler_workers_migrations_and_a_target():
    assert UNITS == ["sqlrs-api.service", "sqlrs-migrate.service", "sqlrs-reconciler.service", "sqlrs-worker@.service",
                     "sqlrs.target"]


@pytest.mark.parametrize("unit", UNITS)
def test_unit_passes_systemd_analyze_verify_without_a_word(root, unit):
    done = analyze("verify", "--man=no", f"--root={root}", instance(unit))
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_verify_fails_when_the_venv_lacks_sqlrs_appliance(tmp_path):
    broken = make_root(tmp_path)
    (broken / VENV_BIN.lstrip("/") / "sqlrs-appliance").unlink()
    done = analyze("verify", "--man=no", f"--root={broken}", "sqlrs-api.service")
    assert done.returncode != 0 and "sqlrs-appliance is not executable" in done.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_unit_opens_with_a_comment_saying_why(unit):
    assert (UNIT_DIR / unit).read_text().startswith("# ")


@pytest.mark.parametrize("unit", SERVICES)
def test_service_runs_a_real_sqlrs_appliance_command(unit):
    binary, *args = value(unit, "Service", "ExecStart").split()
    assert binary == f"{VENV_BIN}/sqlrs-appliance"
    result = CliRunner().invoke(service_cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert args[0] in service_cli.commands


@pytest.mark.parametrize("unit", SERVICES)
def test_service_reads_the_site_config_from_etc_sqlrs(unit):
    assert "SQLRS_CONFIG=/etc/sqlrs/appliance.toml" in directives(unit)[("Service", "Environment")]
    assert value(unit, "Service", "EnvironmentFile") == "-/etc/sqlrs/appliance.env"


@pytest.mark.parametrize("unit", LONG_RUNNING)
def test_api_and_workers_start_only_after_migrations_succeeded(unit):
    assert "sqlrs-migrate.service" in words(unit, "Unit", "Requires")
    assert "sqlrs-migrate.service" in words(unit, "Unit", "After")


def test_migrations_run_once_and_stay_done_while_the_api_restarts():
    unit = "sqlrs-migrate.service"
    assert (value(unit, "Service", "Type"), value(unit, "Service", "RemainAfterExit")) == ("oneshot", "yes")
    assert value(unit, "Service", "ExecStart").split()[1:] == ["migrate"]


@pytest.mark.parametrize("unit", SERVICES)
def test_restarting_the_target_restarts_the_service(unit):
    assert value(unit, "Unit", "PartOf") == "sqlrs.target"


@pytest.mark.parametrize("unit", LONG_RUNNING)
def test_enabling_a_service_attaches_it_to_the_target(unit):
    assert value(unit, "Install", "WantedBy") == "sqlrs.target"


def test_the_target_pulls_in_migrations_and_starts_at_boot():
    assert "sqlrs-migrate.service" in words("sqlrs.target", "Unit", "Wants")
    assert value("sqlrs.target", "Install", "WantedBy") == "multi-user.target"


@pytest.mark.parametrize("unit", LONG_RUNNING)
def test_a_crashed_service_restarts_within_a_start_limit(unit):
    assert value(unit, "Service", "Restart") == "on-failure"
    assert value(unit, "Service", "RestartSec") and int(value(unit, "Unit", "StartLimitBurst")) > 1
    assert value(unit, "Unit", "StartLimitIntervalSec")


@pytest.mark.parametrize("unit", LONG_RUNNING)
def test_instances_outlive_a_restart_of_the_service_that_started_them(unit):
    assert value(unit, "Service", "KillMode") == "process"


COMMON_HARDENING = ["NoNewPrivileges", "RestrictSUIDSGID", "LockPersonality", "RestrictRealtime",
                    "RestrictNamespaces_mnt", "RestrictNamespaces_user", "ProtectHostname",
                    "SystemCallArchitectures", "RestrictAddressFamilies_AF_PACKET", "UMask",
                    "CapabilityBoundingSet_CAP_SYS_MODULE", "CapabilityBoundingSet_CAP_SYS_TIME",
                    "CapabilityBoundingSet_CAP_NET_ADMIN", "CapabilityBoundingSet_CAP_SYS_RAWIO",
                    "CapabilityBoundingSet_CAP_BPF", "CapabilityBoundingSet_CAP_SYS_BOOT"]


@pytest.mark.parametrize("field", COMMON_HARDENING)
@pytest.mark.parametrize("unit", SERVICES)
def test_service_is_hardened_by(root, unit, field):
    assert security(root, unit)[field] is True


@pytest.mark.parametrize("unit", LONG_RUNNING)
def test_bounding_set_is_exactly_what_the_storage_and_instance_drivers_use(root, unit):
    # systemd drops a capability name it does not know without a word; its own parse tells.
    dump = analyze("verify", "--man=no", f"--root={root}", instance(unit), env={"SYSTEMD_LOG_LEVEL": "debug"})
    parsed = re.search(r"^\s*CapabilityBoundingSet: (.*)$", dump.stdout + dump.stderr, re.M)
    assert parsed and set(parsed.group(1).split()) == DRIVER_CAPABILITIES


@pytest.mark.parametrize("field", ["SystemCallFilter_module", "SystemCallFilter_reboot", "SystemCallFilter_raw_io",
                                   "SystemCallFilter_debug", "SystemCallFilter_swap", "SystemCallFilter_clock"])
@pytest.mark.parametrize("unit", LONG_RUNNING)
def test_api_and_workers_are_denied_system_calls_they_never_make(root, unit, field):
    assert security(root, unit)[field] is True


MOUNT_NAMESPACE = ["ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts",
                   "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups"]


@pytest.mark.parametrize("field", MOUNT_NAMESPACE)
@pytest.mark.parametrize("unit", LONG_RUNNING)
def test_clones_mounted_by_api_and_workers_stay_visible_to_the_host(root, unit, field):
    # Each of these gives the service its own mount namespace, whose mounts never reach the host.
    assert security(root, unit)[field] is False


@pytest.mark.parametrize("field", MOUNT_NAMESPACE + ["ProtectClock", "CapabilityBoundingSet_CAP_SYS_ADMIN",
                                                     "CapabilityBoundingSet_CAP_SET_UID_GID_PCAP",
                                                     "CapabilityBoundingSet_CAP_DAC_FOWNER_IPC_OWNER",
                                                     "SystemCallFilter_mount", "SystemCallFilter_module"])
def test_migrations_run_in_a_full_sandbox(root, field):
    assert security(root, "sqlrs-migrate.service")[field] is True


def test_migrations_may_write_only_the_data_dir():
    unit = "sqlrs-migrate.service"
    assert value(unit, "Service", "ProtectSystem") == "strict"
    assert words(unit, "Service", "ReadWritePaths") == {"-/var/lib/sqlrs-appliance"}


def test_migrations_have_no_capabilities_at_all():
    assert value("sqlrs-migrate.service", "Service", "CapabilityBoundingSet") == ""


@pytest.mark.parametrize("unit,threshold", [("sqlrs-migrate.service", 25), ("sqlrs-api.service", 70),
                                            ("sqlrs-reconciler.service", 70), ("sqlrs-worker@.service", 70)])
def test_overall_exposure_stays_below(root, unit, threshold):
    done = analyze("security", "--offline=true", f"--root={root}", f"--threshold={threshold}", instance(unit))
    assert done.returncode == 0, done.stdout[-400:]
