"""docs/client.md's examples, run as a reader would paste them: each Python block against a real
appliance (``SQLRS_URL``/``SQLRS_TOKEN``), in a directory with ``db/`` scripts and a Liquibase
project in ``changelog/``."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.liquibase import SHOP

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


@pytest.mark.parametrize("block", range(len(BLOCKS)))
def test_the_client_docs_example_runs(appliance, tmp_path, block):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "schema.sql").write_text(f"create table items /* {tmp_path.name} */ (id int, name text);\n")
    (tmp_path / "db" / "data.sql").write_text("insert into items select g, 'item ' || g from generate_series(1, 10) g;\n")
    shutil.copytree(SHOP, tmp_path / "changelog")
    (tmp_path / "example.py").write_text(BLOCKS[block])
    env = {**os.environ, "SQLRS_URL": appliance.url, "SQLRS_TOKEN": appliance.token}
    result = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "postgres://" in result.stdout or "not_found" in result.stdout
