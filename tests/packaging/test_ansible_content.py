"""The Ansible content: ansible-lint at its strictest profile, for real (no network), and every
role variable documented in docs/install.md."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE_DEFAULTS = sorted((REPO / "ansible" / "roles").glob("*/defaults/main.yml"))


def test_ansible_lint_production_profile():
    result = subprocess.run(["ansible-lint", "--offline", "--nocolor", "--profile", "production", "ansible/"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stderr + result.stdout


@pytest.mark.parametrize("variable", [name for path in ROLE_DEFAULTS for name in yaml.safe_load(path.read_text())])
def test_every_role_variable_is_documented(variable):
    assert f"`{variable}`" in (REPO / "docs" / "install.md").read_text()
