"""Benchmark: the appliance under load — many clients, three orgs, hits and misses at once.

One real embedded appliance (`sqlrs-appliance up`: API, RQ workers, reconciler, btrfs store,
process runtime). Three orgs with unequal demand (by default 27, 18 and 9 closed-loop clients,
54 in all), each with its own member token. Every client loops until the time is up: submit a
prepare (a cache *hit*: the org's cached two-step chain; or a *miss*: that chain plus one new
step), wait for the job on its event stream, connect to the DSN and `select 1` (that moment is "time to
DSN"), then delete the instance. Before the load, in the same process, one lone client measures
hits and misses on the idle appliance: the baseline the load figures are divided by. A client
waits for its job on the job's event stream, as the CLI does (a job answered at admission from
the warm pool needs no wait).

Before and after in one run: with --baseline-rev the same load runs first against the appliance
of that revision (its API and workers from `git archive`), then against today's.

Fairness: a client only submits after its previous job ended, so an org's *demand* is its share
of clients; its *share of completed work* is counted in worker seconds (a miss costs more than
a hit). Under fair share, an org keeps at least min(demand, 1/3) of the work.

Writes bench/out/load.md, load.png and load.json. Run as root: `make load-bench`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg2

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from appliance.planning.packing import pack_psql_bundle  # noqa: E402
from bench import baseline  # noqa: E402
from bench.outputs import start_run, write_outputs  # noqa: E402
from bench.prepare_bench import free_tcp_port, machine_facts  # noqa: E402
from bench.report import percentile  # noqa: E402
from tests.e2e.harness import TERMINAL, Appliance  # noqa: E402

INSTANCE_PORTS = (30000, 30999)
ORGS = ["acme", "globex", "initech"]


@dataclass
class Sample:
    org: str
    kind: str  # hit | miss
    phase: str  # baseline | load
    started: float  # seconds since the phase began
    seconds: float  # POST to a DSN that answered select 1
    worker_seconds: float  # the job's started_at → finished_at, as the server recorded it
    error: str | None = None
    version: str = "after"  # after (today's code) | before (--baseline-rev)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="27,18,9", help="closed-loop clients per org (3 orgs)")
    parser.add_argument("--seconds", type=float, default=150.0, help="length of the load phase")
    parser.add_argument("--hit-ratio", type=float, default=0.7, help="share of requests that are cache hits")
    parser.add_argument("--workers", type=int, default=4, help="RQ worker processes")
    parser.add_argument("--baseline", type=int, default=10, help="baseline requests of each kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pool-size", type=int, default=0, help="warm pool size (0: off)")
    parser.add_argument("--baseline-rev", default="", help="also run the load against this git revision's appliance")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    return parser.parse_args(argv)


class OrgClient:
    """One org's member token and its requests (scripts uploaded once: bundles are content-addressed)."""

    def __init__(self, app: Appliance, org: str, base: Path):
        self.app, self.org = app, org
        created = httpx.post(f"{app.url}/v1/orgs/{org}/tokens", json={"name": "load-bench", "role": "member"},
                             headers={"Authorization": f"Bearer {app.token}", "X-Sqlrs-Org": org}, timeout=30)
        created.raise_for_status()
        self.token = created.json()["token"]
        scripts = base / org
        scripts.mkdir(parents=True)
        (scripts / "schema.sql").write_text(f"create table items /* {org} */ (id int primary key, name text);\n")
        (scripts / "data.sql").write_text("insert into items select g, 'item ' || g from generate_series(1, 20000) g;\n")
        bundle = pack_psql_bundle(["-f", "schema.sql", "-f", "data.sql"], scripts)
        with self.session() as client:
            upload = client.post("/v1/sources", content=bundle.data, headers={"Content-Type": "application/gzip"})
            upload.raise_for_status()
        self.hit_body = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": bundle.psql_args,
                         "source": {"source_id": upload.json()["source_id"], "work_dir": bundle.work_dir}}

    def session(self) -> httpx.Client:
        return httpx.Client(base_url=self.app.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=120)

    def body(self, kind: str) -> dict[str, Any]:
        if kind == "hit":
            return self.hit_body
        step = f"create table miss_{uuid.uuid4().hex} as select * from items where id % 7 = 0;"
        return {**self.hit_body, "psql_args": [*self.hit_body["psql_args"], "-c", step]}

    def request(self, client: httpx.Client, kind: str, phase: str, t0: float) -> Sample:
        started = time.monotonic()
        sample = Sample(self.org, kind, phase, started - t0, 0.0, 0.0)
        try:
            response = client.post("/v1/prepare-jobs", json=self.body(kind))
            if response.status_code != 201:
                raise RuntimeError(f"POST answered {response.status_code} {response.json().get('code')}")
            status = response.json()
            if not status.get("result"):  # not answered at admission: follow the job until it ends
                wait_for_end(client, status["job_id"])
                status = client.get(f"/v1/prepare-jobs/{status['job_id']}").json()
            if status["status"] != "succeeded":
                error = status.get("error") or {}
                raise RuntimeError(f"job {status['status']}: {error.get('code')}: {error.get('message')}")
            with psycopg2.connect(status["result"]["dsn"], connect_timeout=10) as conn, conn.cursor() as cur:
                cur.execute("select 1")
            conn.close()
            sample.seconds = time.monotonic() - started
            sample.worker_seconds = _seconds_between(status.get("started_at"), status.get("finished_at"))
            client.delete(f"/v1/instances/{status['result']['instance_id']}", params={"force": "true"})
        except Exception as exc:  # counted, never hidden: the run must show 0
            sample.error = str(exc)[:300]
            sample.seconds = time.monotonic() - started
        return sample


def wait_for_end(client: httpx.Client, job_id: str) -> None:
    """Read the job's event stream (NDJSON) until its terminal status event."""
    with client.stream("GET", f"/v1/prepare-jobs/{job_id}/events", headers={"Accept": "application/x-ndjson"},
                       timeout=httpx.Timeout(None, connect=10)) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            event = json.loads(line) if line.strip() else {}
            if event.get("type") == "status" and event.get("status") in TERMINAL:
                return
    raise RuntimeError(f"the event stream of job {job_id} ended before the job did")


def _seconds_between(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    parse = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def run_baseline(org: OrgClient, requests: int) -> list[Sample]:
    samples, t0 = [], time.monotonic()
    with org.session() as client:
        for kind in ("hit", "miss"):
            for _ in range(requests):
                samples.append(org.request(client, kind, "baseline", t0))
    return samples


def run_load(orgs: list[OrgClient], clients: list[int], seconds: float, hit_ratio: float, seed: int) -> list[Sample]:
    samples: list[Sample] = []
    lock, t0 = threading.Lock(), time.monotonic()
    deadline = t0 + seconds

    def loop(org: OrgClient, n: int) -> None:
        rng = random.Random(f"{seed}-{org.org}-{n}")
        with org.session() as client:
            while time.monotonic() < deadline:
                sample = org.request(client, "hit" if rng.random() < hit_ratio else "miss", "load", t0)
                with lock:
                    samples.append(sample)

    threads = [threading.Thread(target=loop, args=(org, n), daemon=True)
               for org, count in zip(orgs, clients) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def _s(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.2f} s" if values else "–"


def results(samples: list[Sample], orgs: list[str], clients: list[int], seconds: float, elapsed: float) -> str:
    base = {k: [s.seconds for s in samples if s.phase == "baseline" and s.kind == k and not s.error]
            for k in ("hit", "miss")}
    load = [s for s in samples if s.phase == "load"]
    ok = [s for s in load if not s.error]
    errors = Counter(s.error.split(":")[0] for s in load if s.error)
    lines = [
        f"Load phase: {len(load)} requests by {sum(clients)} closed-loop clients in {elapsed:.0f} s "
        f"(asked for {seconds:.0f} s; clients finish their last request), 3 orgs.",
        "",
        "| requests | completed | errors | throughput | p50 to DSN | p95 | p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("all", "hit", "miss"):
        rows = [s for s in load if kind == "all" or s.kind == kind]
        done = [s.seconds for s in rows if not s.error]
        lines.append(f"| {kind} | {len(done)} | {sum(1 for s in rows if s.error)} | {len(done) / elapsed:.2f}/s "
                     f"| {_s(done, 50)} | {_s(done, 95)} | {_s(done, 99)} |")
    lines += ["", f"Errors by kind: {dict(errors) or 'none'}.", "",
              "Against the idle baseline measured first in the same process (one client, "
              f"{len(base['hit'])} hits and {len(base['miss'])} misses):", "",
              "| kind | idle p50 | loaded p50 | loaded / idle |", "|---|---|---|---|"]
    for kind in ("hit", "miss"):
        loaded = [s.seconds for s in ok if s.kind == kind]
        if base[kind] and loaded:
            ratio = percentile(loaded, 50) / percentile(base[kind], 50)
            lines.append(f"| {kind} | {_s(base[kind], 50)} | {_s(loaded, 50)} | {ratio:.1f}× |")
    total_clients, total_work = sum(clients), sum(s.worker_seconds for s in ok) or 1.0
    lines += ["", "Fairness (demand = share of clients; work = share of worker seconds of completed jobs):", "",
              "| org | clients | share of demand | completed | share of work | fair share | p50 to DSN | p95 |",
              "|---|---|---|---|---|---|---|---|"]
    for org, count in zip(orgs, clients):
        mine = [s for s in ok if s.org == org]
        work = sum(s.worker_seconds for s in mine) / total_work
        fair = min(count / total_clients, 1 / len(orgs))
        lines.append(f"| {org} | {count} | {count / total_clients:.0%} | {len(mine)} | {work:.0%} "
                     f"| ≥ {fair:.0%} | {_s([s.seconds for s in mine], 50)} | {_s([s.seconds for s in mine], 95)} |")
    return "\n".join(lines)


def write_chart(samples: list[Sample], orgs: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for org, color in zip(orgs, ("#4f81bd", "#c0504d", "#9bbb59")):
        for kind, marker in (("hit", "o"), ("miss", "x")):
            pts = [s for s in samples if s.phase == "load" and s.org == org and s.kind == kind and not s.error]
            ax.scatter([s.started for s in pts], [s.seconds for s in pts], s=8, marker=marker, color=color,
                       alpha=0.6, label=f"{org} {kind}")
    ax.set_xlabel("seconds into the load phase (request submitted)")
    ax.set_ylabel("seconds from POST to select 1")
    ax.set_title("sqlrs appliance under load: time to DSN per request")
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


TARGET_HITS_PER_SECOND = 15.0
TARGET_POOLED_HITS_PER_SECOND = 40.0
TARGET_P95_SECONDS = 2.0


def run_version(name: str, base: Path, args, extra_env: dict[str, str]) -> tuple[list[Sample], float]:
    """One appliance (of this version), warmed up, then the idle baseline and the load."""
    clients = [int(c) for c in args.clients.split(",")]
    app = Appliance(base / f"data-{name}", free_tcp_port(), port_range=INSTANCE_PORTS,
                    extra_env={"SQLRS_WORKERS": str(args.workers), "SQLRS_BTRFS_IMAGE_BYTES": str(16 * 1024**3),
                               "SQLRS_WARM_POOL_SIZE": str(args.pool_size), **extra_env})
    try:
        app.start()
        orgs = [OrgClient(app, org, base / name) for org in ORGS[:len(clients)]]
        for org in orgs:  # build each org's chain once: afterwards a "hit" is a real cache hit
            with org.session() as client:
                warm = org.request(client, "hit", "warm-up", time.monotonic())
                if warm.error:
                    raise RuntimeError(f"warm-up failed: {warm.error}")
        samples = run_baseline(orgs[0], args.baseline)
        print(f"[{name}] baseline done: {len(samples)} requests", flush=True)
        started = time.monotonic()
        samples += run_load(orgs, clients, args.seconds, args.hit_ratio, args.seed)
        elapsed = time.monotonic() - started
        print(f"[{name}] load done: {sum(1 for s in samples if s.phase == 'load')} requests", flush=True)
        failed = [s.error for s in samples if s.error]
        if failed:  # what each failure said, and the log around the appliance's own tracebacks
            print(f"--- {name}: {len(failed)} failed requests ---\n" + "\n".join(failed[:10]), file=sys.stderr)
            print(f"--- {name}: the appliance log's errors ---\n{_error_lines(app.log_text())}", file=sys.stderr)
    except BaseException:
        print(f"--- tail of the {name} appliance log ---\n{app.log_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        app.destroy()
    for sample in samples:
        sample.version = name
    return samples, elapsed


def _error_lines(log: str, context: int = 30) -> str:
    lines = log.splitlines()
    hits = [n for n, line in enumerate(lines) if "Traceback" in line or " ERROR " in line or '"error"' in line]
    return "\n".join("\n".join(lines[max(0, n - 3):n + context]) for n in hits[:3])[-8000:]


def comparison(runs: dict[str, tuple[list[Sample], float]], args) -> str:
    """Before and after side by side, and the targets (which are for cache hits)."""
    lines = ["| version | completed | errors | throughput | p50 to DSN | p95 | p99 |", "|---|---|---|---|---|---|---|"]
    rates = {}
    for name, (samples, elapsed) in runs.items():
        load = [s for s in samples if s.phase == "load"]
        done = [s.seconds for s in load if not s.error]
        rates[name] = len(done) / elapsed
        lines.append(f"| {name} | {len(done)} | {sum(1 for s in load if s.error)} | {rates[name]:.2f}/s "
                     f"| {_s(done, 50)} | {_s(done, 95)} | {_s(done, 99)} |")
    if "before" in rates and rates["before"]:
        lines += ["", f"Throughput after / before: **{rates['after'] / rates['before']:.2f}×**."]
    if args.hit_ratio >= 1.0:
        samples, _ = runs["after"]
        load = [s for s in samples if s.phase == "load"]
        done = [s.seconds for s in load if not s.error]
        target = TARGET_POOLED_HITS_PER_SECOND if args.pool_size else TARGET_HITS_PER_SECOND
        p95 = percentile(done, 95) if done else float("inf")
        errors = sum(1 for s in load if s.error)

        def met(ok: bool) -> str:
            return "**met**" if ok else "**missed**"

        rate = rates["after"]
        lines += ["", f"- {rate:.1f} cache hits/s sustained, target ≥ {target:.0f}/s: {met(rate >= target)}.",
                  f"- p95 to DSN {p95:.2f} s, target ≤ {TARGET_P95_SECONDS:.0f} s: {met(p95 <= TARGET_P95_SECONDS)}.",
                  f"- {errors} errors, target 0: {met(errors == 0)}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = start_run("sqlrs-loadbench-", "the appliance mounts a btrfs image")
    if base is None:
        return 2
    clients = [int(c) for c in args.clients.split(",")]
    org_names = ORGS[:len(clients)]
    runs: dict[str, tuple[list[Sample], float]] = {}
    try:
        if args.baseline_rev:
            old = baseline.checkout(args.baseline_rev, base)
            runs["before"] = run_version("before", base, args, baseline.env(old))
        runs["after"] = run_version("after", base, args, {})
    finally:
        shutil.rmtree(base, ignore_errors=True)
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    samples, elapsed = runs["after"]
    text = (f"Run {when}; {machine_facts()}; {args.workers} workers, hit ratio {args.hit_ratio:.0%}, warm pool "
            f"{args.pool_size or 'off'}, embedded default otherwise (SQLite Control DB, btrfs store, process runtime)"
            + (f"; before = the appliance of {args.baseline_rev}" if args.baseline_rev else "") + ".\n\n"
            + comparison(runs, args) + "\n\nToday's appliance in detail:\n\n"
            + f"{results(samples, org_names, clients, args.seconds, elapsed)}\n")
    every = [s for run, _ in runs.values() for s in run]
    stem = "load" + ("-hits" if args.hit_ratio >= 1.0 else "") + ("-pool" if args.pool_size else "")
    write_outputs(args.out, stem, text, chart=lambda path: write_chart(samples, org_names, path), samples=every)
    return 1 if any(s.error for s in every) else 0


if __name__ == "__main__":
    sys.exit(main())
