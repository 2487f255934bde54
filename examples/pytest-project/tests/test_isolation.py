"""Each test changes its database in its own way; each sees the seeded state and nothing another
test did, whichever worker ran it and in whatever order."""
import os

import pytest

SEEDED_CUSTOMERS = 50
SEEDED_ORDERS = 200


def seeded(db):
    db.execute("select count(*) from customers where email like 'customer%@example.com'")
    customers = db.fetchone()[0]
    db.execute("select count(*) from orders")
    return customers, db.fetchone()[0]


def record(sqlrs_database):
    """Where each test ran, for the suite that checks this one (one line per test)."""
    path = os.environ.get("EXAMPLE_RECORD_DIR")
    if path:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(os.path.join(path, f"{worker}-{os.getpid()}.txt"), "a") as out:
            out.write(f"{sqlrs_database.instance_id}\n")


@pytest.mark.parametrize("n", range(12))
def test_a_new_customer_is_the_only_one_added(db, sqlrs_database, n):
    record(sqlrs_database)
    assert seeded(db) == (SEEDED_CUSTOMERS, SEEDED_ORDERS)
    db.execute("insert into customers (email) values (%s)", (f"new-{n}@example.com",))
    db.execute("select count(*) from customers where email like 'new-%'")
    assert db.fetchone()[0] == 1


@pytest.mark.parametrize("n", range(4))
def test_cancelling_every_order_leaves_the_others_alone(db, sqlrs_database, n):
    record(sqlrs_database)
    assert seeded(db) == (SEEDED_CUSTOMERS, SEEDED_ORDERS)
    db.execute("select count(*) from orders where status = 'cancelled'")
    assert db.fetchone()[0] == 0
    db.execute("update orders set status = 'cancelled'")
    db.execute("select count(*) from orders where status = 'cancelled'")
    assert db.fetchone()[0] == SEEDED_ORDERS


def test_dropping_a_table_drops_it_here_only(db, sqlrs_database):
    record(sqlrs_database)
    assert seeded(db) == (SEEDED_CUSTOMERS, SEEDED_ORDERS)
    db.execute("drop view customer_totals")
    db.execute("drop table orders")
    db.execute("select to_regclass('orders')")
    assert db.fetchone()[0] is None


def test_deleting_every_customer_cascades_to_their_orders(db, sqlrs_database):
    record(sqlrs_database)
    assert seeded(db) == (SEEDED_CUSTOMERS, SEEDED_ORDERS)
    db.execute("delete from customers")
    db.execute("select count(*) from orders")
    assert db.fetchone()[0] == 0


def test_a_schema_change_is_this_test_s_own(db, sqlrs_database):
    record(sqlrs_database)
    db.execute("select count(*) from information_schema.columns where table_name = 'customers' and column_name = 'vip'")
    assert db.fetchone()[0] == 0
    db.execute("alter table customers add column vip boolean not null default false")
    db.execute("update customers set vip = true where id <= 5")
    db.execute("select count(*) from customers where vip")
    assert db.fetchone()[0] == 5


def test_the_view_from_the_included_file_totals_the_seeded_orders(db, sqlrs_database):
    record(sqlrs_database)
    db.execute("select sum(orders), sum(total_cents) from customer_totals")
    assert db.fetchone() == (SEEDED_ORDERS, sum(100 * g for g in range(1, SEEDED_ORDERS + 1)))


def test_the_database_env_is_what_libpq_reads(sqlrs_database):
    record(sqlrs_database)
    env = sqlrs_database.env
    assert env["DATABASE_URL"] == sqlrs_database.dsn and env["PGPASSWORD"] and env["PGPORT"].isdigit()
    assert "PGPASSWORD" not in repr(sqlrs_database) and env["PGPASSWORD"] not in repr(sqlrs_database)
