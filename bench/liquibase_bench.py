"""Benchmark: prepare:lb on a ten-changeset changelog (XML, YAML, formatted SQL, JSON).

Against embedded appliances (btrfs, process runtime, warm pool of 2), in one process:
- the cold build (plan with ``update-sql``, then every changeset, a snapshot after each), once
  with one Liquibase per changeset (the baseline) and once with one Liquibase for the run,
  forking the build volume at each changeset boundary; then three more cold builds for the run
  with the base cluster already made (each of a copy whose first changeset has another id);
- repeated requests for the same changelog: planned at admission from the plan cache, answered
  from the warm pool (the bench waits for the pool to refill between requests);
- the JVM overhead per changeset, against an instance of the base: one ``update`` applying all
  ten changesets, versus ten ``update-count --count=1`` runs;
- the target's reference: a plain ``liquibase update`` of the changelog through the distribution's
  own launcher, as a user runs it, against an instance of the base.
Writes bench/out/liquibase.md and liquibase.json. Run as root: `make liquibase-bench`.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from appliance.liquibase_runners.base import Connection  # noqa: E402
from appliance.liquibase_runners.host import LiquibaseCli  # noqa: E402
from appliance.planning.liquibase.args import parse_liquibase_args  # noqa: E402
from appliance.settings import Settings  # noqa: E402
from appliance.shell import Runner, child_env  # noqa: E402
from bench.outputs import start_run, write_outputs  # noqa: E402
from bench.prepare_bench import free_tcp_port, machine_facts  # noqa: E402
from bench.runtime_bench import wait_for_pool  # noqa: E402
from tests.e2e.harness import Appliance  # noqa: E402

SHOP = ROOT / "tests" / "e2e" / "changelogs" / "shop"
ARGS = ["update", "--changelog-file", "changelog.xml", "--contexts", "prod"]
HITS = 10
COLD_REPEATS = 3
INSTANCE_PORTS = (29400, 29599)


def submit_and_wait(app: Appliance, project: Path) -> tuple[dict, float]:
    """Submit, poll to the end, connect to the DSN; seconds from POST to a usable DSN."""
    started = time.perf_counter()
    response = app.submit_lb(ARGS, project)
    assert response.status_code == 201, response.text
    status = response.json() if response.json().get("result") else app.wait(response.json()["job_id"], timeout=600)
    assert status["status"] == "succeeded", status
    with psycopg2.connect(status["result"]["dsn"]) as conn, conn.cursor() as cur:
        cur.execute("select 1")
    return app.get(f"/v1/prepare-jobs/{status['job_id']}").json(), time.perf_counter() - started


def task_seconds(status: dict, prefix: str) -> list[float]:
    def seconds(stamp: str) -> float:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return [seconds(t["finished_at"]) - seconds(t["started_at"]) for t in status["tasks"]
            if t["task_id"].startswith(prefix)]


def variant(project: Path, into: Path, n: int) -> Path:
    """The project with its first changeset's id changed: the same work, none of it cached."""
    shutil.copytree(project, into)
    changelog = into / "changelog.xml"
    changelog.write_text(changelog.read_text().replace('<changeSet id="1" ', f'<changeSet id="1-{n}" ', 1))
    return into


def fresh_instance(app: Appliance, project: Path) -> Connection:
    status = app.prepare(["-c", f"select {time.time_ns()}"], project)  # a new state on the base
    dsn = urlsplit(status["result"]["dsn"])
    return Connection(f"jdbc:postgresql://{dsn.hostname}:{dsn.port}{dsn.path}", dsn.username, dsn.password)


def plain_update(app: Appliance, project: Path, cli: LiquibaseCli) -> float:
    """``liquibase update`` of every changeset as a user runs it, against an instance of the base:
    the distribution's own launcher (with the appliance's JAVA_OPTS, which only make it faster)."""
    connection = fresh_instance(app, project)
    argv = [str(cli.launcher), *cli.arguments(parse_liquibase_args(ARGS), connection, sql_only=False)]
    env = child_env(lang="C.UTF-8", JAVA_OPTS=cli.java_opts, LIQUIBASE_COMMAND_PASSWORD=connection.password)
    started = time.perf_counter()
    Runner()(argv, env=env, cwd=project)
    return time.perf_counter() - started


def jvm_overhead(app: Appliance, project: Path, cli: LiquibaseCli) -> tuple[float, list[float]]:
    """(one ``update`` of every changeset, each of the ``update-count --count=1`` runs), seconds,
    as the appliance starts Liquibase."""
    def fresh() -> Connection:
        return fresh_instance(app, project)

    command = parse_liquibase_args(ARGS)
    started = time.perf_counter()
    cli.run(command, fresh(), cwd=project)
    all_at_once = time.perf_counter() - started
    one, target, each = dataclasses.replace(command, command="update-count", count=1), fresh(), []
    for _ in range(10):
        started = time.perf_counter()
        cli.run(one, target, cwd=project)
        each.append(time.perf_counter() - started)
    return all_at_once, each


def main() -> int:
    base = start_run("sqlrs-lb-bench-", "it mounts a btrfs image and runs Postgres as another user")
    if base is None:
        return 2
    project = base / "shop"
    shutil.copytree(SHOP, project)
    settings = Settings()
    cli = LiquibaseCli(Runner(), settings.liquibase_home, java_opts=settings.liquibase_java_opts,
                       java_home=settings.java_home)
    baseline = Appliance(base / "baseline", free_tcp_port(), port_range=INSTANCE_PORTS,
                         extra_env={"SQLRS_LIQUIBASE_ONE_JVM_PER_RUN": "false"})
    try:
        baseline.start()
        per_changeset, per_changeset_seconds = submit_and_wait(baseline, project)
    finally:
        baseline.destroy()
    app = Appliance(base / "data", free_tcp_port(), port_range=INSTANCE_PORTS,
                    extra_env={"SQLRS_WARM_POOL_SIZE": "2"})
    try:
        app.start()
        cold, cold_seconds = submit_and_wait(app, project)
        # More cold builds with the base already there (as on any appliance after its first):
        # each of a copy whose first changeset has another id, so none of its states exists yet.
        colds_on_base = [submit_and_wait(app, variant(project, base / f"shop-{n}", n))[1] for n in range(COLD_REPEATS)]
        hits = []
        for _ in range(HITS):
            wait_for_pool(app, cold["result"]["state_id"], 2, timeout=60)
            status, seconds = submit_and_wait(app, project)
            assert all(t["cached"] for t in status["tasks"] if t["task_id"].startswith("execute-"))
            hits.append(seconds)
            app.delete(f"/v1/instances/{status['result']['instance_id']}")
        all_at_once, each = jvm_overhead(app, project, cli)
        plain = plain_update(app, project, cli)
    finally:
        app.destroy()
        shutil.rmtree(base, ignore_errors=True)
    steps = task_seconds(per_changeset, "execute-")
    plan = task_seconds(per_changeset, "plan-liquibase")[0]
    hit_p50 = statistics.median(hits)
    on_base = statistics.median(colds_on_base)
    overhead = (sum(each) - all_at_once) / (len(each) - 1)
    reference = per_changeset_seconds
    text = "\n".join([
        "# prepare:lb: ten changesets (XML, YAML, formatted SQL, JSON)", "", machine_facts(), "",
        "| what | seconds | vs one Liquibase per changeset |", "|---|---|---|",
        f"| cold build, one Liquibase per changeset: POST to usable DSN | {reference:.2f} | 1.00 |",
        f"| of which planning (`update-sql` on a cluster at the base) | {plan:.2f} | {plan / reference:.3f} |",
        f"| of which per changeset (`update-count --count=1`, stop, snapshot), median | "
        f"{statistics.median(steps):.2f} | {statistics.median(steps) / reference:.3f} |",
        f"| cold build, one Liquibase for the run (a fork per boundary), the base made first | {cold_seconds:.2f} "
        f"| {cold_seconds / reference:.3f} |",
        f"| cold build, one Liquibase for the run, the base already there, median of {COLD_REPEATS} | "
        f"{on_base:.2f} | {on_base / reference:.3f} |",
        f"| repeat (plan cache + warm pool), p50 of {HITS} | {hit_p50:.3f} | {hit_p50 / reference:.4f} |",
        f"| repeat, max | {max(hits):.3f} | {max(hits) / reference:.4f} |", "",
        "| the target | seconds |", "|---|---|",
        f"| plain `liquibase update` of all 10 (the distribution's launcher) against an instance of the base | "
        f"{plain:.2f} |",
        f"| **cold build for the run / plain update** (target ≤ 2), the base made first | "
        f"**{cold_seconds / plain:.2f}** |",
        f"| **cold build for the run / plain update** (target ≤ 2), the base already there | **{on_base / plain:.2f}** |",
        "",
        "| JVM runs against an instance of the base | seconds | per changeset |", "|---|---|---|",
        f"| one `update` applying all 10 | {all_at_once:.2f} | {all_at_once / 10:.2f} |",
        f"| 10 × `update-count --count=1` | {sum(each):.2f} | {statistics.median(each):.2f} (median) |",
        f"| overhead of one more JVM per changeset | {overhead:.2f} | {overhead / (all_at_once / 10):.1f}× "
        "a changeset's share of the single run |", ""])
    write_outputs(ROOT / "bench" / "out", "liquibase", text,
                  samples=[{"per_changeset_cold_seconds": per_changeset_seconds, "cold_seconds": cold_seconds,
                            "cold_on_base_seconds": colds_on_base,
                            "plan_seconds": plan, "step_seconds": steps,
                            "hit_seconds": hits, "update_all_seconds": all_at_once, "update_count_1_seconds": each,
                            "plain_update_seconds": plain}])
    return 0


if __name__ == "__main__":
    sys.exit(main())
