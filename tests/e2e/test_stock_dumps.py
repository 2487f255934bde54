"""A plain ``pg_dump`` of a stock database restores as-is: the roles and databases a stock
cluster has exist in every base cluster (docs/concepts.md lists what else differs)."""
from __future__ import annotations

import pytest

from tests.support.psql import psql
from tests.support.stock import plain_dump, stock_cluster, stock_psql

pytestmark = pytest.mark.e2e

SCHEMA = """
create schema shop;
create table shop.items (id int primary key, name text not null);
insert into shop.items select g, 'item ' || g from generate_series(1, 50) g;
create view shop.cheap as select * from shop.items where id < 10;
create function shop.count_items() returns bigint language sql as 'select count(*) from shop.items';
grant usage on schema shop to public;
grant select on shop.cheap to public;
alter default privileges in schema shop grant select on tables to public;
comment on table shop.items is 'from a stock server';
"""


@pytest.fixture(scope="module")
def stock_dump(tmp_path_factory):
    with stock_cluster() as sockets:
        stock_psql(sockets, SCHEMA)
        dump = plain_dump(sockets)
    assert "OWNER TO postgres" in dump  # what made restores stop at their first ALTER
    directory = tmp_path_factory.mktemp("dump")
    (directory / "dump.sql").write_text(dump)
    return directory


def test_a_plain_dump_of_a_stock_database_restores_as_is(appliance, stock_dump):
    job = appliance.prepare(["-v", "ON_ERROR_STOP=1", "-f", "dump.sql"], stock_dump)
    assert job["status"] == "succeeded", job["error"]
    dsn = job["result"]["dsn"]
    assert psql(dsn, "select shop.count_items()").stdout.strip() == "50"
    owner = psql(dsn, "select tableowner from pg_tables where schemaname = 'shop'").stdout.strip()
    assert owner == "postgres"


def test_the_stock_superuser_exists_in_every_prepared_database(appliance, scripts):
    job = appliance.prepare(["-f", "schema.sql"], scripts)
    assert job["status"] == "succeeded", job["error"]
    row = psql(job["result"]["dsn"], "select rolsuper, rolcanlogin from pg_roles where rolname = 'postgres'")
    assert row.stdout.strip() == "t|t"
