"""The appliance role's appliance.toml, rendered by Ansible itself and read back by the appliance's
own settings: the TLS variables turn HTTPS on the way docs/install.md says."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from appliance.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "ansible" / "roles" / "appliance" / "templates" / "appliance.toml.j2"
DEFAULTS = [REPO / "ansible" / "roles" / role / "defaults" / "main.yml" for role in ("sqlrs", "minio", "appliance")]
PLAY = """\
- name: Render appliance.toml
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Render
      ansible.builtin.template:
        src: {template}
        dest: {dest}
        mode: "0644"
"""


def rendered(tmp_path: Path, **overrides) -> Path:
    dest = tmp_path / "appliance.toml"
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(template=TEMPLATE, dest=dest))
    variables: dict = {}
    for defaults in DEFAULTS:
        variables.update(yaml.safe_load(defaults.read_text()))
    variables.update({"sqlrs_host_id": "host1", "sqlrs_store_dir": str(tmp_path / "store"), "storage_backend": "btrfs",
                      "sqlrs_runtime": "process", "sqlrs_data_dir": str(tmp_path / "data"),
                      "ansible_python_interpreter": sys.executable, **overrides})
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables))
    result = subprocess.run(["ansible-playbook", "-i", "localhost,", "-e", f"@{extra}", str(playbook)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return dest


def settings_from(path: Path, monkeypatch) -> Settings:
    for name in [k for k in os.environ if k.startswith("SQLRS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SQLRS_CONFIG", str(path))
    return Settings()


def test_by_default_the_api_speaks_plain_http(tmp_path, monkeypatch):
    settings = settings_from(rendered(tmp_path), monkeypatch)
    assert (settings.tls_cert_file, settings.tls_self_signed) == (None, False)


def test_the_sites_certificate_files_are_served(tmp_path, monkeypatch):
    settings = settings_from(rendered(tmp_path, appliance_tls_cert_src="/src/api.crt",
                                      appliance_tls_key_src="/src/api.key"), monkeypatch)
    assert (settings.tls_cert_file, settings.tls_key_file) == (Path("/etc/sqlrs/tls/api.crt"),
                                                              Path("/etc/sqlrs/tls/api.key"))
    assert settings.tls_self_signed is False


def test_self_signed_turns_on_the_appliances_own_ca(tmp_path, monkeypatch):
    settings = settings_from(rendered(tmp_path, appliance_tls_self_signed=True), monkeypatch)
    assert settings.tls_self_signed is True and settings.tls_cert_file is None
