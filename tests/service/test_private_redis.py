"""The embedded default's redis-server is out of tenants' reach: tenants run code on this host as
other OS users (``nobody`` here), with host networking, so they could connect to anything on
loopback. No TCP port, a socket in a root-only directory, and a password kept in a 0600 file."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import AuthenticationError, ResponseError

from appliance.connections import redis_client
from appliance.service.redis_server import PrivateRedis
from appliance.settings import Settings

NOBODY = 65534


@pytest.fixture
def as_root():
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the private-Redis isolation tests run as root in CI")
        pytest.skip("!!! SKIPPING: acting as another OS user needs root !!!")


def as_nobody(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), user=NOBODY, group=NOBODY, extra_groups=[], check=False, capture_output=True, text=True,
                          timeout=30, cwd="/")


def test_another_os_user_cannot_reach_the_socket(private_redis, as_root):
    result = as_nobody("redis-cli", "-s", str(private_redis.socket), "ping")
    assert "PONG" not in result.stdout
    assert "Permission denied" in result.stdout + result.stderr


def test_no_command_runs_without_the_password(private_redis):
    result = subprocess.run(["redis-cli", "-s", str(private_redis.socket), "ping"], check=False, capture_output=True, text=True,
                            timeout=30)
    assert "NOAUTH" in result.stdout + result.stderr
    with pytest.raises((AuthenticationError, ResponseError)):
        Redis(unix_socket_path=str(private_redis.socket)).ping()
    with pytest.raises((AuthenticationError, ResponseError)):
        Redis(unix_socket_path=str(private_redis.socket), password="guess").ping()


def test_there_is_no_tcp_port(private_redis):
    assert Redis.from_url(private_redis.url).config_get("port") == {"port": "0"}


def test_the_secret_files_are_ours_alone(private_redis, as_root):
    assert stat.S_IMODE(private_redis.password_file.stat().st_mode) == 0o600
    assert private_redis.password_file.stat().st_uid == os.geteuid()
    assert stat.S_IMODE(private_redis.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(private_redis.config.stat().st_mode) == 0o600
    for path in (private_redis.config, private_redis.password_file):
        result = as_nobody("cat", str(path))
        assert result.returncode != 0 and "Permission denied" in result.stderr


def test_the_password_is_in_no_command_line_or_environment(private_redis):
    password = private_redis.password_file.read_text().strip()
    assert password in private_redis.config.read_text()  # it gets there through its config file only
    proc = Path(f"/proc/{private_redis.process.pid}")
    assert password.encode() not in (proc / "cmdline").read_bytes()
    assert password.encode() not in (proc / "environ").read_bytes()


def test_the_password_is_kept_across_restarts_unless_others_could_read_it(tmp_path):
    server = PrivateRedis.of(tmp_path / "data")
    server.start()
    server.stop()
    first = server.password_file.read_text()
    server.start()
    server.stop()
    assert server.password_file.read_text() == first
    server.password_file.chmod(0o644)
    url = server.start()
    try:
        assert server.password_file.read_text() != first
        assert stat.S_IMODE(server.password_file.stat().st_mode) == 0o600
        assert Redis.from_url(url).ping()
    finally:
        server.stop()


def test_every_client_of_the_data_dir_finds_the_private_redis_and_its_password(tmp_path):
    server = PrivateRedis.of(tmp_path / "data")
    server.start()
    try:
        client = redis_client(Settings(data_dir=tmp_path / "data"))
        assert client.ping()
    finally:
        server.stop()
