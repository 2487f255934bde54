"""The client's TypedDicts are the API's answers field for field: the client may not import the
server's schemas, so this is where a field added to one and not the other is caught."""
from __future__ import annotations

import dataclasses
import typing

import pytest

from appliance.api import schemas
from appliance.api.routes import orgs, states, tokens
from appliance.control import quotas
from appliance.transfer.manifest import Manifest
from sqlrs_client import types

PAIRS = [(types.JobAccepted, schemas.PrepareJobAccepted), (types.JobResult, schemas.PrepareJobResult),
         (types.Task, schemas.TaskEntry), (types.JobEntry, schemas.PrepareJobEntry),
         (types.Job, schemas.PrepareJobStatus), (types.Instance, schemas.InstanceEntry),
         (types.State, schemas.StateEntry), (types.DeleteResult, schemas.DeleteResult),
         (types.DeleteNode, schemas.DeleteTreeNode), (types.SourceAccepted, schemas.SourceAccepted),
         (types.ErrorBody, schemas.ErrorBody), (types.Token, tokens.TokenEntry),
         (types.CreatedToken, tokens.CreatedToken), (types.Share, states.ShareEntry), (types.OrgUsage, orgs.OrgUsage),
         (types.Project, schemas.ProjectEntry), (types.Transfer, schemas.TransferEntry)]
DATACLASSES = [(types.Limits, quotas.Limits), (types.Usage, quotas.Usage), (types.Manifest, Manifest)]


@pytest.mark.parametrize("typed,model", PAIRS, ids=[typed.__name__ for typed, _ in PAIRS])
def test_each_answer_type_has_exactly_the_fields_of_the_api_schema(typed, model):
    assert set(typing.get_type_hints(typed)) == set(model.model_fields)


@pytest.mark.parametrize("typed,shape", DATACLASSES, ids=[typed.__name__ for typed, _ in DATACLASSES])
def test_each_answer_type_built_from_a_dataclass_has_exactly_its_fields(typed, shape):
    assert set(typing.get_type_hints(typed)) == {f.name for f in dataclasses.fields(shape)}
