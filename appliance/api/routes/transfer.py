"""Moving states between hosts and stores through the object store (export / import).

Both run synchronously inside the request for now: a big state keeps the request open for
as long as its stream takes.
"""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, g
from quart_schema import validate_request, validate_response

from appliance.api.app import call, context, scope
from appliance.api.routes.states import own_state, state_entry
from appliance.api.schemas import StateEntry
from appliance.control.models import State
from appliance.ids import NAME_PATTERN
from appliance.transfer.manifest import Manifest
from appliance.transfer.streams import export_state, import_state

blueprint = Blueprint("transfer", __name__)


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state_id: str = Field(pattern=NAME_PATTERN, description="The exported state to import")


# The manifest's one definition is the dataclass; this subclass only names its schema in the API.
@dataclass(frozen=True)
class ExportManifest(Manifest):
    pass


@blueprint.post("/v1/states/<state_id>/export")
@validate_response(ExportManifest)
async def export(state_id: str):
    org, ctx, s = g.principal.org, context(), scope()

    def run():
        state = own_state(s, state_id)
        return export_state(ctx, org, state.state_id).to_dict()
    return await call(run)


@blueprint.post("/v1/states/import")
@validate_request(ImportRequest)
@validate_response(StateEntry, 200)
@validate_response(StateEntry, 201)
async def import_(data: ImportRequest):
    org, ctx, s = g.principal.org, context(), scope()

    def run():
        existed = s.select(State).where((State.state_id == data.state_id) & (State.host == ctx.host)).exists()
        state = import_state(ctx, org, data.state_id)
        return state_entry(s, state.state_id), 200 if existed else 201
    return await call(run)
