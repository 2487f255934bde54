"""What only the process runtime does (pg_ctl on the host): its recovery paths, input checks and
file modes. What every runtime does is in test_conformance.py."""
from __future__ import annotations

import concurrent.futures
import errno
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from appliance.errors import CommandFailed, InvalidArgument
from appliance.runtime.process import ProcessRuntime
from tests.support.filesystems import small_tmpfs

from .pg import controldata_state, socket_psql, tcp_psql


def test_the_verifier_carries_the_configured_iterations_and_a_client_logs_in_with_it(runner, volume, start):
    runtime = ProcessRuntime(runner, scram_iterations=8192)  # a policy asking for more than 4096
    endpoint = start(volume, listen_host="127.0.0.1")
    runtime.set_password(endpoint, "a-random-token")
    stored = socket_psql(runtime, runner, endpoint, "select rolpassword from pg_authid where rolname = 'sqlrs'")
    assert stored.startswith("SCRAM-SHA-256$8192:")
    assert tcp_psql(runtime, runner, endpoint, "a-random-token", "select 1").stdout.strip() == "1"


def test_a_bind_over_a_warm_connection_sets_the_password_and_uses_it_up(runtime, runner, volume, start):
    endpoint = start(volume, listen_host="127.0.0.1")
    runtime.keep_bind_connections([endpoint])
    backends = "select count(*) from pg_stat_activity where backend_type = 'client backend'"
    assert socket_psql(runtime, runner, endpoint, backends) == "2"  # the warm one, and this psql
    runtime.set_password(endpoint, "another-random-token")
    assert tcp_psql(runtime, runner, endpoint, "another-random-token", "select 1").stdout.strip() == "1"
    assert socket_psql(runtime, runner, endpoint, backends) == "1"  # used once, then closed


def test_a_warm_connection_is_closed_once_its_clone_is_no_longer_pooled(runtime, runner, volume, start):
    endpoint = start(volume)
    backends = "select count(*) from pg_stat_activity where backend_type = 'client backend'"
    runtime.keep_bind_connections([endpoint])
    runtime.keep_bind_connections([])
    assert socket_psql(runtime, runner, endpoint, backends) == "1"  # only this psql


def test_init_bakes_no_listen_address_port_or_socket_dir_into_pgdata(template_volume):
    conf = (template_volume / "pgdata" / "postgresql.conf").read_text()
    active = [line.split("=")[0].strip() for line in conf.splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    assert not {"listen_addresses", "port", "unix_socket_directories"} & set(active)


def test_a_fresh_cluster_has_no_password(runtime, runner, shared_cluster):
    assert socket_psql(runtime, runner, shared_cluster,
                       "select rolpassword is null from pg_authid where rolname = 'sqlrs'") == "t"


def test_postgres_stores_our_verifier_and_never_sees_the_plaintext(runtime, runner, volume, start):
    endpoint = start(volume, listen_host="127.0.0.1")
    socket_psql(runtime, runner, endpoint, "ALTER SYSTEM SET log_statement = 'all'; SELECT pg_reload_conf();")
    plaintext = "Never-In-The-Log-7f3a"
    runtime.set_password(endpoint, plaintext)
    stored = socket_psql(runtime, runner, endpoint, "select rolpassword from pg_authid where rolname = 'sqlrs'")
    assert stored.startswith("SCRAM-SHA-256$4096:")
    assert plaintext not in (endpoint.socket_dir / "postgres.log").read_text()


def test_a_cluster_whose_starting_process_was_killed_can_be_stopped(runtime, runner, volume, run_dir_for, free_port):
    owner = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from appliance.runtime.process import ProcessRuntime
        from appliance.shell import Runner
        ProcessRuntime(Runner()).start(Path(sys.argv[1]), Path(sys.argv[2]), port=int(sys.argv[3]), listen_host=None)
        print("started", flush=True)
        time.sleep(600)
    """), str(volume), str(run_dir_for(volume)), str(free_port())], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "started"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert runtime.is_running(volume)
    runtime.stop(volume, mode="fast")
    assert controldata_state(runtime, runner, volume) == "shut down"


def _postmaster_pid(volume: Path) -> int:
    return int((volume / "pgdata" / "postmaster.pid").read_text().splitlines()[0])


def test_after_the_postmaster_was_killed_stop_clears_leftovers_and_the_cluster_starts_again(runtime, runner, volume, start):
    start(volume)
    os.kill(_postmaster_pid(volume), signal.SIGKILL)
    runtime.stop(volume)
    assert not runtime.is_running(volume)
    endpoint = start(volume)
    assert socket_psql(runtime, runner, endpoint, "select 1") == "1"


def test_stop_kills_a_postmaster_that_does_not_answer_pg_ctl(runner, volume, start):
    impatient = ProcessRuntime(runner, stop_timeout=1)
    start(volume)
    os.kill(_postmaster_pid(volume), signal.SIGSTOP)
    impatient.stop(volume, mode="fast")
    assert not impatient.is_running(volume)


def test_a_server_killed_by_stop_leaves_no_shared_memory_in_dev_shm(runner, volume, start):
    impatient = ProcessRuntime(runner, stop_timeout=1)
    start(volume)
    postmaster = _postmaster_pid(volume)
    segments = {line.split()[-1] for line in Path(f"/proc/{postmaster}/maps").read_text().splitlines()
                if "/dev/shm/PostgreSQL." in line}
    assert segments  # its control segment (and, from 15 on, its statistics)
    os.kill(postmaster, signal.SIGSTOP)  # pg_ctl gets no answer: stop has to SIGKILL it
    impatient.stop(volume, mode="immediate")
    assert [path for path in segments if os.path.exists(path)] == []


def test_a_postmaster_slow_to_write_its_lock_file_is_waited_for_until_it_is_ready(runtime, runner, volume, start):
    """A postmaster held before it writes postmaster.pid (as a busy machine holds it): here by a
    configuration file that is a FIFO, which it can read only once the test opens it to write."""
    pgdata = volume / "pgdata"
    held = pgdata / "held.conf"
    os.mkfifo(held)
    os.chown(held, pgdata.stat().st_uid, pgdata.stat().st_gid)
    with open(pgdata / "postgresql.conf", "a") as conf:
        conf.write("include 'held.conf'\n")
    starting = concurrent.futures.ThreadPoolExecutor(1).submit(start, volume)
    _write_end_when_read(held, starting)
    concurrent.futures.wait([starting], timeout=3)  # held well past any fixed grace
    while not starting.done():  # Postgres reads its configuration twice at start
        _write_end_when_read(held, starting)
    endpoint = starting.result()
    assert socket_psql(runtime, runner, endpoint, "select 1") == "1"


def _write_end_when_read(fifo: Path, starting: concurrent.futures.Future) -> None:
    """Once the postmaster has the FIFO open to read, open and close its write end: it reads an
    empty file. Returns at once when the start is over."""
    while not starting.done():
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            return
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # nobody reading yet
                raise
            time.sleep(0.01)


def test_a_failed_start_reports_the_postgres_log(runtime, volume, run_dir_for):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(CommandFailed) as failure:
            runtime.start(volume, run_dir_for(volume), port=busy.getsockname()[1], listen_host="127.0.0.1")
    assert "could not" in failure.value.stderr.split("--- tail of", 1)[1]
    assert not runtime.is_running(volume)


@pytest.mark.parametrize("listen_host", ["127.0.0.1' -c shared_preload_libraries='x", "a b", "$(id)", "1.2.3.4,5.6.7.8"])
def test_a_listen_host_that_is_not_an_address_is_rejected(runtime, template_volume, workdir, listen_host):
    with pytest.raises(InvalidArgument):
        runtime.start(template_volume, workdir / "run-rejected", port=26999, listen_host=listen_host)


def test_a_run_dir_with_shell_characters_is_rejected(runtime, template_volume, workdir):
    with pytest.raises(InvalidArgument):
        runtime.start(template_volume, workdir / 'run"$(id)', port=26999, listen_host=None)


def test_a_connection_string_as_dbname_is_rejected(runtime, shared_cluster):
    with pytest.raises(InvalidArgument):
        runtime.psql_command(shared_cluster, "host=elsewhere dbname=postgres")


def test_init_leaves_the_volume_and_pgdata_private_to_the_postgres_user(runtime, template_volume):
    owner = runtime.run_as.uid if runtime.run_as else os.geteuid()
    for path in (template_volume, template_volume / "pgdata"):
        st = path.stat()
        assert (st.st_uid, oct(st.st_mode & 0o777)) == (owner, "0o700")


def test_a_failed_initdb_says_why_not_only_that_it_removed_the_data_directory(runtime, runner, workdir):
    with small_tmpfs(workdir / "full-disk", runner) as small:
        volume = small / "volume"
        volume.mkdir()
        with pytest.raises(CommandFailed) as error:
            runtime.init_cluster(volume, "postgres")
    assert "removing contents of data directory" in error.value.message  # initdb's last line
    assert "No space left on device" in error.value.message  # the cause, many lines above it


def test_a_cluster_without_a_password_refuses_every_tcp_login(runtime, runner, volume, start):
    endpoint = start(volume, listen_host="127.0.0.1")
    result = tcp_psql(runtime, runner, endpoint, "", "select 1")
    assert result.returncode != 0


def test_a_killed_cluster_starts_again_on_the_same_port(runtime, runner, volume, run_dir_for, free_port):
    port, run_dir = free_port(), run_dir_for(volume)
    runtime.start(volume, run_dir, port=port, listen_host=None)
    try:
        os.kill(_postmaster_pid(volume), signal.SIGKILL)  # leaves its socket lock file behind
        runtime.stop(volume, mode="immediate")
        endpoint = runtime.start(volume, run_dir, port=port, listen_host=None)
        assert socket_psql(runtime, runner, endpoint, "select 1") == "1"
    finally:
        runtime.stop(volume, mode="immediate")
