"""What every instance runtime must do, as one suite run against each of them.

The fixtures ``any_runtime``/``any_volume``/``any_start`` (tests/runtime/conftest.py) are
parametrized over the runtimes; a new runtime joins by adding its name to ``any_runtime``.
"""
from __future__ import annotations

import os
import subprocess

import psycopg2
import pytest

from appliance.certificates import authority, issue_server
from appliance.errors import Conflict, InvalidArgument
from appliance.runtime.base import InstanceRuntime, ServerTls
from appliance.runtime.ports import port_is_bindable
from tests.support.clusters import kill_from_outside
from tests.support.polling import eventually
from tests.support.psql import ssl_in_use

from .pg import controldata_state, socket_psql, tcp_psql


def test_the_runtime_satisfies_the_instance_runtime_protocol(any_runtime):
    assert isinstance(any_runtime, InstanceRuntime)


def test_resolve_image_pins_the_postgres_major_to_an_image_digest(any_runtime):
    pinned = any_runtime.resolve_image("postgres")
    assert pinned.startswith("postgres:") and "@sha256:" in pinned
    assert any_runtime.resolve_image(pinned.split("@")[0]) == pinned


def test_the_installed_image_is_a_tag_and_the_pin_resolve_image_answers(any_runtime):
    tag, pinned = any_runtime.installed_image()
    assert (tag, pinned) == (any_runtime.installed_image().tag, any_runtime.installed_image().pinned)
    assert any_runtime.resolve_image(tag) == pinned and pinned.startswith(f"{tag}@")


def test_host_tools_run_in_a_clean_environment_as_a_named_os_user(any_runtime):
    env = any_runtime.command_env()
    assert env["LC_ALL"] == "C" and not any(name.startswith("PG") for name in env)
    assert isinstance(any_runtime.os_user, str) and any_runtime.os_user


def test_resolve_image_rejects_an_image_it_does_not_have(any_runtime):
    with pytest.raises(InvalidArgument) as failure:
        any_runtime.resolve_image("postgres:9")
    assert any_runtime.resolve_image("postgres") in failure.value.details["available"]


def test_a_fresh_cluster_started_socket_only_answers_through_psql_command(any_runtime, runner, any_volume, any_start):
    endpoint = any_start(any_volume)
    assert socket_psql(any_runtime, runner, endpoint, "select current_user") == "sqlrs"


def test_a_socket_only_cluster_listens_on_no_tcp_port(any_volume, any_start):
    endpoint = any_start(any_volume)
    assert endpoint.host is None
    assert port_is_bindable("127.0.0.1", endpoint.port)


def test_the_password_set_works_over_tcp(any_runtime, runner, any_volume, any_start):
    endpoint = any_start(any_volume, listen_host="127.0.0.1")
    any_runtime.set_password(endpoint, "correct horse")
    result = tcp_psql(any_runtime, runner, endpoint, "correct horse", "select current_user")
    assert (result.returncode, result.stdout.strip()) == (0, "sqlrs")


def test_a_wrong_password_is_refused_over_tcp(any_runtime, runner, any_volume, any_start):
    endpoint = any_start(any_volume, listen_host="127.0.0.1")
    any_runtime.set_password(endpoint, "correct horse")
    result = tcp_psql(any_runtime, runner, endpoint, "battery staple", "select 1")
    assert result.returncode != 0
    assert "password authentication failed" in result.stderr


def server_tls(tmp_path) -> ServerTls:
    issued = issue_server(authority(tmp_path / "ca"), ["127.0.0.1"])
    return ServerTls(issued.cert_pem, issued.key_pem)


def ssl_of(endpoint, password: str, sslmode: str, **extra) -> bool:
    return ssl_in_use(host=endpoint.host, port=endpoint.port, user=endpoint.user, password=password,
                      dbname="postgres", sslmode=sslmode, **extra)


def test_a_cluster_started_with_tls_serves_it_under_its_certificate(any_runtime, any_volume, any_start, tmp_path):
    endpoint = any_start(any_volume, listen_host="127.0.0.1", tls=server_tls(tmp_path))
    any_runtime.set_password(endpoint, "correct horse")
    assert ssl_of(endpoint, "correct horse", "verify-full", sslrootcert=str(tmp_path / "ca" / "ca.crt")) is True


def test_a_cluster_started_without_tls_refuses_sslmode_require(any_runtime, any_volume, any_start):
    endpoint = any_start(any_volume, listen_host="127.0.0.1")
    any_runtime.set_password(endpoint, "correct horse")
    with pytest.raises(psycopg2.OperationalError, match="does not support SSL"):
        ssl_of(endpoint, "correct horse", "require")


def test_the_key_is_the_server_users_alone_in_the_run_dir(any_runtime, any_volume, any_start, run_dir_for, tmp_path):
    any_start(any_volume, listen_host="127.0.0.1", tls=server_tls(tmp_path))
    key = run_dir_for(any_volume) / "server.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert key.stat().st_uid == (any_volume / "pgdata").stat().st_uid


def test_a_link_planted_in_place_of_the_key_is_not_written_through(any_runtime, any_volume, any_start, run_dir_for,
                                                                  tmp_path):
    target = tmp_path / "not-yours"
    target.write_text("untouched")
    run_dir = run_dir_for(any_volume)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "server.key").symlink_to(target)
    with pytest.raises(OSError):
        any_start(any_volume, listen_host="127.0.0.1", tls=server_tls(tmp_path))
    assert target.read_text() == "untouched"


def test_a_hard_link_planted_in_place_of_the_key_is_refused_before_anything_is_written(
        any_runtime, any_volume, any_start, run_dir_for, tmp_path):
    run_dir = run_dir_for(any_volume)
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir.parent / f"{run_dir.name}-not-yours"  # the same filesystem, so a hard link is possible
    target.write_text("untouched")
    os.link(target, run_dir / "server.key")
    with pytest.raises(OSError):
        any_start(any_volume, listen_host="127.0.0.1", tls=server_tls(tmp_path))
    assert target.read_text() == "untouched"


def test_a_fast_stop_leaves_a_clean_shutdown(any_runtime, runner, any_volume, any_start):
    any_start(any_volume)
    any_runtime.stop(any_volume, mode="fast")
    assert not any_runtime.is_running(any_volume)
    assert not (any_volume / "pgdata" / "postmaster.pid").exists()
    assert controldata_state(any_runtime, runner, any_volume) == "shut down"


def test_a_stopped_clusters_server_log_is_left_in_its_run_dir(any_runtime, any_volume, any_start, run_dir_for):
    any_start(any_volume)
    any_runtime.stop(any_volume, mode="fast")
    log = (run_dir_for(any_volume) / "postgres.log").read_text()
    assert "database system is ready to accept connections" in log and "database system is shut down" in log


def test_a_working_runtime_reports_itself_healthy(any_runtime):
    assert any_runtime.health() == "ok"


def test_stopping_a_cluster_that_is_not_running_does_nothing(any_runtime, runner, any_volume):
    any_runtime.stop(any_volume)
    assert controldata_state(any_runtime, runner, any_volume) == "shut down"


def test_starting_a_running_cluster_is_a_conflict(any_runtime, any_volume, any_start, run_dir_for, free_port):
    any_start(any_volume)
    with pytest.raises(Conflict):
        any_runtime.start(any_volume, run_dir_for(any_volume), port=free_port(), listen_host=None)


def test_two_clones_of_one_pgdata_run_side_by_side_isolated(any_runtime, runner, any_new_volume, any_start):
    first, second = any_new_volume(), any_new_volume()
    a, b = any_start(first, listen_host="127.0.0.1"), any_start(second, listen_host="127.0.0.1")
    socket_psql(any_runtime, runner, a, "create table only_in_first(x int)")
    any_runtime.set_password(a, "first-password")
    any_runtime.set_password(b, "second-password")
    assert socket_psql(any_runtime, runner, b, "select count(*) from pg_class where relname = 'only_in_first'") == "0"
    assert tcp_psql(any_runtime, runner, b, "first-password", "select 1").returncode != 0
    assert tcp_psql(any_runtime, runner, a, "first-password", "select 1").returncode == 0


def test_connection_count_sees_an_open_connection(any_runtime, any_volume, any_start):
    endpoint = any_start(any_volume)
    assert any_runtime.connection_count(endpoint) == 0
    run_as = any_runtime.run_as
    client = subprocess.Popen(any_runtime.psql_command(endpoint) + ["-q"], stdin=subprocess.PIPE, text=True,
                              env=any_runtime.command_env(), cwd="/",
                              user=run_as.uid if run_as else None, group=run_as.gid if run_as else None)
    try:
        client.stdin.write("select pg_sleep(0);\n")
        client.stdin.flush()
        assert eventually(lambda: any_runtime.connection_count(endpoint) == 1, timeout=30, interval=0.02)
    finally:
        client.stdin.close()
        client.wait()


def test_a_cluster_killed_from_outside_is_not_running(any_runtime, any_volume, any_start):
    any_start(any_volume)
    kill_from_outside(any_runtime, any_volume)
    assert eventually(lambda: not any_runtime.is_running(any_volume), timeout=30, interval=0.02)


def test_a_cluster_killed_from_outside_starts_again_after_stop(any_runtime, runner, any_volume, any_start):
    any_start(any_volume)
    kill_from_outside(any_runtime, any_volume)
    assert eventually(lambda: not any_runtime.is_running(any_volume), timeout=30, interval=0.02)
    any_runtime.stop(any_volume, mode="immediate")
    endpoint = any_start(any_volume)
    assert socket_psql(any_runtime, runner, endpoint, "select 1") == "1"


def test_running_volumes_lists_a_started_cluster_until_it_is_stopped(any_runtime, any_volume, any_start):
    real = any_volume.resolve()
    assert real not in any_runtime.running_volumes()
    any_start(any_volume)
    assert real in any_runtime.running_volumes()
    any_runtime.stop(any_volume, mode="immediate")
    assert real not in any_runtime.running_volumes()


def test_a_server_whose_clone_was_deleted_under_it_is_still_found_and_stopped(any_runtime, any_volume, any_start,
                                                                             runner):
    any_start(any_volume)
    runner(["rm", "-rf", str(any_volume)])  # by hand, behind the appliance's back
    assert any_volume.resolve() in any_runtime.running_volumes()
    any_runtime.stop(any_volume, mode="immediate")
    assert eventually(lambda: any_volume.resolve() not in any_runtime.running_volumes(), timeout=30, interval=0.02)
    assert not any_runtime.is_running(any_volume)
