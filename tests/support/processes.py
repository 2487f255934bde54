"""The processes serving a data dir, as /proc shows them: the workers `up` starts (their
environment names the data dir) and its private redis-server (its title names the socket)."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


def processes() -> Iterator[tuple[int, list[str], dict[str, str]]]:
    """Every process: (pid, argv, environment), those that vanish meanwhile left out."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(item.decode(errors="replace").split("=", 1) for item in environ if b"=" in item)
        yield int(entry.name), [a.decode(errors="replace") for a in argv], env


def workers_of(data_dir: Path) -> set[int]:
    return {pid for pid, argv, env in processes()
            if argv[-1:] == ["worker"] and env.get("SQLRS_DATA_DIR") == str(data_dir)}


def redis_servers_of(data_dir: Path) -> set[int]:
    socket = str(data_dir / "redis" / "redis.sock")
    return {pid for pid, argv, _ in processes() if argv[:1] and "redis-server" in argv[0] and socket in argv[0]}


def children_of(data_dir: Path) -> set[int]:
    return workers_of(data_dir) | redis_servers_of(data_dir)


def python_child(code: str, **popen) -> subprocess.Popen:
    """A small Python process of the test's own (e.g. one that ignores SIGTERM, or dies at once)."""
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, **popen)


IGNORES_SIGTERM = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
                   "time.sleep(600)")
