"""Where a cache hit's milliseconds go, before and after, from a sampling profile.

For each version (today's appliance, and that of --baseline-rev), one embedded appliance holds a
small state; py-spy samples every process of it (API, workers) at 1 kHz, idle waits included,
while --hits cache hits run one after another (POST, poll, connect, delete). Each sample of a
thread that is serving a request or running a job is put in one bucket by the code it is in;
a bucket's milliseconds per hit are its samples divided by the hits. Waiting for a subprocess
(initdb, pg_ctl, psql) or a socket counts where the wait is: a Postgres start is mostly a wait.

Writes bench/out/hit-profile.md, and the raw stacks (hit-profile-<version>.txt, the collapsed
format flame-graph tools read). Run as root: `make hit-profile`.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import baseline  # noqa: E402
from bench.cache_hit import ApiSession  # noqa: E402
from bench.outputs import start_run, write_outputs  # noqa: E402
from bench.prepare_bench import free_tcp_port, machine_facts  # noqa: E402
from bench.workloads import SMALL_ROWS, write_workload  # noqa: E402
from tests.e2e.harness import Appliance  # noqa: E402

RATE_HZ = 1000
PORTS = {"after": (29400, 29499), "before": (29500, 29599)}

# (bucket, what marks it): the first bucket whose marker is in a sample's stack takes the sample.
# Worker side first (a job's thread), then the API's request handling.
BUCKETS = [
    ("worker: Postgres start (clone's server, until ready)", ("ProcessRuntime.start", "DockerRuntime.start",
                                                              "NomadRuntime.start")),
    ("worker: instance password", ("set_password",)),
    ("worker: clone the state", ("clone_state",)),
    ("worker: job artifacts (report, logs)", ("_write_artifacts",)),
    ("worker: events and task rows (Control DB)", ("append_event", "task_status", "JobRun._finish")),
    ("worker: cache lookups (state_execute)", ("_execute_step",)),
    ("worker: claim the job (queue, Control DB)", ("claim_next",)),
    ("worker: rest of the job", ("JobRun", "run_next_job")),
    ("API: authentication and rate limits", ("api/auth/", "ratelimit.py", "_authenticate", "_limit")),
    ("API: admission (plan, record, enqueue)", ("submit_prepare",)),
    ("API: job status (poll)", ("job_status", "get_job")),
    ("API: instance delete", ("delete_instance", "destroy_instance", "release_volume")),
    ("API: rest of request handling", ("appliance/api/",)),
]


IGNORED = ("JobRun._beat", "JobRun._heartbeat")  # a job's heartbeat threads wait beside it


def bucket_of(stack: str) -> str | None:
    if any(marker in stack for marker in IGNORED):
        return None
    for name, markers in BUCKETS:
        if any(marker in stack for marker in markers):
            return name
    return None


def profile(raw: Path) -> collections.Counter:
    """Samples per bucket from py-spy's raw (collapsed) output."""
    counts: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        bucket = bucket_of(stack) if n.isdigit() else None
        if bucket is not None:
            counts[bucket] += int(n)
    return counts


def run_version(name: str, base: Path, hits: int, extra_env: dict[str, str], out: Path) -> collections.Counter:
    app = Appliance(base / f"data-{name}", free_tcp_port(), port_range=PORTS[name],
                    extra_env={"SQLRS_RECONCILE_INTERVAL_SECONDS": "3600", **extra_env})
    raw = out / f"hit-profile-{name}.txt"
    api = None
    try:
        app.start()
        api = ApiSession(app.url, app.token)
        body = api.upload(write_workload(f"small-{name}", SMALL_ROWS, base))
        status, *_ = api.run_job(body, timeout=600)
        api.delete_instance(status["result"]["instance_id"])
        api.delete_instance(api.measure_hit(body).instance_id)  # warm-up
        assert app.process is not None
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(app.process.pid), "--subprocesses", "--idle",
                                "--rate", str(RATE_HZ), "--format", "raw", "--output", str(raw), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches
        for _ in range(hits):
            api.delete_instance(api.measure_hit(body).instance_id)
            time.sleep(0.1)
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    finally:
        if api is not None:
            api.close()
        app.destroy()
    return profile(raw)


def render(profiles: dict[str, collections.Counter], hits: int, rev: str) -> str:
    per_hit = {name: {b: n * 1000 / RATE_HZ / hits for b, n in counts.items()} for name, counts in profiles.items()}
    lines = [f"Run {dt.datetime.now():%Y-%m-%d %H:%M}; {machine_facts()}; {hits} hits per version, sampled at "
             f"{RATE_HZ} Hz; before = {rev}.", "",
             "| where (ms of wall time per hit, summed over threads) | before | after | after / before |",
             "|---|---|---|---|"]
    for bucket, _ in BUCKETS:
        b, a = per_hit.get("before", {}).get(bucket, 0.0), per_hit["after"].get(bucket, 0.0)
        ratio = f"{a / b:.2f}×" if b else ""
        lines.append(f"| {bucket} | {b:.1f} | {a:.1f} | {ratio} |")
    totals = {name: sum(values.values()) for name, values in per_hit.items()}
    lines.append(f"| **all of the above** | {totals.get('before', 0.0):.1f} | {totals['after']:.1f} | "
                 + (f"{totals['after'] / totals['before']:.2f}× |" if totals.get("before") else " |"))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=30)
    parser.add_argument("--baseline-rev", default="e308f49")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None:
        print("py-spy is missing: pip install -c constraints.txt -e '.[bench]'", file=sys.stderr)
        return 2
    base = start_run("sqlrs-hit-profile-", "the appliance mounts a btrfs image")
    if base is None:
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        old = baseline.checkout(args.baseline_rev, base)
        profiles = {"before": run_version("before", base, args.hits, baseline.env(old), args.out),
                    "after": run_version("after", base, args.hits, {}, args.out)}
    finally:
        shutil.rmtree(base, ignore_errors=True)
    write_outputs(args.out, "hit-profile", render(profiles, args.hits, args.baseline_rev))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
