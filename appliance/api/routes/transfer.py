"""Moving states between hosts and installations through the object store (export / import).

Both are jobs (``Transfer`` rows) a worker of the right host runs; the API only admits them
(``orchestrator.transfers``) and answers their progress. It never touches a store or runs a
send/receive command. ``POST`` answers 202 with the transfer while there is work to do (queued
now, or already queued or running), 200 with a succeeded transfer when there is none (the state
is exported already / the org has the state already); ``GET /v1/transfers/{id}`` polls it.
"""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, g
from quart_schema import validate_request, validate_response

from appliance.api.app import call, context, scope
from appliance.api.routes.states import own_state
from appliance.api.schemas import TransferEntry
from appliance.api.serializers import ts
from appliance.control.models import Transfer
from appliance.ids import NAME_PATTERN
from appliance.orchestrator.transfers import request_export, request_import

blueprint = Blueprint("transfer", __name__)


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state_id: str = Field(pattern=NAME_PATTERN, description="The exported state to import")


def transfer_entry(transfer: Transfer) -> dict[str, Any]:
    error = None
    if transfer.error_code is not None:
        error = {"code": transfer.error_code, "message": transfer.error_message or ""}
    return {"transfer_id": transfer.transfer_id, "kind": transfer.kind, "state_id": transfer.state_id,
            "status": transfer.status, "host": transfer.host, "bytes_done": transfer.bytes_done,
            "bytes_total": transfer.bytes_total, "created_by": transfer.created_by,
            "created_at": ts(transfer.created_at), "started_at": ts(transfer.started_at),
            "finished_at": ts(transfer.finished_at), "error": error,
            "manifest": json.loads(transfer.manifest_json) if transfer.manifest_json else None,
            "status_url": f"/v1/transfers/{transfer.transfer_id}"}


def _answer(transfer: Transfer, queued: bool):
    body = transfer_entry(transfer)
    return body, 202 if queued else 200, {"Location": body["status_url"]}


@blueprint.post("/v1/states/<state_id>/export")
@validate_response(TransferEntry, 200)
@validate_response(TransferEntry, 202)
async def export(state_id: str):
    principal, ctx, s = g.principal, context(), scope()

    def run():
        state = own_state(s, state_id)
        return _answer(*request_export(ctx, principal.org, state.state_id, principal.subject))
    return await call(run)


@blueprint.post("/v1/states/import")
@validate_request(ImportRequest)
@validate_response(TransferEntry, 200)
@validate_response(TransferEntry, 202)
async def import_(data: ImportRequest):
    principal, ctx = g.principal, context()

    def run():
        return _answer(*request_import(ctx, principal.org, data.state_id, principal.subject))
    return await call(run)


@blueprint.get("/v1/transfers/<transfer_id>")
@validate_response(TransferEntry)
async def get_transfer(transfer_id: str):
    s = scope()

    def run():
        return transfer_entry(s.by_id_or_prefix(Transfer, Transfer.transfer_id, transfer_id, "transfer"))
    return await call(run)
