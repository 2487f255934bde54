"""Benchmark: export and import of a ~1 GB state, on zfs and btrfs, before and after compression.

For each store (btrfs on a loop-mounted image, zfs on a file-backed pool) one state of about
1.1 GB of table data (md5 text and integers, as clone_bench builds it) is made once, then:

- **before** (the previous release's stream): the driver's send stream, hashed, into the object
  store as it is; and back: the stored stream received into the store.
- **after** (today's export and import): ``export_state`` (zstd level 3, hashed, resumable
  upload, signed manifest) and ``import_state`` (the stream downloaded and checked before the
  driver receives a byte, then decompressed into the receive).

Throughput is the state's raw stream (what the driver sends) per second of wall time, so before
and after compare the same work; the compression ratio is raw bytes / stored bytes. The object
store is a local directory on the same disk: the numbers are the appliance's own cost, not a
network's. Writes bench/out/transfer.{md,json,png}. A benchmark, not a test: run it as root with
`make transfer-bench`.
"""
from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from appliance.context import AppContext  # noqa: E402
from appliance.control.db import close_database, open_database  # noqa: E402
from appliance.control.migrations import migrate  # noqa: E402
from appliance.control.models import State  # noqa: E402
from appliance.settings import Settings  # noqa: E402
from appliance.shell import Runner  # noqa: E402
from appliance.transfer.streams import HashingReader, export_state, import_state  # noqa: E402
from bench.clone_bench import LARGE_ROWS, ORG, STORES, CloneBench  # noqa: E402
from bench.outputs import start_run, write_outputs  # noqa: E402
from bench.prepare_bench import machine_facts  # noqa: E402

STATE = "large"
RAW_KEY = f"{ORG}/bench/raw-stream"
MB = 10**6


@dataclass
class Measured:
    store: str
    description: str
    database_bytes: int = 0
    raw_bytes: int = 0  # the driver's send stream
    stored_bytes: int = 0  # what today's export stores (compressed)
    seconds: dict[str, float] = field(default_factory=dict)  # export_before, export_after, import_before, import_after

    def mb_per_s(self, phase: str) -> float:
        return self.raw_bytes / MB / self.seconds[phase]

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.stored_bytes


def context_on(bench: CloneBench, data_dir: Path) -> AppContext:
    """The appliance's context around a bench store: a SQLite Control DB, a local object store."""
    settings = Settings(data_dir=data_dir, btrfs_image="off")
    db = open_database(settings.control_db_url)
    migrate(db)
    return AppContext(settings=settings, db=db, runner=bench.runner, store=bench.store, runtime=bench.runtime)


def record_state(ctx: AppContext, size_bytes: int) -> None:
    State.create(org=ORG, state_id=STATE, image_id="postgres:15", prepare_kind="psql", task_hash="bench",
                 size_bytes=size_bytes, host=ctx.host)


def export_before(ctx: AppContext) -> tuple[int, float]:
    """The previous release's export: the raw send stream, hashed, stored as it is."""
    command = ctx.store.send_state_command(ORG, STATE, None)
    hashing: list[HashingReader] = []
    started = time.perf_counter()

    def upload(stream: BinaryIO) -> None:
        hashing.append(HashingReader(stream))
        ctx.objects.put_stream(RAW_KEY, cast(BinaryIO, hashing[0]))
    ctx.runner.pipe_from(command.argv, upload)
    return hashing[0].bytes, time.perf_counter() - started


def import_before(ctx: AppContext, fmt: str) -> float:
    """The previous release's import: the stored raw stream straight into the driver's receive."""
    started = time.perf_counter()
    with ctx.objects.open(RAW_KEY) as stored:
        ctx.store.receive_state(ORG, STATE, stored, fmt, None)
    return time.perf_counter() - started


def forget_state(ctx: AppContext) -> None:
    ctx.store.destroy_state(ORG, STATE)
    State.delete().where((State.org == ORG) & (State.state_id == STATE)).execute()


def measure(kind: str, base: Path, rows: int) -> Iterator[Measured]:
    store_dir = base / kind
    store_dir.mkdir(mode=0o755)
    with STORES[kind](Runner(), store_dir) as bench_store:
        bench = CloneBench(bench_store, base / "run")
        ctx = context_on(bench, base / f"{kind}-data")
        try:
            built = bench.build_state(STATE, rows)
            result = Measured(kind, bench.description, database_bytes=built.database_bytes)
            print(f"[{kind}] built {built.database_bytes / MB:.0f} MB in {built.load_seconds:.0f} s", flush=True)
            record_state(ctx, built.state_bytes)
            result.raw_bytes, result.seconds["export_before"] = export_before(ctx)
            fmt = ctx.store.send_state_command(ORG, STATE, None).format
            started = time.perf_counter()
            manifest = export_state(ctx, ORG, STATE)
            result.seconds["export_after"] = time.perf_counter() - started
            result.stored_bytes = manifest.stream_bytes
            print(f"[{kind}] export: {result.mb_per_s('export_before'):.0f} MB/s raw, "
                  f"{result.mb_per_s('export_after'):.0f} MB/s compressed ({result.ratio:.1f}:1)", flush=True)
            forget_state(ctx)
            result.seconds["import_before"] = import_before(ctx, fmt)
            forget_state(ctx)
            started = time.perf_counter()
            import_state(ctx, ORG, STATE)
            result.seconds["import_after"] = time.perf_counter() - started
            print(f"[{kind}] import: {result.mb_per_s('import_before'):.0f} MB/s raw, "
                  f"{result.mb_per_s('import_after'):.0f} MB/s compressed", flush=True)
            yield result
        finally:
            bench.stop_all()
            close_database(ctx.db)


# -- the report --------------------------------------------------------------------------------
def render(results: list[Measured], seconds: float) -> str:
    lines = ["# Export and import of a ~1 GB state: before (raw stream) and after (zstd, signed)", "",
             machine_facts(), f"Run took {seconds:.0f} s. Throughput = the raw send stream's MB per second of "
             "wall time; the object store is a local directory.", "",
             "| store | database | raw stream | stored after | ratio | export before | export after | after/before "
             "| import before | import after | after/before |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.store} | {r.database_bytes / MB:.0f} MB | {r.raw_bytes / MB:.0f} MB | {r.stored_bytes / MB:.0f} MB "
            f"| {r.ratio:.1f}:1 | {r.mb_per_s('export_before'):.0f} MB/s | {r.mb_per_s('export_after'):.0f} MB/s "
            f"| {r.mb_per_s('export_after') / r.mb_per_s('export_before'):.2f}× "
            f"| {r.mb_per_s('import_before'):.0f} MB/s | {r.mb_per_s('import_after'):.0f} MB/s "
            f"| {r.mb_per_s('import_after') / r.mb_per_s('import_before'):.2f}× |")
    lines += ["", "Stored bytes are what crosses the network to an object store elsewhere: the ratio is the "
              "saving on the wire and in the bucket, the throughput the cost on the appliance's cores."]
    return "\n".join(lines) + "\n"


def write_chart(results: list[Measured], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    phases = ["export_before", "export_after", "import_before", "import_after"]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.2
    for i, phase in enumerate(phases):
        ax.bar([x + i * width for x in range(len(results))], [r.mb_per_s(phase) for r in results], width,
               label=phase.replace("_", " "))
    ax.set_xticks([x + 1.5 * width for x in range(len(results))], [r.store for r in results])
    ax.set_ylabel("MB/s of the raw stream")
    ax.set_title("Export / import of a ~1 GB state")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="btrfs,zfs", help="comma-separated: btrfs, zfs")
    parser.add_argument("--rows", type=int, default=LARGE_ROWS, help="rows of the state's table (~241 bytes each)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args(argv)
    base = start_run("sqlrs-transfer-bench-", "it mounts stores and runs Postgres as another user")
    if base is None:
        return 1
    started, results = time.perf_counter(), []
    try:
        for kind in args.stores.split(","):
            results.extend(measure(kind, base, args.rows))
    finally:
        with contextlib.suppress(Exception):
            shutil.rmtree(base)
    write_outputs(args.out, "transfer", render(results, time.perf_counter() - started),
                  chart=lambda p: write_chart(results, p), samples=results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
