"""Benchmark: a cache hit as a user sees it, through the `sqlrs` CLI, against the API-level hit.

Two appliances run side by side, today's ("after") and the one of --baseline-rev ("before",
extracted with `git archive`, its API, workers and CLI all from that revision). Each holds the
same state (btrfs store, 1 GiB unless --small-only). Each round, interleaved so that machine
noise hits every series alike, and for each version:
  api hit   POST /v1/prepare-jobs, poll every 20 ms, connect to the DSN and `select 1`
            (bench/cache_hit.py);
  cli hit   `sqlrs prepare:psql -- -f schema.sql -f data.sql` from process start to its DSN
            answering `select 1` (packing, upload, submit, progress, DSN);
  --version `sqlrs --version`;
  and, from the API-level hit, the time from POST to its 201 (with the DSN, when the warm pool
  answers at admission).
Plus the interpreter's own start (`python3 -c pass`), the floor under any Python command here.
Each version's `sqlrs` is installed from its package into a virtual environment of its own, as a
user's machine has it (--cli-from venv, the default), so neither carries this checkout's editable
finder nor the start-up hooks of the site's own Python.
Every instance is deleted before the next round. It is a benchmark, not a test: `make cli-bench`
(as root: it mounts btrfs images).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import baseline  # noqa: E402
from bench.cache_hit import ApiSession  # noqa: E402
from bench.outputs import start_run, write_outputs  # noqa: E402
from bench.prepare_bench import ONE_GIB, describe_store, free_tcp_port, machine_facts  # noqa: E402
from bench.workloads import LARGE_ROWS, SMALL_ROWS, Workload, write_workload  # noqa: E402
from tests.e2e.harness import Appliance  # noqa: E402

PORTS = {"after": (29200, 29299), "before": (29300, 29399)}
BASELINE_REV = "e308f49"  # main before issue 17
TARGET_CLI_SECONDS = 0.20
TARGET_CLI_RATIO = 1.5
TARGET_POOLED_CLI_SECONDS = 0.10
TARGET_POOLED_ADMISSION_SECONDS = 0.010
TARGET_VERSION_SECONDS = 0.060


@dataclass
class Series:
    name: str
    seconds: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@dataclass
class Version:
    """One appliance and the CLI of the same code."""
    name: str  # after | before
    app: Appliance
    cli: list[str]
    api: ApiSession | None = None
    body: dict | None = None
    env: dict[str, str] = field(default_factory=dict)


def installed_cli() -> list[str]:
    """The `sqlrs` a user runs: the console script next to this interpreter."""
    script = Path(sys.executable).parent / "sqlrs"
    if not script.exists():
        raise SystemExit(f"no sqlrs next to {sys.executable}: install the package first (make test installs it)")
    return [str(script)]


def timed(argv: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, **kw)
    return time.perf_counter() - started, done


def cli_hit(cli: list[str], workload_dir: Path, env: dict[str, str]) -> tuple[float, str]:
    """Seconds from starting the command to its DSN answering ``select 1``; and the instance id."""
    started = time.perf_counter()
    done = subprocess.run([*cli, "prepare:psql", "--", "-f", "schema.sql", "-f", "data.sql"], cwd=workload_dir,
                          env=env, capture_output=True, text=True)
    dsn = next((line[4:] for line in done.stdout.splitlines() if line.startswith("DSN=")), None)
    if done.returncode != 0 or dsn is None:
        raise RuntimeError(f"{cli[0]} exited {done.returncode}: {done.stderr[-2000:]}")
    with psycopg2.connect(dsn, connect_timeout=10) as conn, conn.cursor() as cur:
        cur.execute("select 1")
        cur.fetchone()
    seconds = time.perf_counter() - started
    conn.close()
    instance = next(line.split()[1] for line in done.stderr.splitlines() if line.startswith("instance "))
    return seconds, instance


def delete_by_prefix(api: ApiSession, prefix: str) -> None:
    for instance in api.client.get("/v1/instances").json():
        if instance["instance_id"].startswith(prefix):
            api.delete_instance(instance["instance_id"])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hits", type=int, default=20, help="rounds (each: one hit per series)")
    p.add_argument("--small-only", action="store_true", help="a 5 MB state instead of 1 GiB (a quick look)")
    p.add_argument("--pool-size", type=int, default=0, help="warm pool size (0: every hit clones and starts)")
    p.add_argument("--baseline-rev", default=BASELINE_REV, help="the git revision whose CLI is 'before'")
    p.add_argument("--cli-from", choices=("venv", "checkout"), default="venv",
                   help="venv: each version's sqlrs installed from its package into a virtual environment, as "
                        "users get it (default); checkout: today's installed script and the baseline's sources")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    return p.parse_args(argv)


def render(series: dict[str, Series], args, store: str, state_bytes: int, seconds: float) -> str:
    def p50(name: str) -> float:
        return series[name].p(0.5)

    target = TARGET_POOLED_CLI_SECONDS if args.pool_size else TARGET_CLI_SECONDS
    lines = [f"Run {dt.datetime.now():%Y-%m-%d %H:%M}, {seconds:.0f} s in all; {machine_facts()}; store {store}; "
             f"state {state_bytes / ONE_GIB:.2f} GiB; warm pool {args.pool_size or 'off'}; {args.hits} rounds; "
             f"before = appliance and CLI of {args.baseline_rev}; each `sqlrs` "
             + ("installed from its version's package into a virtual environment of its own."
                if args.cli_from == "venv" else "run from this checkout."), "",
             "| series | before p50 | before p95 | after p50 | after p95 | after / before |",
             "|---|---|---|---|---|---|"]
    for what in ("POST to 201", "api hit", "cli hit", "sqlrs --version"):
        b, a = series[f"{what} (before)"], series[f"{what} (after)"]
        lines.append(f"| {what} | {b.p(0.5) * 1000:.0f} ms | {b.p(0.95) * 1000:.0f} ms | **{a.p(0.5) * 1000:.0f} ms** "
                     f"| {a.p(0.95) * 1000:.0f} ms | **{a.p(0.5) / b.p(0.5):.2f}×** |")
    for version in ("before", "after"):
        ratio = p50(f"cli hit ({version})") / p50(f"api hit ({version})")
        lines.append(f"| cli hit / api hit ({version}) | | | | | {ratio:.2f}× |")
    floor, floor95 = p50("python3 -c pass"), series["python3 -c pass"].p(0.95)
    lines.append(f"| python3 -c pass (the floor) | | | {floor * 1000:.0f} ms | {floor95 * 1000:.0f} ms | |")

    def met(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    cli, ratio, version = p50("cli hit (after)"), p50("cli hit (after)") / p50("api hit (after)"), p50("sqlrs --version (after)")
    lines += ["", f"- CLI-included hit p50 {cli * 1000:.0f} ms, target ≤ {target * 1000:.0f} ms: {met(cli <= target)}."]
    if not args.pool_size:
        lines.append(f"- CLI hit / API hit p50 {ratio:.2f}×, target ≤ {TARGET_CLI_RATIO}×: {met(ratio <= TARGET_CLI_RATIO)}.")
    else:
        admitted = p50("POST to 201 (after)")
        lines.append(f"- warm-pool hit, POST to a 201 with the DSN, p50 {admitted * 1000:.1f} ms, target ≤ "
                     f"{TARGET_POOLED_ADMISSION_SECONDS * 1000:.0f} ms: {met(admitted <= TARGET_POOLED_ADMISSION_SECONDS)}.")
    lines.append(f"- `sqlrs --version` p50 {version * 1000:.0f} ms, target ≤ {TARGET_VERSION_SECONDS * 1000:.0f} ms: "
                 f"{met(version <= TARGET_VERSION_SECONDS)} (this interpreter alone starts in {floor * 1000:.0f} ms).")
    return "\n".join(lines) + "\n"


def start_version(name: str, base: Path, args, cli: list[str], extra_env: dict[str, str]) -> Version:
    app = Appliance(base / f"data-{name}", free_tcp_port(), port_range=PORTS[name],
                    extra_env={"SQLRS_BTRFS_IMAGE_BYTES": str(16 * ONE_GIB), "SQLRS_WARM_POOL_SIZE": str(args.pool_size),
                               "SQLRS_RECONCILE_INTERVAL_SECONDS": "3600", **extra_env})
    return Version(name, app, cli)


def prepare_version(version: Version, workload: Workload, cli_from: str) -> int:
    """Start the appliance and build the state once; returns the state's size in bytes."""
    version.app.start()
    version.api = ApiSession(version.app.url, version.app.token)
    version.body = version.api.upload(workload)
    status, *_ = version.api.run_job(version.body, timeout=1800)
    version.api.delete_instance(status["result"]["instance_id"])
    sources = {k: v for k, v in version.app.env.items() if k == "PYTHONPATH" and cli_from == "checkout"}
    version.env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **sources,
                   "SQLRS_URL": version.app.url, "SQLRS_TOKEN_FILE": str(version.app.data_dir / "admin.token"),
                   "SQLRS_OUTPUT": "human"}
    version.env.pop("SQLRS_TOKEN", None)
    states = version.api.client.get("/v1/states").json()
    return next(s for s in states if s["state_id"] == status["result"]["state_id"]).get("size_bytes") or 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = start_run("sqlrs-cli-bench-", "the appliance mounts a btrfs image and Postgres runs as "
                                         "the unprivileged postgres user")
    if base is None:
        return 2
    started = time.perf_counter()
    old = baseline.checkout(args.baseline_rev, base)
    if args.cli_from == "venv":
        clis = {"after": baseline.venv_cli(None, base), "before": baseline.venv_cli(args.baseline_rev, base)}
    else:
        clis = {"after": installed_cli(), "before": baseline.cli_command(old)}
    floor_python = str(Path(clis["after"][0]).parent / "python") if args.cli_from == "venv" else sys.executable
    versions = [start_version("after", base, args, clis["after"], {}),
                start_version("before", base, args, clis["before"], baseline.env(old))]
    names = [f"{what} ({v.name})" for v in versions for what in ("api hit", "cli hit", "sqlrs --version", "POST to 201")]
    series = {name: Series(name) for name in [*names, "python3 -c pass"]}
    settle = lambda: time.sleep(1.0 if args.pool_size else 0.2)  # noqa: E731  the pool refills meanwhile
    try:
        workload = write_workload("small" if args.small_only else "large",
                                  SMALL_ROWS if args.small_only else LARGE_ROWS, base)
        state_bytes = [prepare_version(v, workload, args.cli_from) for v in versions][0]
        store = describe_store(versions[0].app)
        print(f"both appliances up; store {store}; state {state_bytes / ONE_GIB:.2f} GiB", flush=True)
        for v in versions:  # warm-ups, not counted
            delete_by_prefix(v.api, cli_hit(v.cli, workload.scripts_dir, v.env)[1])
            settle()
        for i in range(args.hits):
            for v in versions:
                assert v.api is not None and v.body is not None
                hit = v.api.measure_hit(v.body)
                series[f"api hit ({v.name})"].seconds.append(hit.seconds)
                series[f"POST to 201 ({v.name})"].seconds.append(hit.phases["POST /v1/prepare-jobs (plan, record, enqueue)"])
                v.api.delete_instance(hit.instance_id)
                settle()
                seconds, instance = cli_hit(v.cli, workload.scripts_dir, v.env)
                series[f"cli hit ({v.name})"].seconds.append(seconds)
                delete_by_prefix(v.api, instance)
                settle()
                series[f"sqlrs --version ({v.name})"].seconds.append(timed([*v.cli, "--version"], env=v.env)[0])
            series["python3 -c pass"].seconds.append(timed([floor_python, "-c", "pass"])[0])
            print(f"round {i + 1}/{args.hits}: " + ", ".join(
                f"{name} {s.seconds[-1] * 1000:.0f} ms" for name, s in series.items()), flush=True)
    except BaseException:
        for v in versions:
            print(f"--- tail of the {v.name} appliance log ---\n{v.app.log_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        for v in versions:
            if v.api is not None:
                v.api.close()
            v.app.destroy()
        shutil.rmtree(base, ignore_errors=True)
    text = render(series, args, store, state_bytes, time.perf_counter() - started)
    write_outputs(args.out, "cli-pool" if args.pool_size else "cli", text,
                  samples=[{"name": s.name, "seconds": s.seconds} for s in series.values()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
