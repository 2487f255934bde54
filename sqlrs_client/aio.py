"""``AsyncClient``: the same API and the same flows as :class:`~sqlrs_client.Client`, awaited,
on an ``httpx.AsyncClient``; for asyncio programs and async test suites."""
from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from sqlrs_client import calls, prepare
from sqlrs_client.calls import Answer, Call, Flow, T
from sqlrs_client.errors import SqlrsError
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


async def drive(flow: Flow[T], send) -> T:
    """:func:`sqlrs_client.calls.drive`, awaiting each answer."""
    try:
        call = next(flow)
        while True:
            try:
                answer = await send(call)
            except SqlrsError as exc:
                call = flow.throw(exc)
            else:
                call = flow.send(answer)
    except StopIteration as done:
        return done.value


class AsyncClient:
    """The v1 API of one appliance, awaited. See :class:`sqlrs_client.Client` for each method."""

    def __init__(self, url: str | None = None, token: str | None = None, *, org: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, user_agent: str | None = None,
                 ca_cert: str | os.PathLike[str] | None = None):
        self.settings = ClientSettings.resolve(url, token, org, user_agent, ca_cert=ca_cert)
        self.url = self.settings.url
        self._http = httpx.AsyncClient(transport=transport, **self.settings.httpx_options())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- prepare ---------------------------------------------------------------------------
    async def submit(self, request: prepare.PrepareRequest) -> JobAccepted:
        return await self.run(prepare.submit(request))

    async def prepare_psql(self, psql_args: list[str], *, cwd: Path | str = ".", **options: Any) -> JobResult:
        return await self.wait_for_result(await self.submit(prepare.psql_request(psql_args, cwd=cwd, **options)))

    async def prepare_liquibase(self, liquibase_args: list[str], project: Path | str, **options: Any) -> JobResult:
        return await self.wait_for_result(
            await self.submit(prepare.liquibase_request(liquibase_args, project, **options)))

    async def wait_for_result(self, accepted: JobAccepted) -> JobResult:
        if (result := prepare.answered_at_admission(accepted)) is not None:
            return result
        return prepare.result_of(await self.wait(accepted["job_id"]))

    # -- jobs ------------------------------------------------------------------------------
    async def job(self, job_id: str) -> Job:
        return await self.run(calls.get(f"/v1/prepare-jobs/{job_id}"))

    async def jobs(self, *, status: str | None = None, job: str | None = None,
                   at_most: int | None = None) -> list[JobEntry]:
        return await self.run(calls.every_row("/v1/prepare-jobs", at_most=at_most, status=status, job=job))

    async def tasks(self, *, job: str | None = None, at_most: int | None = None) -> list[Task]:
        return await self.run(calls.every_row("/v1/tasks", at_most=at_most, job=job))

    async def cancel(self, job_id: str) -> calls.Cancelled:
        return await self.run(calls.cancel(job_id))

    async def delete_job(self, job_id: str, *, force: bool = False, dry_run: bool = False) -> DeleteResult:
        return await self.run(calls.delete(f"/v1/prepare-jobs/{job_id}", ok=calls.DELETE_OK, force=force,
                                           dry_run=dry_run))

    async def events(self, job_id: str) -> AsyncIterator[Event]:
        call = calls.events_call(job_id)
        try:
            async with self._http.stream(call.method, call.path, headers=call.headers,
                                         timeout=self.settings.stream_timeout()) as response:
                if response.status_code != 200:
                    await response.aread()
                    calls.answer_of(call, response.status_code, response.reason_phrase, response.content, {})
                async for line in response.aiter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.TransportError as exc:
            raise self.settings.unreachable(exc) from None

    async def follow(self, job_id: str) -> AsyncIterator[Progress]:
        job = await self.job(job_id)
        yield Progress(job)
        replay = Replay()
        for _attempt in range(MAX_RECONNECTS + 1):
            if is_done(job):
                return
            replay.reopened()
            async for event in self.events(job_id):
                if not replay.is_new():
                    continue
                if event.get("type") == "log" and event.get("message"):
                    yield Progress(job, event["message"])
                    continue
                if not apply_event(job, event):
                    job = await self.job(job_id)
                yield Progress(job)
            job = await self.job(job_id)
            yield Progress(job)
        if not is_done(job):
            raise stream_ended(job_id)

    async def wait(self, job_id: str) -> Job:
        job = None
        async for progress in self.follow(job_id):
            job = progress.job
        assert job is not None
        return job

    # -- instances and states --------------------------------------------------------------
    async def instances(self, *, id_prefix: str | None = None, at_most: int | None = None) -> list[Instance]:
        return await self.run(calls.every_row("/v1/instances", at_most=at_most, id_prefix=id_prefix))

    async def instance(self, ref: str) -> Instance:
        return await self.run(calls.get(f"/v1/instances/{ref}"))

    async def extend(self, ref: str, ttl_seconds: int) -> Instance:
        return await self.run(calls.post(f"/v1/instances/{ref}/extend", {"ttl_seconds": ttl_seconds}))

    async def delete_instance(self, ref: str, *, force: bool = False, dry_run: bool = False) -> DeleteResult:
        return await self.run(calls.delete(f"/v1/instances/{ref}", ok=calls.DELETE_OK, force=force,
                                           dry_run=dry_run))

    async def states(self, *, id_prefix: str | None = None, at_most: int | None = None) -> list[State]:
        return await self.run(calls.every_row("/v1/states", at_most=at_most, id_prefix=id_prefix))

    async def state(self, state_id: str) -> State:
        return await self.run(calls.get(f"/v1/states/{state_id}"))

    async def delete_state(self, state_id: str, *, recurse: bool = False, force: bool = False,
                           dry_run: bool = False) -> DeleteResult:
        return await self.run(calls.delete(f"/v1/states/{state_id}", ok=calls.DELETE_OK, recurse=recurse,
                                           force=force, dry_run=dry_run))

    async def explain(self, request: prepare.PrepareRequest) -> dict[str, Any]:
        """Which steps of ``request`` the cache holds and which would be built; nothing runs."""
        return await self.run(prepare.explain(request))

    # -- the appliance ---------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        return await self.run(calls.get("/v1/health"))

    async def readiness(self) -> dict[str, Any]:
        """Each check and whether all pass (``ok``), also while the appliance is not ready."""
        return await self.run(calls.readiness())

    async def whoami(self) -> dict[str, Any]:
        return await self.run(calls.get("/v1/whoami"))

    async def usage(self, org: str) -> OrgUsage:
        return await self.run(calls.get(f"/v1/orgs/{org}/usage"))

    async def cache_status(self) -> dict[str, Any]:
        return await self.run(calls.get("/v1/cache/status"))

    async def get(self, path: str, **params: Any) -> Any:
        return await self.run(calls.get(path, **params))

    # -- the org: tokens, quota, projects, audit ----------------------------------------------
    async def tokens(self, org: str) -> list[Token]:
        """The org's API tokens (admins), never their secrets."""
        return await self.run(calls.every_row(f"/v1/orgs/{org}/tokens"))

    async def create_token(self, org: str, name: str, *, role: str = "member",
                           ttl_seconds: int | None = None) -> CreatedToken:
        """A new token; its secret (``token``) is in this answer only."""
        body = {"name": name, "role": role, **({"ttl_seconds": ttl_seconds} if ttl_seconds else {})}
        return await self.run(calls.post(f"/v1/orgs/{org}/tokens", body))

    async def revoke_token(self, org: str, token_id: str) -> Token:
        return await self.run(calls.delete(f"/v1/orgs/{org}/tokens/{token_id}"))

    async def set_quota(self, org: str, **limits: int | float | None) -> OrgUsage:
        """Change the limits given (operators); None returns one to the appliance default."""
        return await self.run(calls.put(f"/v1/orgs/{org}/quota", limits))

    async def projects(self) -> list[Project]:
        return await self.run(calls.every_row("/v1/projects"))

    async def create_project(self, name: str, repo_path: str) -> Project:
        return await self.run(calls.post("/v1/projects", {"name": name, "repo_path": repo_path}))

    async def audit(self, *, since: str | None = None, action: str | None = None, org: str | None = None,
                    at_most: int | None = None) -> list[AuditEntry]:
        return await self.run(calls.every_row("/v1/audit", at_most=at_most, since=since, action=action, org=org))

    # -- sharing and moving states -----------------------------------------------------------
    async def shares(self, state_id: str) -> list[Share]:
        return await self.run(calls.every_row(f"/v1/states/{state_id}/shares"))

    async def share(self, state_id: str, org: str) -> Share:
        """Let ``org`` use the state read-only (as a base for its own prepares too)."""
        return await self.run(calls.post(f"/v1/states/{state_id}/shares", {"org": org}))

    async def unshare(self, state_id: str, org: str) -> dict[str, Any]:
        return await self.run(calls.delete(f"/v1/states/{state_id}/shares/{org}"))

    async def export_state(self, state_id: str) -> Transfer:
        """Have the state streamed to the object store (by a worker of a host holding it): the
        transfer, queued (or already under way), or succeeded when the state was exported already
        (its ``manifest``: another installation imports the state by id). See :meth:`wait_transfer`."""
        return await self.run(calls.post(f"/v1/states/{state_id}/export"))

    async def import_state(self, state_id: str) -> Transfer:
        """Have an exported state (and the chain it needs) brought onto the appliance: the transfer,
        queued, or succeeded when the org has the state already. Refused at once (``not_found``,
        ``unsigned_manifest``, ``untrusted_signature``, ``bad_signature``) when its export is
        missing or not trusted."""
        return await self.run(calls.post("/v1/states/import", {"state_id": state_id}))

    async def transfer(self, transfer_id: str) -> Transfer:
        return await self.run(calls.get(f"/v1/transfers/{transfer_id}"))

    async def follow_transfer(self, transfer_id: str, *, poll_seconds: float = TRANSFER_POLL_SECONDS
                        ) -> AsyncIterator[Transfer]:
        """The transfer each time its status or progress moved, until it is over (the last one)."""
        before: Transfer | None = None
        while True:
            now = await self.transfer(transfer_id)
            if transfer_moved(before, now):
                yield now
            if now["status"] in ("succeeded", "failed"):
                return
            before = now
            await asyncio.sleep(poll_seconds)

    async def wait_transfer(self, transfer_id: str, *, poll_seconds: float = TRANSFER_POLL_SECONDS) -> Transfer:
        """The transfer once it is over: check ``status`` (``failed`` carries ``error``)."""
        seen: list[Transfer] = []
        async for now in self.follow_transfer(transfer_id, poll_seconds=poll_seconds):
            seen[:] = [now]
        return seen[0]

    # -- a job's artifacts ---------------------------------------------------------------------
    async def artifacts(self, job_id: str) -> list[Artifact]:
        return await self.run(calls.get(f"/v1/prepare-jobs/{job_id}/artifacts"))

    async def artifact(self, job_id: str, name: str) -> bytes:
        """One artifact's bytes (``logs/plan.log``, ``report.json``, …)."""
        return await self.run(calls.download(f"/v1/prepare-jobs/{job_id}/artifacts/{name}"))

    # -- driving flows ---------------------------------------------------------------------
    async def run(self, flow: Flow[T]) -> T:
        return await drive(flow, self._send)

    async def _send(self, call: Call) -> Answer:
        try:
            response = await self._http.request(call.method, call.path, params=call.params, json=call.json,
                                                content=call.content, headers=call.headers)
        except httpx.TransportError as exc:
            raise self.settings.unreachable(exc) from None
        return calls.answer_of(call, response.status_code, response.reason_phrase, response.content,
                               response.links)
