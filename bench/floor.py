"""Measurement (c): the raw floor under a cache hit, with no API, queue or bookkeeping.

``btrfs subvolume snapshot`` of the state's subvolume + ``pg_ctl start -w`` on the clone,
timed apart; setting the instance password and the first TCP ``select 1`` are timed too,
which splits the ``prepare_instance`` task the API reports as one block.
"""
from __future__ import annotations

import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from appliance.runtime.base import SUPERUSER
from appliance.runtime.process import ProcessRuntime
from appliance.shell import Runner


@dataclass
class FloorSample:
    snapshot: float
    pg_start: float
    set_password: float
    connect_select1: float

    @property
    def seconds(self) -> float:
        """The floor proper: snapshot + start."""
        return self.snapshot + self.pg_start


class RawFloor:
    """Clones land in ``clones_dir`` (on the same btrfs as the state, outside the store's
    org tree so the appliance's reconciler never sees them); ``cleanup`` removes them all."""

    def __init__(self, clones_dir: Path, run_parent: Path, port: int):
        self.runner = Runner()
        self.runtime = ProcessRuntime(self.runner)
        self.clones_dir, self.run_parent, self.port = clones_dir, run_parent, port
        self._clones: list[Path] = []

    def measure(self, state_path: Path, index: int) -> FloorSample:
        self.clones_dir.mkdir(mode=0o711, exist_ok=True)
        clone = self.clones_dir / f"floor-{index}"
        run_dir = self.run_parent / f"floor-run-{index}"
        self._clones.append(clone)
        t0 = time.perf_counter()
        self.runner(["btrfs", "subvolume", "snapshot", str(state_path), str(clone)])
        t1 = time.perf_counter()
        endpoint = self.runtime.start(clone, run_dir, port=self.port, listen_host="127.0.0.1")
        t2 = time.perf_counter()
        password = secrets.token_urlsafe(24)
        self.runtime.set_password(endpoint, password)
        t3 = time.perf_counter()
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, password=password,
                                dbname="postgres", sslmode="disable", connect_timeout=10)
        with conn.cursor() as cur:
            cur.execute("select 1")
            cur.fetchone()
        t4 = time.perf_counter()
        conn.close()
        self._discard(clone, run_dir)
        return FloorSample(t1 - t0, t2 - t1, t3 - t2, t4 - t3)

    def _discard(self, clone: Path, run_dir: Path | None = None) -> None:
        if clone.exists():
            if self.runtime.is_running(clone):
                self.runtime.stop(clone, mode="immediate")
            self.runner(["btrfs", "subvolume", "delete", str(clone)], check=False)
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)

    def cleanup(self) -> None:
        for clone in self._clones:
            self._discard(clone)
        for run_dir in self.run_parent.glob("floor-run-*"):
            shutil.rmtree(run_dir, ignore_errors=True)
