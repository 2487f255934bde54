"""The stack the fault suite breaks: a real appliance (API, workers, reconciler on a btrfs store),
its own redis-server and a PostgreSQL Control DB — each one a process the suite can kill and
start again — plus the checks that count what a fault cost."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from redis import Redis
from redis.exceptions import RedisError

from appliance.runtime.process import ProcessRuntime
from appliance.shell import Runner
from tests.e2e.harness import TERMINAL, Appliance
from tests.support.polling import wait_until
from tests.support.ports import free_tcp_port
from tests.support.processes import processes

LIVE_INSTANCE = ("starting", "active", "pooled", "binding")
BOUND_SECONDS = 60.0  # every job must be terminal this long after its fault (job_lost 4 s + passes)
# Instance port ranges, one per rig the session starts (the conftest's and the supervisor kills').
PORT_RANGES = iter([(29000 + 100 * i, 29099 + 100 * i) for i in range(20)])


class RedisServer:
    """redis-server without persistence: a restart is a restart *empty*."""

    def __init__(self) -> None:
        self.port = free_tcp_port()
        password = uuid.uuid4().hex  # an operator's Redis on TCP needs one (the appliance refuses it otherwise)
        self.url = f"redis://:{password}@127.0.0.1:{self.port}/0"
        self.config = Path(tempfile.mkdtemp(prefix="sqlrs-faults-redis-")) / "redis.conf"  # 0700 dir
        self.config.write_text(f"port {self.port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\n"
                               f"requirepass {password}\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(["redis-server", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if Redis.from_url(self.url, socket_connect_timeout=1).ping():
                    return
            except RedisError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class Outcome:
    """One row of the fault table."""

    kind: str
    injected: int = 0
    jobs: int = 0
    lost: int = 0
    stuck: int = 0
    leaked_volumes: int = 0
    leaked_processes: int = 0
    leaked_containers: int | None = None  # None: no containers on this runtime
    leaked_ports: int = 0
    bad_states: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.stuck or self.leaked_volumes or self.leaked_processes
                    or self.leaked_containers or self.leaked_ports or self.bad_states)


class FaultRig:
    def __init__(self, appliance: Appliance, redis: RedisServer, database_url: str, port_range: tuple[int, int]):
        self.app, self.redis, self.database_url, self.port_range = appliance, redis, database_url, port_range
        self.stray_groups: list[int] = []  # process groups of supervisors killed alone (their workers live on)
        self.pg_bin = ProcessRuntime(Runner()).bin_dir

    # -- driving -----------------------------------------------------------------------------
    def steps(self, tmp: Path, *sql: str) -> list[str]:
        """psql args for one job whose first step is unique, so every job builds."""
        marker = uuid.uuid4().hex
        args = []
        for n, text in enumerate(sql):
            (tmp / f"{marker}-{n}.sql").write_text(f"/* {marker} */ {text}\n")  # in the statement: hashed
            args += ["-f", f"{marker}-{n}.sql"]
        return args

    def submit_liquibase(self, tmp: Path, *sql: str) -> str:
        """A Liquibase job of one changeset per statement, the first unique so every job builds."""
        marker = uuid.uuid4().hex
        changesets = "\n".join(f'  <changeSet id="{n}" author="rig"><sql>{text}</sql></changeSet>'
                               for n, text in enumerate([f"select '{marker}'", *sql], start=1))
        (tmp / "changelog.xml").write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n<databaseChangeLog '
            'xmlns="http://www.liquibase.org/xml/ns/dbchangelog" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="http://www.liquibase.org/xml/ns/dbchangelog '
            'http://www.liquibase.org/xml/ns/dbchangelog/dbchangelog-4.20.xsd">\n'
            f"{changesets}\n</databaseChangeLog>\n")
        response = self.app.submit_lb(["update", "--changelog-file", "changelog.xml"], tmp)
        assert response.status_code == 201, response.text
        return response.json()["job_id"]

    def one_running_four_queued(self, tmp: Path) -> list[str]:
        """Five two-step jobs with one allowed to run at a time; returns once one runs."""
        assert self.app.put("/v1/orgs/default/quota", json={"max_running_jobs": 1}).status_code == 200
        jobs = [self.submit(tmp, "select pg_sleep(1);", "create table t (i int);") for _ in range(5)]
        wait_until(lambda: self.query("select 1 from prepare_job where status = 'running'"), 60, "a running job")
        return jobs

    def submit(self, tmp: Path, *sql: str) -> str:
        response = self.app.submit(self.steps(tmp, *sql), tmp)
        assert response.status_code == 201, response.text
        return response.json()["job_id"]

    def arm(self, point: str) -> None:
        directory = self.app.data_dir / "failpoints"
        directory.mkdir(exist_ok=True)
        (directory / f"{point}.armed").touch()

    def held_worker(self, point: str, timeout: float = 60.0) -> int:
        """The pid of the worker holding at ``point``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for marker in (self.app.data_dir / "failpoints").glob(f"{point}.[0-9]*"):
                pid = int(marker.read_text())
                marker.unlink()
                return pid
            time.sleep(0.05)
        raise AssertionError(f"no worker reached the {point} failpoint")

    def worker_of(self, job_id: str) -> int:
        (worker,) = self.query("select worker from prepare_job where job_id = %s", job_id)[0]
        return int(worker.rsplit(":", 1)[1])

    def wait_for_event(self, job_id: str, predicate, timeout: float = 60.0) -> None:
        self.app.first_event(job_id, predicate, timeout=timeout)

    def kill_supervisor_only(self) -> None:
        """SIGKILL the supervisor (or the API) process alone: the workers `up` started die with it,
        workers started apart go on."""
        self.stray_groups.append(self.app.process.pid)
        os.kill(self.app.process.pid, signal.SIGKILL)
        self.app.process.wait()

    @contextlib.contextmanager
    def workers_apart(self, count: int = 2):
        """The split deployment for the block: `api`, `reconciler` and ``count`` `sqlrs-appliance
        worker` processes of their own (as systemd units run them), so the API can die alone; `up`
        again after."""
        self.app.stop()
        apart = [subprocess.Popen([sys.executable, "-m", "appliance.service.main", command],
                                  env={**self.app.env, "SQLRS_DATA_DIR": str(self.app.data_dir)},
                                  stdout=self.app.log, stderr=subprocess.STDOUT, start_new_session=True)
                 for command in ["reconciler"] + ["worker"] * count]
        self.stray_groups += [p.pid for p in apart]
        try:
            self.app.start(command="api")
            yield
        finally:
            self.app.stop()
            for process in apart:
                process.terminate()
                process.wait()
            self.app.start()

    # -- counting ----------------------------------------------------------------------------
    def query(self, sql: str, *params) -> list[tuple]:
        with psycopg2.connect(self.database_url) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        conn.close()
        return rows

    def settle(self, job_ids: list[str], bound: float = BOUND_SECONDS) -> dict[str, dict]:
        """Each job's final status, waiting up to ``bound``; non-terminal ones come back as they are."""
        deadline, final = time.monotonic() + bound, {}
        while time.monotonic() < deadline and len(final) < len(job_ids):
            for job_id in set(job_ids) - set(final):
                response = self.app.get(f"/v1/prepare-jobs/{job_id}")
                if response.status_code == 200 and response.json()["status"] in TERMINAL:
                    final[job_id] = response.json()
            time.sleep(0.2)
        for job_id in set(job_ids) - set(final):
            response = self.app.get(f"/v1/prepare-jobs/{job_id}")
            final[job_id] = response.json() if response.status_code == 200 else {"status": "lost"}
        return final

    def account(self, outcome: Outcome, job_ids: list[str], bound: float = BOUND_SECONDS) -> dict[str, dict]:
        """Settle the jobs, then let the reconciler tidy up and count what is left over."""
        final = self.settle(job_ids, bound)
        outcome.jobs += len(job_ids)
        outcome.lost += sum(1 for s in final.values() if s["status"] == "lost")
        outcome.stuck += sum(1 for s in final.values() if s["status"] not in TERMINAL | {"lost"})
        deadline = time.monotonic() + 30  # a few reconciler passes, past the orphan grace
        while True:
            leaks = self.leaks()
            if not any(leaks.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        outcome.leaked_volumes += leaks["volumes"]
        outcome.leaked_processes += leaks["processes"]
        outcome.leaked_ports += leaks["ports"]
        if leaks["containers"] is not None:
            outcome.leaked_containers = (outcome.leaked_containers or 0) + leaks["containers"]
        outcome.bad_states += self.bad_states()
        outcome.notes += [f"{k}: {v}" for k, v in leaks.items() if v] + self.leak_details(leaks)
        return final

    def live_volumes(self) -> set[str]:
        rows = self.query(
            "select volume_id from volume where (purpose = 'build' and job_id in "
            "(select job_id from prepare_job where status in ('queued', 'running'))) or (purpose = 'instance' "
            "and volume_id in (select volume_id from instance where status in %s))", LIVE_INSTANCE)
        return {r[0] for r in rows}

    def leaks(self) -> dict[str, int | None]:
        store = self.app.data_dir / "store"
        live = self.live_volumes()
        on_disk = {p.name for p in store.glob("orgs/*/volumes/*") if not p.name.startswith(".")}
        unknown_states = {p.name for p in store.glob("orgs/*/states/*") if not p.name.startswith(".")} - {
            r[0] for r in self.query("select state_id from state")}
        live_ports = {r[0] for r in self.query("select port from instance where status in %s and port is not null",
                                               LIVE_INSTANCE)}
        return {"volumes": len(on_disk - live) + len(unknown_states),
                "processes": len(self._stray_processes(store, live)),
                "ports": len(listening_ports(*self.port_range) - live_ports),
                "containers": self._stray_containers(live) if self._docker() else None}

    def leak_details(self, leaks: dict) -> list[str]:
        if not any(leaks.values()):
            return []
        store = self.app.data_dir / "store"
        return [f"stray processes: {self._stray_processes(store, self.live_volumes())}"]

    def _stray_processes(self, store: Path, live: set[str]) -> list[str]:
        """Postgres servers on clones no live row owns, and build psqls outliving their job."""
        stray = []
        for pid, argv, env in processes():
            if argv[:1] and argv[0].endswith("postgres") and "-D" in argv:
                data = argv[argv.index("-D") + 1]
                if data.startswith(str(store)) and Path(data).parent.name not in live:  # <clone>/pgdata
                    stray.append(f"{pid} {' '.join(argv)}")
            elif argv[:1] and argv[0].endswith("psql") and env.get("PGAPPNAME") == "sqlrs-build":
                if not self.query("select 1 from prepare_job where status = 'running'"):
                    stray.append(f"{pid} {' '.join(argv)}")
            elif argv[:1] and argv[0].endswith("java") and any("liquibase" in a for a in argv):
                if not self.query("select 1 from prepare_job where status = 'running'"):
                    stray.append(f"{pid} liquibase")
        return stray

    def _docker(self) -> bool:
        return self.app.env.get("SQLRS_RUNTIME") in ("docker", "nomad")

    def _stray_containers(self, live: set[str]) -> int:
        out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=sqlrs.host={self.host_id}",
                              "--format", "{{json .Labels}}"], capture_output=True, text=True).stdout
        running_jobs = {r[0] for r in self.query("select job_id from prepare_job where status = 'running'")}
        live_instances = {r[0] for r in self.query("select instance_id from instance where status in %s",
                                                   LIVE_INSTANCE)}
        stray = 0
        for line in out.splitlines():
            labels = dict(kv.split("=", 1) for kv in json.loads(line).split(",") if "=" in kv)
            owner_alive = (labels.get("sqlrs.instance") in live_instances if labels.get("sqlrs.instance")
                           else labels.get("sqlrs.job") in running_jobs)
            stray += not owner_alive
        return stray

    @property
    def host_id(self) -> str:
        return self.app.env.get("SQLRS_HOST_ID", "")

    def bad_states(self) -> int:
        """States whose row or snapshot is missing, or whose snapshot is not a clean shutdown."""
        bad = 0
        for org, state_id in self.query("select org, state_id from state"):
            path = self.app.data_dir / "store" / "orgs" / org / "states" / state_id / "pgdata"
            control = subprocess.run([str(self.pg_bin / "pg_controldata"), str(path)], capture_output=True,
                                     text=True, env={**os.environ, "LC_ALL": "C"})
            bad += "Database cluster state:               shut down\n" not in control.stdout
        return bad


def listening_ports(low: int, high: int) -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == "0A" and low <= port <= high:  # LISTEN
                ports.add(port)
    return ports


def tear_down(rig: FaultRig, logs: Path) -> None:
    """Kill what the suite left running on its own, then destroy the appliance, keeping its logs."""
    for group in rig.stray_groups:  # workers of a supervisor the suite killed alone
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    rig.app.destroy(keep_logs_in=logs)
