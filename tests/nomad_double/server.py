"""A strict, single-node Nomad HTTP API double whose docker tasks run for real.

It speaks just the endpoints the nomad runtime uses, with Nomad's status codes, headers and
JSON shapes, enforces the ACL token and namespaces when configured, and reports allocation
state from the real container, so a container killed from outside shows up as a failed
allocation exactly as it would under Nomad.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from .docker_tasks import DockerTasks, TaskFailure
from .validation import InvalidJob, validate_docker_config, validate_register_body


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Cluster:
    """Jobs and allocations of one fake node; containers are the source of task state."""

    def __init__(self, *, node_id: str, datacenter: str, namespaces: list[str], data_dir: Path):
        self.node_id = node_id
        self.data_dir = data_dir
        self.datacenter = datacenter
        self.namespaces = set(namespaces)
        self.tasks = DockerTasks()
        self.lock = threading.RLock()
        self.index = 1
        self.jobs: dict[tuple[str, str], dict] = {}
        self.allocs: dict[str, dict] = {}

    def _next_index(self) -> int:
        self.index += 1
        return self.index

    # --- jobs ------------------------------------------------------------------------------
    def register(self, body: Any, namespace_param: str | None, path_id: str | None) -> dict:
        job = validate_register_body(body)
        if path_id is not None and job["ID"] != path_id:
            raise InvalidJob("Job ID does not match name")
        namespace = namespace_param or body.get("Namespace") or job.get("Namespace") or "default"
        if namespace not in self.namespaces:
            raise InvalidJob(f'job "{job["ID"]}" is in nonexistent namespace "{namespace}"')
        job = {**job, "Namespace": namespace, "Name": job.get("Name") or job["ID"],
               "Type": job.get("Type") or "service"}
        spec = json.dumps(job, sort_keys=True)
        with self.lock:
            index = self._next_index()
            key = (namespace, job["ID"])
            old = self.jobs.get(key)
            if old is not None and old["spec"] == spec and not old["job"].get("Stop"):
                # Nomad: re-registering an unchanged job places nothing new (batch re-run pitfall).
                return {"EvalID": str(uuid.uuid4()), "EvalCreateIndex": index,
                        "JobModifyIndex": old["job"]["JobModifyIndex"], "Warnings": "", "Index": index,
                        "LastContact": 0, "KnownLeader": True, "NextToken": ""}
            if old is not None:
                self._stop_allocs(old)
            version = old["job"]["Version"] + 1 if old else 0
            job.update({"Stop": False, "Version": version, "SubmitTime": time.time_ns(),
                        "CreateIndex": old["job"]["CreateIndex"] if old else index,
                        "ModifyIndex": index, "JobModifyIndex": index, "Status": "pending",
                        "StatusDescription": ""})
            record = {"job": job, "spec": spec, "allocs": list(old["allocs"]) if old else []}
            self.jobs[key] = record
            eval_id = str(uuid.uuid4())
            if self._placeable(job):
                for group in job["TaskGroups"]:
                    for i in range(group.get("Count") if group.get("Count") is not None else 1):
                        record["allocs"].append(self._place(job, group, i, eval_id, index))
        return {"EvalID": eval_id, "EvalCreateIndex": index, "JobModifyIndex": index, "Warnings": "",
                "Index": index, "LastContact": 0, "KnownLeader": True, "NextToken": ""}

    def _placeable(self, job: dict) -> bool:
        """Constraints and datacenters of the one node; an unplaceable job stays pending."""
        if job.get("Datacenters") and not any(dc in ("*", self.datacenter) for dc in job["Datacenters"]):
            return False
        targets = {"${node.unique.id}": self.node_id, "${node.datacenter}": self.datacenter,
                   "${attr.kernel.name}": "linux"}
        constraints = list(job.get("Constraints") or [])
        for group in job["TaskGroups"]:
            constraints += group.get("Constraints") or []
            for task in group.get("Tasks") or []:
                constraints += task.get("Constraints") or []
        for constraint in constraints:
            if constraint is None:
                continue
            operand = constraint.get("Operand") or "="
            left = targets.get(constraint.get("LTarget", ""), constraint.get("LTarget"))
            if operand in ("=", "==", "is") and left != constraint.get("RTarget"):
                return False
            if operand in ("!=", "not") and left == constraint.get("RTarget"):
                return False
        return True

    def _place(self, job: dict, group: dict, index_in_group: int, eval_id: str, index: int) -> str:
        alloc_id = str(uuid.uuid4())
        tasks = group.get("Tasks") or []
        alloc = {"ID": alloc_id, "EvalID": eval_id, "Name": f"{job['ID']}.{group['Name']}[{index_in_group}]",
                 "Namespace": job["Namespace"], "NodeID": self.node_id, "NodeName": "nomad-double",
                 "JobID": job["ID"], "TaskGroup": group["Name"], "DesiredStatus": "run",
                 "DesiredDescription": "", "CreateIndex": index, "ModifyIndex": index,
                 "CreateTime": time.time_ns(), "ModifyTime": time.time_ns(), "JobVersion": job["Version"],
                 "_job": job, "_group": group, "_containers": {}, "_failures": {},
                 "_events": {t["Name"]: [_event("Received", "Task received by client")] for t in tasks}}
        self.allocs[alloc_id] = alloc
        threading.Thread(target=self._run_tasks, args=(alloc,), daemon=True).start()
        return alloc_id

    def _run_tasks(self, alloc: dict) -> None:
        for task in alloc["_group"].get("Tasks") or []:
            name = task["Name"]
            try:
                if task.get("Driver") != "docker":
                    raise TaskFailure("Driver Failure",
                                      f"the Nomad double only runs the docker driver, not {task.get('Driver')!r}")
                if len(alloc["_group"]["Tasks"]) > 1:
                    raise TaskFailure("Driver Failure", "the Nomad double runs one task per group")
                try:
                    validate_docker_config(task.get("Config"))
                except InvalidJob as exc:
                    raise TaskFailure("Failed Validation", str(exc)) from None
                alloc["_events"][name].append(_event("Task Setup", "Building Task Directory"))
                with self.lock:
                    if alloc["DesiredStatus"] != "run":
                        return
                task_dir = self.data_dir / "allocs" / alloc["ID"] / name
                container_id = self.tasks.start(alloc_id=alloc["ID"], job=alloc["_job"], group=alloc["_group"],
                                                task=task, task_dir=task_dir)
                with self.lock:
                    alloc["_containers"][name] = container_id
                    alloc["_events"][name].append(_event("Started", "Task started by client"))
                    stop_now = alloc["DesiredStatus"] != "run"
                if stop_now:
                    self.tasks.kill(container_id, task.get("KillSignal"), task.get("KillTimeout") or 5_000_000_000)
            except Exception as exc:
                kind = exc.event if isinstance(exc, TaskFailure) else "Driver Failure"
                with self.lock:
                    alloc["_failures"][name] = str(exc)
                    alloc["_events"][name].append(_event(kind, str(exc), failed=True))

    def job(self, namespace: str, job_id: str) -> dict:
        with self.lock:
            record = self.jobs.get((namespace, job_id))
            if record is None:
                raise HttpError(404, "job not found")
            statuses = [self.alloc_view(a)["ClientStatus"] for a in record["allocs"] if a in self.allocs]
            job = dict(record["job"])
        if any(s in ("pending", "running") for s in statuses):
            job["Status"] = "running"
        elif statuses or job.get("Stop"):
            job["Status"] = "dead"
        return job

    def list_jobs(self, namespace: str, prefix: str) -> list[dict]:
        """JobListStubs, as Nomad lists them: no Meta unless asked (this client never asks)."""
        with self.lock:  # one snapshot, as Nomad answers from one state index: a job purged meanwhile is not half-listed
            ids = sorted(job_id for ns, job_id in self.jobs if ns == namespace and job_id.startswith(prefix))
            jobs = [self.job(namespace, job_id) for job_id in ids]
        return [{key: job.get(key) for key in ("ID", "ParentID", "Name", "Namespace", "Datacenters", "Type", "Priority",
                                               "Status", "Stop", "CreateIndex", "ModifyIndex", "JobModifyIndex")}
                for job in jobs]

    def job_allocations(self, namespace: str, job_id: str) -> list[dict]:
        with self.lock:
            record = self.jobs.get((namespace, job_id))
            if record is None:
                return []  # Nomad answers an empty list for an unknown job
            return [_stub(self.alloc_view(a)) for a in record["allocs"] if a in self.allocs]

    def deregister(self, namespace: str, job_id: str, purge: bool) -> dict:
        with self.lock:
            key = (namespace, job_id)
            record = self.jobs.get(key)
            if record is None:
                raise HttpError(404, "job not found")
            index = self._next_index()
            self._stop_allocs(record)
            record["job"].update({"Stop": True, "ModifyIndex": index, "JobModifyIndex": index})
            if purge:
                del self.jobs[key]
                for alloc_id in record["allocs"]:
                    alloc = self.allocs.pop(alloc_id, None)
                    for container_id in (alloc or {}).get("_containers", {}).values():
                        self.tasks.remove(container_id)
                    shutil.rmtree(self.data_dir / "allocs" / alloc_id, ignore_errors=True)
        return {"EvalID": str(uuid.uuid4()), "EvalCreateIndex": index, "JobModifyIndex": index, "Index": index}

    def _stop_allocs(self, record: dict) -> None:
        for alloc_id in record["allocs"]:
            alloc = self.allocs.get(alloc_id)
            if alloc is None or alloc["DesiredStatus"] != "run":
                continue
            alloc["DesiredStatus"] = "stop"
            alloc["DesiredDescription"] = "alloc is being stopped"
            for task in alloc["_group"].get("Tasks") or []:
                container_id = alloc["_containers"].get(task["Name"])
                if container_id:  # as a Nomad client does: in the background, the API answers at once
                    alloc["_events"][task["Name"]].append(_event("Killing", "Sent interrupt"))
                    threading.Thread(target=self.tasks.kill, daemon=True, args=(
                        container_id, task.get("KillSignal"), task.get("KillTimeout") or 5_000_000_000)).start()

    # --- allocations -------------------------------------------------------------------------
    def allocation(self, namespace: str, alloc_id: str) -> dict:
        with self.lock:
            alloc = self.allocs.get(alloc_id)
            if alloc is None or alloc["Namespace"] != namespace:
                raise HttpError(404, "alloc not found")
            return self.alloc_view(alloc_id)

    def alloc_view(self, alloc_id: str) -> dict:
        alloc = self.allocs[alloc_id]
        task_states: dict[str, dict] = {}
        for task in alloc["_group"].get("Tasks") or []:
            task_states[task["Name"]] = self._task_state(alloc, task["Name"])
        states = [t["State"] for t in task_states.values()]
        failed = any(t["Failed"] for t in task_states.values())
        if failed:
            client_status = "failed"
        elif states and all(s == "dead" for s in states):
            client_status = "complete"
        elif states and all(s == "running" for s in states):
            client_status = "running"
        else:
            client_status = "pending"
        view = {k: v for k, v in alloc.items() if not k.startswith("_")}
        view.update({"ClientStatus": client_status, "ClientDescription": _describe(client_status),
                     "TaskStates": task_states, "Job": alloc["_job"],
                     "AllocatedResources": _allocated_resources(alloc["_group"])})
        return view

    def _task_state(self, alloc: dict, task: str) -> dict:
        events = alloc["_events"][task]
        state = {"State": "pending", "Failed": False, "Restarts": 0, "LastRestart": None,
                 "StartedAt": None, "FinishedAt": None, "Events": events[-10:]}
        if task in alloc["_failures"]:
            state.update(State="dead", Failed=True)
            return state
        container_id = alloc["_containers"].get(task)
        if container_id is None:
            return state
        seen = self.tasks.state(container_id)
        state["StartedAt"] = seen.started_at
        if seen.status == "running":
            state["State"] = "running"
        elif seen.status in ("exited", "dead", "gone"):
            code = seen.exit_code if seen.exit_code is not None else -1
            state.update(State="dead", FinishedAt=seen.finished_at,
                         Failed=code != 0 or seen.status == "gone" or seen.oom_killed)
            if not any(e["Type"] == "Terminated" for e in events):
                message = "OOM Killed" if seen.oom_killed else f"Exit Code: {code}"
                events.append(_event("Terminated", message, details={"exit_code": str(code)}))
        return state

    def signal(self, namespace: str, alloc_id: str, body: dict) -> None:
        with self.lock:
            alloc = self.allocs.get(alloc_id)
            if alloc is None or alloc["Namespace"] != namespace:
                raise HttpError(404, "alloc not found")
            tasks = [body["Task"]] if body.get("Task") else list(alloc["_containers"])
            for task in tasks:
                if task not in alloc["_events"]:
                    raise HttpError(400, f"Failed to signal task: {task}, err: task not found")
                container_id = alloc["_containers"].get(task)
                if container_id is None or self.tasks.state(container_id).status != "running":
                    raise HttpError(400, f"Failed to signal task: {task}, err: task not running")
                alloc["_events"][task].append(_event("Signaling", f"Task being sent signal {body.get('Signal')}"))
                try:
                    self.tasks.signal(container_id, body.get("Signal") or "SIGTERM")
                except TaskFailure as exc:
                    raise HttpError(400, str(exc)) from None

    def logs(self, namespace: str, alloc_id: str, task: str | None, stream: str | None) -> bytes:
        with self.lock:
            alloc = self.allocs.get(alloc_id)
            if alloc is None or alloc["Namespace"] != namespace:
                raise HttpError(404, "alloc not found")
            if not task:
                raise HttpError(400, "must include task name")
            if stream not in ("stdout", "stderr"):
                raise HttpError(400, "must provide log type (stdout/stderr)")
            if task not in alloc["_events"]:
                raise HttpError(400, f"unknown task name {task!r}")
            container_id = alloc["_containers"].get(task)
        return self.tasks.logs(container_id, stream) if container_id else b""

    def nodes(self) -> list[dict]:
        return [{"ID": self.node_id, "Name": "nomad-double", "Address": "127.0.0.1", "Datacenter": self.datacenter,
                 "NodePool": "default", "Status": "ready", "SchedulingEligibility": "eligible", "Drain": False,
                 "Drivers": {"docker": {"Detected": True, "Healthy": True}}, "Attributes": {"kernel.name": "linux"}}]

    def shutdown(self) -> None:
        with self.lock:
            for alloc in list(self.allocs.values()):
                for container_id in alloc["_containers"].values():
                    self.tasks.remove(container_id)


def _event(kind: str, message: str, *, failed: bool = False, details: dict | None = None) -> dict:
    event = {"Type": kind, "Time": time.time_ns(), "DisplayMessage": message, "Message": message,
             "Details": dict(details or {}), "FailsTask": failed}
    if kind == "Failed Validation":
        event["ValidationError"] = message
    elif kind == "Driver Failure":
        event["DriverError"] = message
    return event


def _describe(status: str) -> str:
    return {"pending": "No tasks have started", "running": "Tasks are running",
            "complete": "All tasks have completed", "failed": "Failed tasks"}[status]


def _stub(view: dict) -> dict:
    """AllocationListStub: no Job and no AllocatedResources (the server builds it with Stub(nil))."""
    return {k: v for k, v in view.items() if k not in ("Job", "AllocatedResources")}


def _allocated_resources(group: dict) -> dict:
    ports = []
    for network in group.get("Networks") or []:
        for port in [*(network.get("ReservedPorts") or []), *(network.get("DynamicPorts") or [])]:
            ports.append({"Label": port.get("Label", ""), "Value": port.get("Value", 0), "To": port.get("To", 0),
                          "HostIP": "127.0.0.1"})
    return {"Shared": {"Ports": ports, "Networks": group.get("Networks") or [], "DiskMB": 0}, "Tasks": {}}
