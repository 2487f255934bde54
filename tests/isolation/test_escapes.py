"""Org B attacks org A, and the appliance itself, from inside its own prepares.

Each test is one family of vectors from the threat model (DESIGN §2b); the fixture ``tenants``
(conftest.py) runs every one on the process, docker and nomad runtimes, each on btrfs and zfs.
"""
from __future__ import annotations

import glob
import textwrap
from pathlib import Path

import pytest

from tests.support.psql import psql
from tests.support.tenants import Tenants

# psql meta-commands that act on the worker: each is refused when the request is planned.
REFUSED_META_COMMANDS = [
    ("\\! id", "\\!"),
    ("\\o /tmp/out.txt", "\\o"),
    ("\\o | id", "\\o"),
    ("select 1 \\g /tmp/out.txt", "\\g"),
    ("select 1 \\gx | id", "\\gx"),
    ("\\w /tmp/buffer.sql", "\\w"),
    ("\\copy (select 1) to '/tmp/out.csv'", "\\copy"),
    ("\\copy pg_class from '/etc/passwd'", "\\copy"),
    ("\\copy pg_class from program 'id'", "\\copy"),
    ("\\setenv PAGER id", "\\setenv"),
    ("\\cd /", "\\cd"),
    ("\\lo_export 1 /tmp/out.bin", "\\lo_export"),
    ("\\lo_import /etc/passwd", "\\lo_import"),
    ("\\set x `id`", "\\set"),
    ("\\connect host=127.0.0.1 port=5432", "\\connect"),
]


def _attack_script(t: Tenants) -> str:
    """One step that tries every server-side vector and keeps whatever it got in ``loot``."""
    data, store = t.app.data_dir, t.store
    a_dir = store / "orgs" / t.org_a
    low, high = t.app.env["SQLRS_PORT_MIN"], t.app.env["SQLRS_PORT_MAX"]
    files = [data / "admin.token", data / "control.db", a_dir, a_dir / "states", data / "sources" / t.org_a,
             data / "run", data / "objects", "/etc/shadow", "/proc/1/environ"]
    shell = textwrap.dedent(f"""\
        export PATH="$PATH:/usr/lib/postgresql/15/bin"
        id
        for d in {data} {store} /tmp /var/tmp /dev/shm /var/lib; do grep -r -a -o -m3 -s {t.secret[:12]} "$d" | head -5; done
        ls -la {data} {data}/run {data}/sources {data}/sources/{t.org_a} {a_dir}/states {a_dir}/volumes 2>&1 | head -60
        cat {data}/admin.token {data}/redis.password 2>&1 | head -5
        for r in "-s {data}/redis/redis.sock" "-h 127.0.0.1 -p 6379"; do redis-cli $r ping 2>&1 | head -2; done
        for s in $(find / -xdev -name '.s.PGSQL.*' ! -name '*.lock' 2>/dev/null) {data}/run/*/.s.PGSQL.*; do
          psql -X -h "$(dirname "$s")" -p "${{s##*.}}" -U sqlrs -d postgres -Atc 'select v from secret' 2>&1 | head -3
        done
        for p in $(seq {low} {high}); do
          PGCONNECT_TIMEOUT=1 PGPASSWORD=sqlrs psql -X "host=127.0.0.1 port=$p user=sqlrs dbname=postgres" \
            -Atc 'select v from secret' 2>&1 | grep -v -e 'Connection refused' -e 'password authentication' | head -2
        done
        for d in /tmp /var/tmp /dev/shm {data} {store} {a_dir}/states/* {a_dir}/volumes/*; do
          touch "$d/{t.marker}" 2>&1; echo {t.marker} >> "$d/pgdata/PG_VERSION" 2>&1
        done
        true""")
    probes = ",".join(f"'{p}'" for p in files)
    return textwrap.dedent(f"""\
        create table loot (vector text, data text);
        do $$ declare p text; begin
          foreach p in array array[{probes}] loop
            begin insert into loot values ('pg_read_file ' || p, encode(pg_read_binary_file(p), 'escape'));
            exception when others then insert into loot values ('pg_read_file ' || p, sqlerrm); end;
            begin insert into loot select 'pg_ls_dir ' || p, string_agg(f, ' ') from pg_ls_dir(p) f;
            exception when others then insert into loot values ('pg_ls_dir ' || p, sqlerrm); end;
            begin insert into loot values ('pg_stat_file ' || p, (pg_stat_file(p)).size::text);
            exception when others then insert into loot values ('pg_stat_file ' || p, sqlerrm); end;
            begin insert into loot values ('lo_import ' || p, encode(lo_get(lo_import(p)), 'escape'));
            exception when others then insert into loot values ('lo_import ' || p, sqlerrm); end;
          end loop;
          foreach p in array array['{a_dir}/states/{t.marker}', '/tmp/{t.marker}', '{data}/{t.marker}'] loop
            begin execute format('copy (select 1) to %L', p);
            exception when others then insert into loot values ('copy to ' || p, sqlerrm); end;
            begin perform lo_export(lo_from_bytea(0, 'x'), p);
            exception when others then insert into loot values ('lo_export ' || p, sqlerrm); end;
          end loop;
        end $$;
        copy loot (data) from program $sh${shell}$sh$ with (format csv, delimiter e'\\x02', quote e'\\x01');
        update loot set vector = 'program' where vector is null;
        """)


@pytest.fixture(scope="module")
def attack(tenants: Tenants, tmp_path_factory) -> dict:
    """B's attack, run once per appliance: its job's status, events and loot."""
    before = tenants.a_state_files()
    scripts = tmp_path_factory.mktemp("org-b")
    (scripts / "attack.sql").write_text(_attack_script(tenants))
    with tenants.app.acting_in(tenants.org_b):
        status = tenants.app.prepare(["-f", "attack.sql"], scripts)
        events = tenants.app.get(f"/v1/prepare-jobs/{status['job_id']}/events").text
    assert status["status"] == "succeeded", status["error"]
    loot = psql(status["result"]["dsn"], "select vector || ': ' || coalesce(data, '') from loot").stdout
    return {"status": status, "events": events, "loot": loot, "before": before}


def test_the_attack_really_ran_programs_as_the_database_server(attack):
    assert "uid=" in attack["loot"]  # COPY … FROM PROGRAM executed: what follows is not vacuous
    assert "pg_read_file" in attack["loot"] and "lo_import" in attack["loot"]


def test_org_a_secret_reaches_nothing_org_b_can_read(tenants, attack):
    assert tenants.secret not in attack["loot"]
    assert tenants.secret not in attack["events"]
    assert tenants.secret[:12] not in attack["loot"]  # not even the prefix the grep looked for


def test_the_appliance_secrets_are_out_of_reach(tenants, attack):
    assert tenants.app.token not in attack["loot"]
    assert "PONG" not in attack["loot"]  # the queues' Redis answers no one without its password
    redis_password = tenants.app.data_dir / "redis.password"
    if redis_password.exists():
        assert redis_password.read_text().strip() not in attack["loot"]


def test_org_a_states_are_byte_identical_afterwards(tenants, attack):
    assert tenants.a_state_files() == attack["before"]
    assert psql(tenants.a_dsn, "select v from secret").stdout.strip() == tenants.secret


def test_org_b_writes_nothing_outside_its_own_volumes(tenants, attack):
    own = str(tenants.store / "orgs" / tenants.org_b / "volumes")
    written = [path for root in ("/tmp", "/var/tmp", "/dev/shm", str(tenants.app.data_dir), str(tenants.store))
               for path in glob.glob(f"{root}/**/{tenants.marker}", recursive=True)
               if not path.startswith(own)]
    assert written == []
    versions = glob.glob(str(tenants.store / "orgs" / tenants.org_a / "*" / "*" / "pgdata" / "PG_VERSION"))
    assert versions and all(tenants.marker not in Path(v).read_text() for v in versions)


def test_org_b_instance_sessions_cannot_reach_org_a_either(tenants, attack):
    """The same server-side vectors from a session on B's running instance (not a build)."""
    dsn = attack["status"]["result"]["dsn"]
    out = psql(dsn, f"create temp table t (line text); copy t from program $$"
                    f"export PATH=$PATH:/usr/lib/postgresql/15/bin; "
                    f"grep -r -a -o -m3 -s {tenants.secret[:12]} {tenants.app.data_dir} {tenants.store} | head -3; "
                    f"for s in $(find / -xdev -name '.s.PGSQL.*' ! -name '*.lock' 2>/dev/null) "
                    f"{tenants.app.data_dir}/run/*/.s.PGSQL.*; do "
                    f"psql -X -h $(dirname $s) -p ${{s##*.}} -U sqlrs -d postgres -Atc 'select v from secret' 2>&1; "
                    f"done; id$$ with (format csv, delimiter e'\\x02', quote e'\\x01'); select * from t")
    assert out.returncode == 0, out.stderr
    assert "uid=" in out.stdout and tenants.secret[:12] not in out.stdout


@pytest.mark.parametrize("command,meta", REFUSED_META_COMMANDS)
def test_a_meta_command_that_acts_on_the_worker_is_refused_at_plan_time(tenants, command, meta):
    with tenants.app.acting_in(tenants.org_b):
        jobs_before = len(tenants.app.get("/v1/prepare-jobs").json())
        response = tenants.app.post("/v1/prepare-jobs", json={"prepare_kind": "psql", "image_id": "postgres:15",
                                                               "psql_args": ["-c", command]})
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == "invalid_argument" and body["details"]["meta_command"] == meta
        assert len(tenants.app.get("/v1/prepare-jobs").json()) == jobs_before  # nothing recorded


def _liquibase_project(tmp_path: Path, changesets: str) -> Path:
    """A directory with changelog.xml holding these changesets."""
    project = tmp_path / "lb"
    project.mkdir()
    (project / "changelog.xml").write_text(textwrap.dedent('''\
        <databaseChangeLog xmlns="http://www.liquibase.org/xml/ns/dbchangelog"
            xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
            xsi:schemaLocation="http://www.liquibase.org/xml/ns/dbchangelog
              http://www.liquibase.org/xml/ns/dbchangelog/dbchangelog-4.20.xsd">
''') + textwrap.dedent(changesets) + "</databaseChangeLog>\n")
    return project


def test_a_liquibase_changelog_cannot_read_or_run_outside_its_source(tenants, tmp_path):
    a_sources = glob.glob(str(tenants.app.data_dir / "sources" / tenants.org_a / "*" / "secret.sql"))
    assert a_sources, "org A's uploaded source is where the test expects it"
    project = _liquibase_project(tmp_path, f"""\
          <changeSet id="1" author="bravo">
            <createTable tableName="loot"><column name="data" type="text"/></createTable>
          </changeSet>
          <changeSet id="2" author="bravo" failOnError="false">
            <executeCommand executable="/bin/sh">
              <arg value="-c"/>
              <arg value="grep -r -a -s {tenants.secret[:12]} {tenants.app.data_dir} {tenants.store}; cat {a_sources[0]}; id"/>
            </executeCommand>
          </changeSet>
          <changeSet id="3" author="bravo" failOnError="false">
            <sqlFile path="{a_sources[0]}"/>
          </changeSet>
        """)
    with tenants.app.acting_in(tenants.org_b):
        response = tenants.app.submit_lb(["update", "--changelog-file", "changelog.xml"], project)
        assert response.status_code == 201, response.text
        status = tenants.app.wait(response.json()["job_id"], timeout=300)
        events = tenants.app.get(f"/v1/prepare-jobs/{status['job_id']}/events").text
    assert tenants.secret not in events
    if status["status"] == "succeeded":
        tables = psql(status["result"]["dsn"], "select string_agg(tablename, ' ') from pg_tables "
                                               "where schemaname = 'public'").stdout
        assert "secret" not in tables  # A's script never ran in B's database


@pytest.mark.parametrize("how", ["include", "includeAll", "search-path"])
def test_a_liquibase_changelog_cannot_include_another_orgs_source(tenants, tmp_path, how):
    """A's uploaded script named from B's changelog (an absolute ``include`` or ``includeAll``, or
    a ``--search-path`` climbing out of B's source): Liquibase would run it as a raw SQL
    changeset, creating A's table with A's secret in B's database."""
    a_sources = glob.glob(str(tenants.app.data_dir / "sources" / tenants.org_a / "*" / "secret.sql"))
    assert a_sources, "org A's uploaded source is where the test expects it"
    a_source = Path(a_sources[0])
    element, args = {
        "include": (f'<include file="{a_source}"/>', []),
        "includeAll": (f'<includeAll path="{a_source.parent}"/>', []),
        "search-path": ('<include file="secret.sql"/>',
                        ["--search-path", f".,../../{tenants.org_a}/{a_source.parent.name}"]),
    }[how]
    project = _liquibase_project(tmp_path, f"""\
          <changeSet id="1" author="bravo"><sql>create table mine (v text)</sql></changeSet>
          {element}
        """)
    with tenants.app.acting_in(tenants.org_b):
        response = tenants.app.submit_lb(["update", "--changelog-file", "changelog.xml", *args], project)
        if how == "search-path":  # refused when planned: nothing runs
            assert response.status_code == 400 and response.json()["code"] == "invalid_argument", response.text
            return
        assert response.status_code == 201, response.text
        status = tenants.app.wait(response.json()["job_id"], timeout=300)
        events = tenants.app.get(f"/v1/prepare-jobs/{status['job_id']}/events").text
    assert tenants.secret not in events and tenants.secret not in str(status)
    if status["status"] == "succeeded":
        tables = psql(status["result"]["dsn"], "select string_agg(tablename, ' ') from pg_tables "
                                               "where schemaname = 'public'").stdout
        assert "secret" not in tables
