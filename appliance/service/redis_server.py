"""A private redis-server for the embedded default: unix socket only, a password, no persistence.

Redis holds queues and locks only; the Control DB is the truth and the reconciler
re-enqueues whatever a restarted Redis forgot, so nothing needs to be saved to disk.

Tenants' code runs on this host as other OS users, so the server is out of their reach twice
over: no TCP port at all (``port 0``), its socket in a directory only we may enter (0700,
socket 0700), and a password (``requirepass``) generated once into a 0600 file of the data
dir. The password goes to redis-server through its config file (0600, in that directory):
never on its command line or in its environment, which ``ps`` and ``/proc`` show.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from redis import Redis
from redis.exceptions import RedisError

from appliance.connections import ensure_redis_password, private_redis_dir, redis_password_file
from appliance.errors import InternalError
from appliance.service.processes import die_with_parent
from appliance.shell import child_env


def _quoted(value: str) -> str:
    """A redis.conf string argument."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class PrivateRedis:
    def __init__(self, directory: Path, password_file: Path):
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.config = directory / "redis.conf"
        self.logfile = directory / "redis.log"
        self.password_file = password_file
        self.process: subprocess.Popen | None = None
        self._password = ""

    @classmethod
    def of(cls, data_dir: Path) -> PrivateRedis:
        """The data dir's own (what every process of that appliance connects to)."""
        return cls(private_redis_dir(data_dir), redis_password_file(data_dir))

    @property
    def url(self) -> str:
        """Its URL, password included: for tests and tools, never for a log line."""
        return f"unix://:{quote(self._password, safe='')}@{quote(str(self.socket))}"

    def _write_config(self) -> None:
        lines = ["port 0", f"unixsocket {_quoted(str(self.socket))}", "unixsocketperm 700",
                 f"requirepass {_quoted(self._password)}", 'save ""', "appendonly no",
                 f"dir {_quoted(str(self.directory))}", f"logfile {_quoted(str(self.logfile))}"]
        self.config.unlink(missing_ok=True)
        fd = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")

    def start(self, timeout: float = 15.0) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise InternalError("redis-server is not installed and SQLRS_REDIS_URL is not set")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(self.directory, os.geteuid(), os.getegid())
        self.directory.chmod(0o700)
        self._password = ensure_redis_password(self.password_file)
        self._write_config()
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [binary, str(self.config)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=child_env(),
            preexec_fn=die_with_parent())  # never outlives whoever started it
        client = Redis(unix_socket_path=str(self.socket), password=self._password)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise InternalError(f"redis-server exited with {self.process.returncode}; see {self.logfile}")
            try:
                if self.socket.exists() and client.ping():
                    return self.url
            except RedisError:  # not listening yet
                pass
            time.sleep(0.05)
        self.stop()
        raise InternalError("redis-server did not start in time")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.socket.unlink(missing_ok=True)
