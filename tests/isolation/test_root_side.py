"""What an org leaves in its own directories must not turn the appliance (root) against anyone.

Org B owns its volume and socket directory, so its code can put a link or a FIFO where root later
reads a server log or ``postmaster.pid``, or replace its ``pgdata`` by a link to org A's. None of
it may give B a file it could not read, write a file of B's choosing, hang a worker, or touch A.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

from tests.support.psql import psql
from tests.support.tenants import Tenants


def _step(tenants: Tenants, tmp_path: Path, sql: str) -> dict:
    (tmp_path / "step.sql").write_text(sql)
    with tenants.app.acting_in(tenants.org_b):
        return tenants.app.prepare(["-f", "step.sql"], tmp_path)


def _everything_b_can_read(tenants: Tenants, status: dict) -> str:
    app, texts = tenants.app, []
    with app.acting_in(tenants.org_b):
        texts.append(app.get(f"/v1/prepare-jobs/{status['job_id']}/events").text)
        texts.append(str(status.get("error")))
        for artifact in app.get(f"/v1/prepare-jobs/{status['job_id']}/artifacts").json():
            texts.append(app.get(f"/v1/prepare-jobs/{status['job_id']}/artifacts/{artifact['name']}").text)
    return "\n".join(texts)


def test_a_server_log_linked_to_the_token_file_gives_b_nothing_and_changes_nothing(tenants, tmp_path):
    token_file = tenants.app.data_dir / "admin.token"
    before = (token_file.read_bytes(), os.stat(token_file))
    status = _step(tenants, tmp_path, (
        "do $$ begin execute format('copy (select 1) to program %L', 'ln -sf " + str(token_file) + " ' || "
        "current_setting('unix_socket_directories') || '/postgres.log'); end $$;\n"
        "do $$ begin raise log E'\\nline of the org''s choosing\\n'; end $$;\n"))
    assert tenants.app.token not in _everything_b_can_read(tenants, status)
    after = os.stat(token_file)
    assert token_file.read_bytes() == before[0]  # nothing appended through the link
    assert (after.st_uid, after.st_gid, after.st_mode) == (before[1].st_uid, before[1].st_gid, before[1].st_mode)


def test_a_fifo_in_place_of_postmaster_pid_does_not_hang_the_job(tenants, tmp_path):
    status = _step(tenants, tmp_path, (
        "do $$ begin execute format('copy (select 1) to program %L', 'rm -f ' || current_setting('data_directory') "
        "|| '/postmaster.pid; mkfifo ' || current_setting('data_directory') || '/postmaster.pid'); end $$;\n"))
    assert status["status"] in ("succeeded", "failed")  # wait() raises if the job never ends
    with tenants.app.acting_in(tenants.org_b):
        follow = tenants.app.prepare(["-c", "select 1"], tmp_path)
    assert follow["status"] == "succeeded", follow["error"]  # the workers are free


def test_a_pgdata_replaced_by_a_link_to_org_a_never_makes_root_act_on_org_a(tenants, tmp_path):
    a_pgdata = sorted(glob.glob(str(tenants.store / "orgs" / tenants.org_a / "volumes" / "*" / "pgdata")))
    assert a_pgdata, "org A's instance volume is where the test expects it"
    before = tenants.a_state_files()
    _step(tenants, tmp_path, (
        "do $$ begin execute format('copy (select 1) to program %L', 'mv ' || current_setting('data_directory') "
        "|| ' ' || current_setting('data_directory') || '.moved; ln -s " + a_pgdata[0] + " ' || "
        "current_setting('data_directory')); end $$;\n"))
    assert psql(tenants.a_dsn, "select v from secret").stdout.strip() == tenants.secret  # A's server lives
    assert tenants.a_state_files() == before
    assert _servers_in(tenants.store / "orgs" / tenants.org_b) == []  # B's moved server was stopped too


def _servers_in(directory: Path) -> list[str]:
    """Postgres processes (of any runtime: containers' too) whose working directory is under it."""
    found = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and os.readlink(f"/proc/{entry.name}/exe").endswith("/postgres"):
                cwd = os.readlink(f"/proc/{entry.name}/cwd")
                if cwd.startswith(f"{directory}/") and "pgdata.moved" in cwd:
                    found.append(cwd)
        except OSError:
            continue
    return found
