"""``Client``: the appliance's v1 API from ordinary (blocking) code, on an ``httpx.Client``."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from sqlrs_client import calls, prepare
from sqlrs_client.calls import Answer, Call, Flow, T
from sqlrs_client.follow import (
    MAX_RECONNECTS,
    TRANSFER_POLL_SECONDS,
    Progress,
    Replay,
    apply_event,
    is_done,
    stream_ended,
    transfer_moved,
)
from sqlrs_client.settings import ClientSettings
from sqlrs_client.types import (
    Artifact,
    AuditEntry,
    CreatedToken,
    DeleteResult,
    Event,
    Instance,
    Job,
    JobAccepted,
    JobEntry,
    JobResult,
    OrgUsage,
    Project,
    Share,
    State,
    Task,
    Token,
    Transfer,
)


class Client:
    """The v1 API of one appliance, as one org's member (the token's).

    ``url`` and ``token`` default to ``SQLRS_URL`` and ``SQLRS_TOKEN``/``SQLRS_TOKEN_FILE``; on
    https, ``ca_cert`` (default ``SQLRS_CA_CERT``) names the CA certificate to trust instead of
    the system's store.
    Every failure raises a :class:`~sqlrs_client.SqlrsError` carrying the API's ``code``.
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, url: str | None = None, token: str | None = None, *, org: str | None = None,
                 transport: httpx.BaseTransport | None = None, user_agent: str | None = None,
                 ca_cert: str | os.PathLike[str] | None = None):
        self.settings = ClientSettings.resolve(url, token, org, user_agent, ca_cert=ca_cert)
        self.url = self.settings.url
        self._http = httpx.Client(transport=transport, **self.settings.httpx_options())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- prepare ---------------------------------------------------------------------------
    def submit(self, request: prepare.PrepareRequest) -> JobAccepted:
        """Create the job ``request`` describes, uploading its bundle if the appliance lacks it."""
        return self.run(prepare.submit(request))

    def prepare_psql(self, psql_args: list[str], *, cwd: Path | str = ".", **options: Any) -> JobResult:
        """Prepare the state ``psql_args`` build (from files under ``cwd``) and an instance of
        it; wait for the job. Options: ``image``, ``stdin``, ``ttl_seconds``, ``name``, ``priority``."""
        return self.wait_for_result(self.submit(prepare.psql_request(psql_args, cwd=cwd, **options)))

    def prepare_liquibase(self, liquibase_args: list[str], project: Path | str, **options: Any) -> JobResult:
        """Prepare the state Liquibase builds from ``project`` and an instance of it; wait."""
        return self.wait_for_result(self.submit(prepare.liquibase_request(liquibase_args, project, **options)))

    def wait_for_result(self, accepted: JobAccepted) -> JobResult:
        """The instance a prepare job made: at once when the appliance answered with it."""
        if (result := prepare.answered_at_admission(accepted)) is not None:
            return result
        return prepare.result_of(self.wait(accepted["job_id"]))

    # -- jobs ------------------------------------------------------------------------------
    def job(self, job_id: str) -> Job:
        return self.run(calls.get(f"/v1/prepare-jobs/{job_id}"))

    def jobs(self, *, status: str | None = None, job: str | None = None, at_most: int | None = None) -> list[JobEntry]:
        return self.run(calls.every_row("/v1/prepare-jobs", at_most=at_most, status=status, job=job))

    def tasks(self, *, job: str | None = None, at_most: int | None = None) -> list[Task]:
        return self.run(calls.every_row("/v1/tasks", at_most=at_most, job=job))

    def cancel(self, job_id: str) -> calls.Cancelled:
        """Ask for the job to stop; ``requested`` is False when it had already finished."""
        return self.run(calls.cancel(job_id))

    def delete_job(self, job_id: str, *, force: bool = False, dry_run: bool = False) -> DeleteResult:
        return self.run(calls.delete(f"/v1/prepare-jobs/{job_id}", ok=calls.DELETE_OK, force=force, dry_run=dry_run))

    def events(self, job_id: str) -> Iterator[Event]:
        """Every event of the job from the first, then live; ends when the job is over."""
        call = calls.events_call(job_id)
        try:
            with self._http.stream(call.method, call.path, headers=call.headers,
                                   timeout=self.settings.stream_timeout()) as response:
                if response.status_code != 200:
                    response.read()
                    calls.answer_of(call, response.status_code, response.reason_phrase, response.content, {})
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.TransportError as exc:
            raise self.settings.unreachable(exc) from None

    def follow(self, job_id: str) -> Iterator[Progress]:
        """The job's status as it moves, from now until it is over (the last one is final)."""
        job = self.job(job_id)
        yield Progress(job)
        replay = Replay()
        for _attempt in range(MAX_RECONNECTS + 1):
            if is_done(job):
                return
            replay.reopened()
            for event in self.events(job_id):
                if not replay.is_new():
                    continue
                if event.get("type") == "log" and event.get("message"):
                    yield Progress(job, event["message"])
                    continue
                if not apply_event(job, event):
                    job = self.job(job_id)
                yield Progress(job)
            job = self.job(job_id)
            yield Progress(job)
        if not is_done(job):
            raise stream_ended(job_id)

    def wait(self, job_id: str) -> Job:
        """The job's status once it is over (succeeded, failed or cancelled)."""
        job = None
        for progress in self.follow(job_id):
            job = progress.job
        assert job is not None
        return job

    # -- instances and states --------------------------------------------------------------
    def instances(self, *, id_prefix: str | None = None, at_most: int | None = None) -> list[Instance]:
        return self.run(calls.every_row("/v1/instances", at_most=at_most, id_prefix=id_prefix))

    def instance(self, ref: str) -> Instance:
        """By id or name."""
        return self.run(calls.get(f"/v1/instances/{ref}"))

    def extend(self, ref: str, ttl_seconds: int) -> Instance:
        """A new lifetime for the instance, counted from now."""
        return self.run(calls.post(f"/v1/instances/{ref}/extend", {"ttl_seconds": ttl_seconds}))

    def delete_instance(self, ref: str, *, force: bool = False, dry_run: bool = False) -> DeleteResult:
        """``outcome`` says what happened: ``blocked`` (sessions open; ``force`` ends them) is
        an answer, not an error."""
        return self.run(calls.delete(f"/v1/instances/{ref}", ok=calls.DELETE_OK, force=force, dry_run=dry_run))

    def states(self, *, id_prefix: str | None = None, at_most: int | None = None) -> list[State]:
        return self.run(calls.every_row("/v1/states", at_most=at_most, id_prefix=id_prefix))

    def state(self, state_id: str) -> State:
        return self.run(calls.get(f"/v1/states/{state_id}"))

    def delete_state(self, state_id: str, *, recurse: bool = False, force: bool = False,
                     dry_run: bool = False) -> DeleteResult:
        return self.run(calls.delete(f"/v1/states/{state_id}", ok=calls.DELETE_OK, recurse=recurse, force=force,
                                     dry_run=dry_run))

    def explain(self, request: prepare.PrepareRequest) -> dict[str, Any]:
        """Which steps of ``request`` the cache holds and which would be built; nothing runs."""
        return self.run(prepare.explain(request))

    # -- the appliance ---------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self.run(calls.get("/v1/health"))

    def readiness(self) -> dict[str, Any]:
        """Each check and whether all pass (``ok``), also while the appliance is not ready."""
        return self.run(calls.readiness())

    def whoami(self) -> dict[str, Any]:
        return self.run(calls.get("/v1/whoami"))

    def usage(self, org: str) -> OrgUsage:
        return self.run(calls.get(f"/v1/orgs/{org}/usage"))

    def cache_status(self) -> dict[str, Any]:
        return self.run(calls.get("/v1/cache/status"))

    def get(self, path: str, **params: Any) -> Any:
        """Any GET of the API, for what has no method of its own yet."""
        return self.run(calls.get(path, **params))

    # -- the org: tokens, quota, projects, audit ----------------------------------------------
    def tokens(self, org: str) -> list[Token]:
        """The org's API tokens (admins), never their secrets."""
        return self.run(calls.every_row(f"/v1/orgs/{org}/tokens"))

    def create_token(self, org: str, name: str, *, role: str = "member",
                     ttl_seconds: int | None = None) -> CreatedToken:
        """A new token; its secret (``token``) is in this answer only."""
        body = {"name": name, "role": role, **({"ttl_seconds": ttl_seconds} if ttl_seconds else {})}
        return self.run(calls.post(f"/v1/orgs/{org}/tokens", body))

    def revoke_token(self, org: str, token_id: str) -> Token:
        return self.run(calls.delete(f"/v1/orgs/{org}/tokens/{token_id}"))

    def set_quota(self, org: str, **limits: int | float | None) -> OrgUsage:
        """Change the limits given (operators); None returns one to the appliance default."""
        return self.run(calls.put(f"/v1/orgs/{org}/quota", limits))

    def projects(self) -> list[Project]:
        return self.run(calls.every_row("/v1/projects"))

    def create_project(self, name: str, repo_path: str) -> Project:
        return self.run(calls.post("/v1/projects", {"name": name, "repo_path": repo_path}))

    def audit(self, *, since: str | None = None, action: str | None = None, org: str | None = None,
              at_most: int | None = None) -> list[AuditEntry]:
        return self.run(calls.every_row("/v1/audit", at_most=at_most, since=since, action=action, org=org))

    # -- sharing and moving states -----------------------------------------------------------
    def shares(self, state_id: str) -> list[Share]:
        return self.run(calls.every_row(f"/v1/states/{state_id}/shares"))

    def share(self, state_id: str, org: str) -> Share:
        """Let ``org`` use the state read-only (as a base for its own prepares too)."""
        return self.run(calls.post(f"/v1/states/{state_id}/shares", {"org": org}))

    def unshare(self, state_id: str, org: str) -> dict[str, Any]:
        return self.run(calls.delete(f"/v1/states/{state_id}/shares/{org}"))

    def export_state(self, state_id: str) -> Transfer:
        """Have the state streamed to the object store (by a worker of a host holding it): the
        transfer, queued (or already under way), or succeeded when the state was exported already
        (its ``manifest``: another installation imports the state by id). See :meth:`wait_transfer`."""
        return self.run(calls.post(f"/v1/states/{state_id}/export"))

    def import_state(self, state_id: str) -> Transfer:
        """Have an exported state (and the chain it needs) brought onto the appliance: the transfer,
        queued, or succeeded when the org has the state already. Refused at once (``not_found``,
        ``unsigned_manifest``, ``untrusted_signature``, ``bad_signature``) when its export is
        missing or not trusted."""
        return self.run(calls.post("/v1/states/import", {"state_id": state_id}))

    def transfer(self, transfer_id: str) -> Transfer:
        return self.run(calls.get(f"/v1/transfers/{transfer_id}"))

    def follow_transfer(self, transfer_id: str, *, poll_seconds: float = TRANSFER_POLL_SECONDS
                        ) -> Iterator[Transfer]:
        """The transfer each time its status or progress moved, until it is over (the last one)."""
        before: Transfer | None = None
        while True:
            now = self.transfer(transfer_id)
            if transfer_moved(before, now):
                yield now
            if now["status"] in ("succeeded", "failed"):
                return
            before = now
            time.sleep(poll_seconds)

    def wait_transfer(self, transfer_id: str, *, poll_seconds: float = TRANSFER_POLL_SECONDS) -> Transfer:
        """The transfer once it is over: check ``status`` (``failed`` carries ``error``)."""
        seen: list[Transfer] = []
        for now in self.follow_transfer(transfer_id, poll_seconds=poll_seconds):
            seen[:] = [now]
        return seen[0]

    # -- a job's artifacts ---------------------------------------------------------------------
    def artifacts(self, job_id: str) -> list[Artifact]:
        return self.run(calls.get(f"/v1/prepare-jobs/{job_id}/artifacts"))

    def artifact(self, job_id: str, name: str) -> bytes:
        """One artifact's bytes (``logs/plan.log``, ``report.json``, …)."""
        return self.run(calls.download(f"/v1/prepare-jobs/{job_id}/artifacts/{name}"))

    # -- driving flows ---------------------------------------------------------------------
    def run(self, flow: Flow[T]) -> T:
        return calls.drive(flow, self._send)

    def _send(self, call: Call) -> Answer:
        try:
            response = self._http.request(call.method, call.path, params=call.params, json=call.json,
                                          content=call.content, headers=call.headers)
        except httpx.TransportError as exc:
            raise self.settings.unreachable(exc) from None
        return calls.answer_of(call, response.status_code, response.reason_phrase, response.content,
                               response.links)
