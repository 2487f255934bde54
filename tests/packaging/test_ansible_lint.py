"""ansible-lint on the playbook and roles, at its strictest profile, for real (no network)."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ansible_lint_production_profile():
    result = subprocess.run(["ansible-lint", "--offline", "--nocolor", "--profile", "production", "ansible/"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stderr + result.stdout
