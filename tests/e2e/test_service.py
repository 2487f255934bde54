"""What `sqlrs-appliance up` promises operators: a private admin token, secrets kept out of logs."""
from __future__ import annotations

import stat


def test_the_admin_token_file_is_private_and_only_its_hash_is_stored(appliance):
    token_file = appliance.data_dir / "admin.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert token.encode() not in (appliance.data_dir / "control.db").read_bytes()


def test_the_control_db_is_not_readable_by_the_database_user(appliance):
    assert stat.S_IMODE((appliance.data_dir / "control.db").stat().st_mode) & 0o077 == 0


def test_no_instance_password_appears_in_any_log(appliance, scripts):
    status = appliance.prepare(["-f", "schema.sql"], scripts)
    password = status["result"]["dsn"].split("//", 1)[1].split("@", 1)[0].split(":", 1)[1]
    logs = [appliance.data_dir.parent / f"{appliance.data_dir.name}.log",
            *(appliance.data_dir / "logs").glob("*.log"), *(appliance.data_dir / "run").glob("*/*.log")]
    assert len(logs) > 3
    for log in logs:
        assert password not in log.read_text(errors="replace"), log
