"""The only set-up the suite needs: a psycopg2 connection to this test's own database."""
import psycopg2
import pytest


@pytest.fixture
def db(sqlrs_database):
    conn = psycopg2.connect(sqlrs_database.dsn)
    conn.autocommit = True
    yield conn.cursor()
    conn.close()
