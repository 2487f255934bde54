"""A private redis-server for the embedded default: unix socket only, no persistence.

Redis holds queues and locks only; the Control DB is the truth and the reconciler
re-enqueues whatever a restarted Redis forgot, so nothing needs to be saved to disk.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from redis import Redis

from ..errors import InternalError


class PrivateRedis:
    def __init__(self, run_dir: Path):
        self.socket = run_dir / "redis.sock"
        self.run_dir = run_dir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 15.0) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise InternalError("redis-server is not installed and SQLRS_REDIS_URL is not set")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(self.run_dir),
             "--logfile", str(self.run_dir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise InternalError(f"redis-server exited with {self.process.returncode}; "
                                    f"see {self.run_dir / 'redis.log'}")
            try:
                if self.socket.exists() and Redis.from_url(self.url).ping():
                    return self.url
            except Exception:
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
