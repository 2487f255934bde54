"""The Control DB and Redis the appliance is pointed at must ask for a password: tenants' code runs
on this host and can reach any server on its network. And no URL's password is ever shown."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import psycopg2
import pytest
from pydantic import ValidationError

from appliance.connections import DATABASE_WITHOUT_PASSWORD, REDIS_WITHOUT_PASSWORD, redact_url
from appliance.service.doctor import run_checks
from appliance.settings import Settings


def refusal(**settings) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**settings)
    return str(caught.value)


def test_a_postgresql_control_db_url_without_password_is_refused(tmp_path):
    for url in ("postgresql://sqlrs@127.0.0.1:5432/sqlrs", "postgres://sqlrs@db.example/sqlrs",
                "postgresql:///sqlrs?host=/var/run/postgresql", "postgresql://sqlrs:@db/sqlrs"):
        assert DATABASE_WITHOUT_PASSWORD in refusal(data_dir=tmp_path, database_url=url)
    Settings(data_dir=tmp_path, database_url="postgresql://sqlrs:s3cret@db/sqlrs")
    Settings(data_dir=tmp_path, database_url="postgresql://sqlrs@db/sqlrs?password=s3cret")
    Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/control.db")
    Settings(data_dir=tmp_path, database_url="postgresql://sqlrs@db/sqlrs", database_allow_no_password=True)


def test_a_tcp_redis_url_without_password_is_refused_and_a_unix_socket_is_not(tmp_path):
    for url in ("redis://127.0.0.1:6379/0", "rediss://redis.example:6380/0", "redis://user@127.0.0.1/0"):
        assert REDIS_WITHOUT_PASSWORD in refusal(data_dir=tmp_path, redis_url=url)
    Settings(data_dir=tmp_path, redis_url="redis://:s3cret@127.0.0.1:6379/0")
    Settings(data_dir=tmp_path, redis_url="redis://sqlrs:s3cret@127.0.0.1:6379/0")
    Settings(data_dir=tmp_path, redis_url="unix:///run/redis/redis.sock")
    Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0", redis_allow_no_password=True)


def test_a_refusal_shows_no_other_secret(tmp_path):
    text = refusal(data_dir=tmp_path, database_url="postgresql://sqlrs@db/sqlrs",
                   redis_url="redis://:redis-s3cret@127.0.0.1/0", s3_secret_key="s3-s3cret")
    assert "s3cret" not in text


def test_up_refuses_to_start_with_a_control_db_url_without_password(tmp_path):
    env = {**os.environ, "SQLRS_DATA_DIR": str(tmp_path / "data"),
           "SQLRS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/sqlrs",
           "SQLRS_S3_SECRET_KEY": "s3-s3cret", "SQLRS_REDIS_URL": "redis://:redis-s3cret@127.0.0.1:1/0"}
    for command in ("up", "doctor", "worker", "migrate"):
        result = subprocess.run([sys.executable, "-m", "appliance.service.main", command], env=env,
                                check=False, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (command, result.stderr)
        assert f"configuration error: settings: Value error, {DATABASE_WITHOUT_PASSWORD}" in result.stderr
        assert "s3cret" not in result.stdout + result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was made


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://sqlrs:s3cret@db:5432/sqlrs", "postgresql://sqlrs:***@db:5432/sqlrs"),
    ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("unix://:s3cret@/tmp/x/redis.sock", "unix://:***@/tmp/x/redis.sock"),
    ("postgresql://sqlrs@db/sqlrs?sslmode=require&password=s3cret", "postgresql://sqlrs@db/sqlrs?sslmode=require&password=***"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
])
def test_urls_are_shown_without_their_password(url, shown):
    assert redact_url(url) == shown


def test_doctor_names_the_services_without_their_passwords(tmp_path, redis_url, control_postgres):
    database_url = control_postgres.new_database_url()
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_url, database_url=database_url,
                        storage_backend="copy")
    checks = {check.name: check for check in run_checks(settings)}
    assert checks["control_db"].ok and checks["redis"].ok, checks
    assert "postgresql://postgres:***@127.0.0.1" in checks["control_db"].detail
    assert "unix://:***@" in checks["redis"].detail
    for check in checks.values():
        assert control_postgres.password not in check.detail
        assert redis_url.split("@")[0].split(":")[-1] not in check.detail


def test_the_test_control_db_server_asks_every_client_for_its_password(control_postgres):
    """The suite's PostgreSQL behaves like a real site's: SCRAM, no trust, on TCP and on its socket."""
    for host in ("127.0.0.1", str(control_postgres.dir)):
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(host=host, port=control_postgres.port, user="postgres", dbname="postgres")
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(host=host, port=control_postgres.port, user="postgres", password="guess",
                             dbname="postgres")


def test_a_log_line_never_shows_a_urls_password():
    from appliance.logs import JsonFormatter, _TextWithContext
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "cannot reach %s nor %s", (
        "postgresql://sqlrs:s3cret@db/sqlrs", "redis://:s3cret@127.0.0.1:6379/0?password=s3cret"), None)
    for formatter in (JsonFormatter(), _TextWithContext("%(message)s")):
        text = formatter.format(record)
        assert "s3cret" not in text and "postgresql://sqlrs:***@db/sqlrs" in text and "redis://:***@127.0.0.1" in text
