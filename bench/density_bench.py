"""Benchmark: how many idle instances fit in a GB of RAM, and which Postgres settings raise that.

Part 1, the appliance as shipped (process runtime, default instance settings): K idle instances
of one small state are prepared through the API with a long TTL (K grows 20 -> 40 -> 80), and
the memory their Postgres processes take is measured two ways: the sum of PSS (and RSS) over
every process of those clusters (/proc/<pid>/smaps_rollup; PSS splits a cluster's shared memory
between its processes, so the sum counts it once), and the drop of MemAvailable since before
the first instance. Part 2 starts clusters itself (`pg_ctl -o "-c …"` on btrfs snapshots of the
same state) with reduced per-instance settings, checks that each still accepts a connection
and runs a query, and measures the same way. Writes bench/out/density.md and density.json.
Run as root: `make density-bench`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pwd
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from appliance.runtime.base import SUPERUSER, pgdata_of  # noqa: E402
from appliance.runtime.process import ProcessRuntime  # noqa: E402
from appliance.shell import Runner  # noqa: E402
from bench.cache_hit import ApiSession  # noqa: E402
from bench.outputs import start_run  # noqa: E402
from bench.prepare_bench import free_tcp_port, machine_facts  # noqa: E402
from bench.workloads import write_workload  # noqa: E402
from tests.e2e.harness import Appliance  # noqa: E402

GIB_KIB = 1024**2
HOST_GIB, TARGET_PER_HOST = 24, 200
INSTANCE_PORTS = (29400, 29599)
VARIANT_PORT_BASE = 29600
SETTLE_SECONDS = 3.0
STATE_ROWS = 20_000
ORG = "default"

# Each variant adds to the previous one; the first is the appliance's clusters as they are.
VARIANTS: list[tuple[str, list[str]]] = [
    ("defaults (as shipped)", []),
    ("shared_buffers=16MB", ["shared_buffers=16MB"]),
    ("+ max_connections=20", ["shared_buffers=16MB", "max_connections=20"]),
    ("+ autovacuum=off, max_logical_replication_workers=0, max_worker_processes=2",
     ["shared_buffers=16MB", "max_connections=20", "autovacuum=off", "max_logical_replication_workers=0",
      "max_worker_processes=2"]),
    ("+ shared_buffers=8MB, wal_buffers=256kB, max_locks_per_transaction=32, max_connections=10",
     ["shared_buffers=8MB", "max_connections=10", "autovacuum=off", "max_logical_replication_workers=0",
      "max_worker_processes=2", "wal_buffers=256kB", "max_locks_per_transaction=32"]),
]


@dataclass
class Measurement:
    label: str
    instances: int
    processes: int
    pss_kib: int
    rss_kib: int
    mem_available_drop_kib: int
    all_answered: bool = True

    @property
    def per_instance_mib(self) -> float:
        """The larger of the two views (PSS misses kernel page tables and socket buffers)."""
        return max(self.pss_kib, self.mem_available_drop_kib) / self.instances / 1024

    @property
    def per_gib(self) -> float:
        return 1024 / self.per_instance_mib

    @property
    def per_host(self) -> int:
        return int(HOST_GIB * self.per_gib)


def mem_available_kib() -> int:
    return next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemAvailable:"))


def cluster_processes(pgdata_prefix: str) -> list[int]:
    """Every process of the postmasters whose ``-D`` lies under the prefix (and the postmasters)."""
    parents: dict[int, int] = {}
    postmasters: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # exited meanwhile
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        if argv and argv[0].endswith(b"/postgres") and b"-D" in argv:
            data = argv[argv.index(b"-D") + 1] if argv.index(b"-D") + 1 < len(argv) else b""
            if data.decode(errors="replace").startswith(pgdata_prefix):
                postmasters.add(int(entry))
    return sorted(postmasters | {pid for pid, ppid in parents.items() if ppid in postmasters})


def memory_of(pids: list[int]) -> tuple[int, int]:
    """(sum of PSS, sum of RSS) in KiB."""
    pss = rss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except OSError:
            continue
    return pss, rss


def measure(label: str, count: int, prefix: str, baseline_kib: int, answered: bool = True) -> Measurement:
    time.sleep(SETTLE_SECONDS)  # let the just-started ones finish their start-up work
    pids = cluster_processes(prefix)
    pss, rss = memory_of(pids)
    m = Measurement(label, count, len(pids), pss, rss, baseline_kib - mem_available_kib(), answered)
    print(f"[{label}] {count} instances, {len(pids)} processes: PSS {pss / 1024:.0f} MiB, RSS {rss / 1024:.0f} MiB, "
          f"MemAvailable -{m.mem_available_drop_kib / 1024:.0f} MiB -> {m.per_instance_mib:.1f} MiB each, "
          f"{m.per_host} per {HOST_GIB} GiB", flush=True)
    return m


def through_the_api(app: Appliance, api: ApiSession, base: Path, counts: list[int]) -> tuple[list[Measurement], Path]:
    """Idle instances prepared through the API, as users get them; returns the state's path too."""
    body = api.upload(write_workload("density", STATE_ROWS, base))
    body["instance"] = {"ttl_seconds": 86400}
    first, *_ = api.run_job(body, timeout=600)
    state_path = app.data_dir / "store" / "orgs" / ORG / "states" / first["result"]["state_id"]
    api.delete_instance(first["result"]["instance_id"])
    time.sleep(1)
    baseline = mem_available_kib()
    prefix = str(app.data_dir / "store")
    results, made = [], 0
    for count in counts:
        while made < count:
            api.run_job(body, timeout=120)
            made += 1
        results.append(measure(f"API, {count} instances", count, prefix, baseline))
    return results, state_path


class ManualClusters:
    """Clusters started with pg_ctl on btrfs snapshots of a state, outside the store's org tree."""

    def __init__(self, clones_dir: Path, run_parent: Path):
        self.runner, self.runtime = Runner(), ProcessRuntime(Runner())
        self.clones_dir, self.run_parent = clones_dir, run_parent
        self.owner = pwd.getpwnam(self.runtime.os_user)
        self.clones: list[Path] = []

    def start(self, state_path: Path, index: int, settings: list[str]) -> Path:
        self.clones_dir.mkdir(mode=0o711, exist_ok=True)
        clone, run_dir = self.clones_dir / f"c{index}", self.run_parent / f"density-run-{index}"
        self.runner(["btrfs", "subvolume", "snapshot", str(state_path), str(clone)])
        self.clones.append(clone)
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(run_dir, self.owner.pw_uid, self.owner.pw_gid)
        options = " ".join(f"-c {s}" for s in ["listen_addresses=127.0.0.1", f"port={VARIANT_PORT_BASE + index}",
                                              f"unix_socket_directories={run_dir}", *settings])
        self.runner([self.runtime.bin_dir / "pg_ctl", "-D", pgdata_of(clone), "-l", run_dir / "postgres.log",
                     "-w", "-o", options, "start"], run_as=self.runtime.run_as, env=self.runtime.command_env(),
                    cwd="/", timeout=90)
        return run_dir

    @staticmethod
    def answers(run_dir: Path, index: int) -> bool:
        """A client connects and runs a query (over the socket, as the superuser)."""
        try:
            conn = psycopg2.connect(host=str(run_dir), port=VARIANT_PORT_BASE + index, user=SUPERUSER,
                                    dbname="postgres", connect_timeout=10)
            with conn.cursor() as cur:
                cur.execute("select count(*) from pg_class")
                ok = cur.fetchone()[0] > 0
            conn.close()
            return ok
        except psycopg2.Error as exc:
            print(f"cluster {index} did not answer: {exc}", flush=True)
            return False

    def stop_all(self) -> None:
        for clone in self.clones:
            try:
                if self.runtime.is_running(clone):
                    self.runtime.stop(clone, mode="immediate")
            finally:
                self.runner(["btrfs", "subvolume", "delete", str(clone)], check=False)
        self.clones.clear()
        for run_dir in self.run_parent.glob("density-run-*"):
            shutil.rmtree(run_dir, ignore_errors=True)


def with_settings(clusters: ManualClusters, state_path: Path, count: int) -> list[Measurement]:
    results = []
    for label, settings in VARIANTS:
        time.sleep(1)
        baseline = mem_available_kib()
        try:
            answered = all(clusters.answers(clusters.start(state_path, i, settings), i) for i in range(count))
            results.append(measure(label, count, str(clusters.clones_dir), baseline, answered))
        finally:
            clusters.stop_all()
    return results


def table(rows: list[Measurement]) -> str:
    lines = [f"| setup | instances | processes | PSS sum | RSS sum | MemAvailable drop | per instance | per GiB "
             f"| per {HOST_GIB} GiB host | ≥ {TARGET_PER_HOST} | connect + query |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in rows:
        lines.append(f"| {m.label} | {m.instances} | {m.processes} | {m.pss_kib / 1024:.0f} MiB | {m.rss_kib / 1024:.0f} MiB "
                     f"| {m.mem_available_drop_kib / 1024:.0f} MiB | **{m.per_instance_mib:.1f} MiB** | {m.per_gib:.0f} "
                     f"| **{m.per_host}** | {'met' if m.per_host >= TARGET_PER_HOST else '**missed**'} "
                     f"| {'all' if m.all_answered else '**failed**'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", default="20,40,80", help="idle instances through the API, cumulative")
    p.add_argument("--variant-count", type=int, default=40, help="clusters per settings variant")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = p.parse_args(argv)
    base = start_run("sqlrs-density-", "the appliance mounts a btrfs image")
    if base is None:
        return 2
    started = time.perf_counter()
    app = Appliance(base / "data", free_tcp_port(), port_range=INSTANCE_PORTS,
                    extra_env={"SQLRS_BTRFS_IMAGE_BYTES": str(8 * 1024**3), "SQLRS_RECONCILE_INTERVAL_SECONDS": "3600"})
    clusters = ManualClusters(app.data_dir / "store" / "bench-density", base)
    api: ApiSession | None = None
    try:
        app.start()
        api = ApiSession(app.url, app.token)
        api_rows, state_path = through_the_api(app, api, base, [int(c) for c in args.counts.split(",")])
        for instance in api.client.get("/v1/instances").json():
            api.delete_instance(instance["instance_id"])
        variant_rows = with_settings(clusters, state_path, args.variant_count)
    except BaseException:
        print(f"--- tail of the appliance log ---\n{app.log_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        clusters.stop_all()
        if api is not None:
            api.close()
        app.destroy()
        shutil.rmtree(base, ignore_errors=True)
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = (f"Run {when}, {time.perf_counter() - started:.0f} s in all; {machine_facts()}.\n\n"
            f"Idle instances through the API (process runtime, default settings):\n\n{table(api_rows)}\n\n"
            f"Clusters started with reduced settings ({args.variant_count} each, same state):\n\n{table(variant_rows)}\n")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "density.md").write_text(text)
    (args.out / "density.json").write_text(json.dumps(
        [{**asdict(m), "per_instance_mib": m.per_instance_mib} for m in api_rows + variant_rows], indent=1))
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
