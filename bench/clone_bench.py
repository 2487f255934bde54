"""Benchmark: snapshot, clone and instance start time vs state size, on zfs and btrfs.

Claim under test: making an instance of a state costs the same for a ~20 MB and a >= 1 GB
database, because both drivers snapshot and clone in O(1). For each store (btrfs on a
loop-mounted image, zfs on a file-backed pool) and each size, the state is built once
(initdb, start, load, stop fast, commit_state), then timed N times, phase by phase:
clone_state -> start -> set_password -> first TCP ``select 1`` -> stop immediate -> destroy.
The snapshot (``commit_state``) is timed on clones frozen again unchanged.
Prints a markdown table with the large/small ratio per phase, and writes bench/out/clone.md
and bench/out/clone.png. A benchmark, not a test: run it as root with `make clone-bench`.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import secrets
import shutil
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402

from appliance.runtime.base import SUPERUSER  # noqa: E402
from appliance.runtime.process import ProcessRuntime  # noqa: E402
from appliance.shell import Runner  # noqa: E402
from bench.clone_stores import BenchStore, btrfs_store, zfs_store  # noqa: E402
from bench.outputs import start_run, write_outputs  # noqa: E402

ORG = "bench"
SMALL_ROWS = 50_000  # about 12 MB of heap: a ~20 MB database with the catalogs
LARGE_ROWS = 4_600_000  # about 1.1 GB of heap (241 bytes a row)
ONE_GB = 10**9
CYCLE_PHASES = ("clone", "start", "password", "first_query")
AFTER_PHASES = ("stop", "destroy")
PHASE_LABELS = {"snapshot": "snapshot (commit_state)", "used_bytes": "size query (inside the snapshot)",
                "clone": "clone (clone_state)", "start": "start (ready)", "password": "set_password",
                "first_query": "first TCP select 1", "to_dsn": "clone → first query",
                "stop": "stop immediate", "destroy": "destroy_volume"}
RATIO_PHASES = ("snapshot", "clone", "start", "password", "first_query", "to_dsn")
STORES: dict[str, Callable[..., contextlib.AbstractContextManager[BenchStore]]] = {
    "btrfs": btrfs_store, "zfs": zfs_store}


@dataclass
class StateResult:
    store: str
    description: str
    size: str  # "small" | "large"
    rows: int
    database_bytes: int = 0
    state_bytes: int = 0  # the driver's used_bytes of the state
    load_seconds: float = 0.0  # psql: create + insert in one transaction
    stop_flush_seconds: float = 0.0  # stop fast + fsync of pgdata after the load
    first_commit_seconds: float = 0.0  # commit_state of the freshly loaded volume
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        self.samples.setdefault(phase, []).append(seconds)

    def p50_ms(self, phase: str) -> float | None:
        values = self.samples.get(phase)
        return statistics.median(values) * 1000 if values else None


class CloneBench:
    """Drives one store; remembers every cluster it started so ``stop_all`` can always stop them."""

    def __init__(self, bench_store: BenchStore, run_parent: Path):
        self.runner = Runner()
        self.runtime = ProcessRuntime(self.runner)
        self.kind, self.store = bench_store.kind, bench_store.store
        self.description = bench_store.description
        self.run_parent = run_parent
        self.port = free_tcp_port()
        self._running: set[Path] = set()

    def build_state(self, size: str, rows: int) -> StateResult:
        result = StateResult(self.kind, self.description, size, rows)
        volume = self.store.create_volume(ORG, f"build-{size}")
        self.runtime.init_cluster(volume, "postgres")
        endpoint = self._start(volume, self.run_parent / f"{self.kind}-build-{size}")
        t0 = time.perf_counter()
        # One transaction: with wal_level=minimal the new table's rows skip the WAL.
        self._psql(endpoint, ["-1"], "create table big (id int not null, h text not null, payload text not null);\n"
                   "insert into big select g, md5(g::text), repeat(md5(g::text), 5)\n"
                   f"from generate_series(1, {rows}) g;\n")
        result.load_seconds = time.perf_counter() - t0
        result.database_bytes = int(self._psql(endpoint, ["-A", "-t"], "select pg_database_size(current_database());\n"))
        t1 = time.perf_counter()
        self._stop(volume, "fast")
        t2 = time.perf_counter()
        result.state_bytes = self.store.commit_state(ORG, f"build-{size}", size)
        result.first_commit_seconds = time.perf_counter() - t2
        result.stop_flush_seconds = t2 - t1
        self.store.destroy_volume(ORG, f"build-{size}")
        return result

    def clone_cycle(self, state: str, index: int, into: StateResult | None) -> None:
        """Clone -> start -> password -> first query -> stop -> destroy, each phase timed."""
        volume_id, run_dir = f"inst-{state}-{index}", self.run_parent / f"{self.kind}-{state}-{index}"
        password = secrets.token_urlsafe(24)
        t0 = time.perf_counter()
        volume = self.store.clone_state(ORG, state, volume_id)
        t1 = time.perf_counter()
        endpoint = self._start(volume, run_dir)
        t2 = time.perf_counter()
        self.runtime.set_password(endpoint, password)
        t3 = time.perf_counter()
        conn = psycopg2.connect(host="127.0.0.1", port=endpoint.port, user=SUPERUSER, password=password,
                                dbname="postgres", sslmode="disable", connect_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute("select 1")
                cur.fetchone()
            t4 = time.perf_counter()
        finally:
            conn.close()
        self._stop(volume, "immediate")
        t5 = time.perf_counter()
        self.store.destroy_volume(ORG, volume_id)
        t6 = time.perf_counter()
        shutil.rmtree(run_dir, ignore_errors=True)
        if into is not None:
            for phase, seconds in zip(CYCLE_PHASES + AFTER_PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                into.add(phase, seconds)
            into.add("to_dsn", t4 - t0)

    def snapshot_cycle(self, state: str, index: int, into: StateResult) -> None:
        """Freeze an unchanged clone of the state into a new state: the snapshot alone is timed
        (``commit_state``, which includes the driver's size query, also timed apart)."""
        volume_id, state_id = f"snap-{state}-{index}", f"resnap-{state}-{index}"
        self.store.clone_state(ORG, state, volume_id)
        t0 = time.perf_counter()
        self.store.commit_state(ORG, volume_id, state_id)
        into.add("snapshot", time.perf_counter() - t0)
        t1 = time.perf_counter()
        self.store.driver.used_bytes(self.store.state_path(ORG, state_id))
        into.add("used_bytes", time.perf_counter() - t1)
        self.store.destroy_volume(ORG, volume_id)
        self.store.destroy_state(ORG, state_id)

    def stop_all(self) -> None:
        for volume in list(self._running):
            with contextlib.suppress(Exception):
                self._stop(volume, "immediate")

    def _start(self, volume: Path, run_dir: Path):
        self._running.add(volume)
        return self.runtime.start(volume, run_dir, port=self.port, listen_host="127.0.0.1")

    def _stop(self, volume: Path, mode: str) -> None:
        self.runtime.stop(volume, mode=mode)
        self._running.discard(volume)

    def _psql(self, endpoint, extra: list[str], sql: str) -> str:
        argv = self.runtime.psql_command(endpoint) + ["-q", *extra]
        return self.runner(argv, input=sql, env=self.runtime.command_env(), cwd="/",
                           run_as=self.runtime.run_as).stdout


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_store(kind: str, base: Path, sizes: list[tuple[str, int]], reps: int, snapshot_reps: int) -> Iterator[StateResult]:
    store_dir = base / kind
    store_dir.mkdir(mode=0o755)
    store_dir.chmod(0o755)
    with STORES[kind](Runner(), store_dir) as bench_store_:
        bench = CloneBench(bench_store_, base / "run")
        try:
            for size, rows in sizes:
                t0 = time.perf_counter()
                result = bench.build_state(size, rows)
                print(f"[{kind}] {size}: built {result.database_bytes / 1e6:.1f} MB in "
                      f"{time.perf_counter() - t0:.1f} s (load {result.load_seconds:.1f} s, stop+flush "
                      f"{result.stop_flush_seconds:.1f} s, commit {result.first_commit_seconds:.2f} s)", flush=True)
                bench.clone_cycle(size, 0, None)  # warm-up, not recorded
                for i in range(1, reps + 1):
                    bench.clone_cycle(size, i, result)
                for i in range(snapshot_reps):
                    bench.snapshot_cycle(size, i, result)
                print(f"[{kind}] {size}: clone→first query p50 {result.p50_ms('to_dsn'):.0f} ms, "
                      f"snapshot p50 {result.p50_ms('snapshot'):.0f} ms", flush=True)
                yield result
        finally:
            bench.stop_all()


# -- the report --------------------------------------------------------------------------------
def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _size(n: int) -> str:
    return f"{n / ONE_GB:.2f} GB" if n >= ONE_GB / 2 else f"{n / 1e6:.1f} MB"


def results_table(results: list[StateResult]) -> str:
    phases = ("snapshot", "used_bytes", *CYCLE_PHASES, "to_dsn", *AFTER_PHASES)
    head = ["store", "state", "database / state used", "load (once)", *[PHASE_LABELS[p] for p in phases], "n"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        n = f"{len(r.samples.get('to_dsn', []))} (+{len(r.samples.get('snapshot', []))} snapshots)"
        cells = [r.store, r.size, f"{_size(r.database_bytes)} / {_size(r.state_bytes)}", f"{r.load_seconds:.1f} s",
                 *[_ms(r.p50_ms(p)) for p in phases], n]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_table(results: list[StateResult]) -> str:
    by_store: dict[str, dict[str, StateResult]] = {}
    for r in results:
        by_store.setdefault(r.store, {})[r.size] = r
    stores = [s for s, sizes in by_store.items() if {"small", "large"} <= sizes.keys()]
    if not stores:
        return "(no large/small pair: no ratio)"
    head = ["phase (p50 ms)"] + [f"{s} {c}" for s in stores for c in ("small", "large", "large / small")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for phase in RATIO_PHASES:
        cells = [PHASE_LABELS[phase]]
        for s in stores:
            small, large = by_store[s]["small"].p50_ms(phase), by_store[s]["large"].p50_ms(phase)
            ratio = f"**{large / small:.2f}×**" if small and large is not None else "–"
            cells += [_ms(small), _ms(large), ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_chart(results: list[StateResult], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = ("snapshot", *CYCLE_PHASES)
    stores = list(dict.fromkeys(r.store for r in results))
    fig, axes = plt.subplots(1, len(stores), figsize=(5.5 * len(stores), 4), squeeze=False, sharey=True)
    for ax, store in zip(axes[0], stores):
        rows = [r for r in results if r.store == store]
        width = 0.8 / len(rows)
        for i, r in enumerate(rows):
            xs = [x + i * width for x in range(len(phases))]
            values = [r.p50_ms(p) or 0.0 for p in phases]
            ax.bar(xs, values, width, label=f"{r.size} ({_size(r.database_bytes)})")
        ax.set_xticks([x + width * (len(rows) - 1) / 2 for x in range(len(phases))])
        ax.set_xticklabels([p.replace("_", " ") for p in phases], rotation=20)
        ax.set_title(rows[0].description, fontsize=9)
        ax.set_ylabel("p50 (ms)")
        ax.legend(fontsize=8)
    fig.suptitle("Snapshot, clone and instance start vs state size (p50)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine_facts() -> str:
    mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return (f"{os.cpu_count()} cores, {mem_kib / 1024**2:.0f} GiB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}, load average at the end {os.getloadavg()[0]:.2f}")


def render(results: list[StateResult], seconds: float, reps: int) -> str:
    loads = "; ".join(f"{r.store} {r.size}: load {r.load_seconds:.1f} s + stop/flush {r.stop_flush_seconds:.1f} s"
                      f" + first commit {r.first_commit_seconds:.2f} s" for r in results)
    small = [r for r in results if r.size == "large" and r.database_bytes < ONE_GB]
    parts = [f"Run {dt.datetime.now():%Y-%m-%d %H:%M}, {seconds:.0f} s in all; {machine_facts()}.", "",
             "Stores: " + "; ".join(dict.fromkeys(r.description for r in results)) + ".", "",
             f"p50 in ms over {reps} clone cycles (after one warm-up) per state:", "",
             results_table(results), "", ratio_table(results), "", f"Building the states: {loads}."]
    if small:
        parts += ["", "Warning: the large state is below 1 GB; raise --large-rows."]
    return "\n".join(parts) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stores", default="btrfs,zfs", help="comma-separated: btrfs, zfs")
    p.add_argument("--reps", type=int, default=7, help="timed clone cycles per state")
    p.add_argument("--snapshot-reps", type=int, default=3, help="timed snapshots per state")
    p.add_argument("--small-rows", type=int, default=SMALL_ROWS)
    p.add_argument("--large-rows", type=int, default=LARGE_ROWS)
    p.add_argument("--small-only", action="store_true", help="skip the large state (a quick look)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = p.parse_args(argv)
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = [s for s in args.stores if s not in STORES]
    if unknown:
        p.error(f"unknown store(s) {unknown}; choose from {sorted(STORES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = start_run("sqlrs-clonebench-", "it mounts a btrfs image, creates a zfs pool, and runs Postgres "
                                          "as the unprivileged postgres user")
    if base is None:
        return 2
    started = time.perf_counter()
    sizes = [("small", args.small_rows)] + ([] if args.small_only else [("large", args.large_rows)])
    (base / "run").mkdir(mode=0o755)
    results: list[StateResult] = []
    try:
        for kind in args.stores:
            results.extend(bench_store(kind, base, sizes, args.reps, args.snapshot_reps))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = render(results, time.perf_counter() - started, args.reps)
    write_outputs(args.out, "clone", text, chart=lambda path: write_chart(results, path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
