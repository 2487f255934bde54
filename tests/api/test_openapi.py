"""The OpenAPI document (GET /openapi.json) is a valid OpenAPI 3.1 document that matches the
routes really served, documents every error answer, and the served API keeps to it: schemathesis
fuzzes every operation against `sqlrs-appliance api` with an operator token and finds no server
error and no answer outside the document."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

ERROR_STATUSES_OF_EVERY_AUTHENTICATED_ROUTE = {"400", "401", "403", "429", "503"}


@pytest.fixture
async def document(client) -> dict:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return await response.get_json()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


PUBLIC = {"/v1/health", "/v1/auth/config"}  # no token: liveness, and how a browser signs in


async def test_the_openapi_document_is_a_valid_openapi_document(document):
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


async def test_the_artifact_download_route_is_published_with_its_real_path(client, document):
    assert "/v1/prepare-jobs/{name}" not in document["paths"]
    operation = document["paths"]["/v1/prepare-jobs/{job_id}/artifacts/{name}"]["get"]
    assert [p["name"] for p in operation["parameters"] if p["in"] == "path"] == ["job_id", "name"]
    published = {path.replace("{", "<").replace("}", ">") for path in document["paths"]}
    served = {rule.rule.replace("<path:", "<") for rule in client.app.url_map.iter_rules()
              if rule.rule not in ("/openapi.json",) and rule.rule.split("/")[1] != "ui"}  # the console's files
    assert published == served


async def test_every_operation_documents_its_error_answers_with_the_error_schema(document):
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["code", "message"]
    assert set(error["properties"]) == {"code", "message", "details"}
    for path, method, operation in operations(document):
        responses = operation["responses"]
        if path in PUBLIC:
            continue
        assert ERROR_STATUSES_OF_EVERY_AUTHENTICATED_ROUTE <= set(responses), (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        if method in ("post", "put"):
            assert "413" in responses, (method, path)
        for status, response in responses.items():
            if status in ERROR_STATUSES_OF_EVERY_AUTHENTICATED_ROUTE and status != "503" or status in ("404", "413"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
        assert any(status.startswith("2") for status in responses), (method, path)


async def test_every_list_is_published_with_limit_cursor_and_the_next_page_headers(document):
    paged = {path for path, operations in document["paths"].items()
             if {"limit", "cursor"} <= {p["name"] for p in operations.get("get", {}).get("parameters", [])}}
    assert paged == {"/v1/prepare-jobs", "/v1/tasks", "/v1/states", "/v1/instances", "/v1/audit", "/v1/projects",
                     "/v1/states/{state_id}/shares", "/v1/orgs/{org}/shares"}
    for path in paged:
        ok = document["paths"][path]["get"]["responses"]["200"]
        assert {"Link", "Sqlrs-Next-Cursor"} <= set(ok.get("headers", {})), path


async def test_health_and_the_sign_in_config_are_published_without_a_token_and_everything_else_with_one(document):
    assert document["security"] == [{"bearer": []}]
    for path in PUBLIC:
        assert document["paths"][path]["get"]["security"] == []
    others = [op.get("security") for path, _, op in operations(document) if path not in PUBLIC]
    assert all(security is None for security in others)  # the document-wide bearer applies


async def test_a_method_a_route_does_not_serve_answers_405_with_allow(client):
    response = await client.open("/v1/prepare-jobs", method="PATCH", headers=client.auth)
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert (await response.get_json())["code"] == "invalid_argument"


# -- the served API against its own document ------------------------------------------------------
schemathesis.serializer.alias("application/gzip", "application/octet-stream")  # bundles: bytes as they are


@pytest.fixture(scope="module")
def served_schema(served_api):
    return schemathesis.openapi.from_url(f"{served_api.url}/openapi.json", timeout=10)


schema = schemathesis.pytest.from_fixture("served_schema")


@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, database=None, print_blob=False,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_the_served_api_keeps_to_its_openapi_document(case, served_api):
    """Every operation, fuzzed with an operator token: no 5xx, every answer as documented."""
    case.call_and_validate(headers={"Authorization": f"Bearer {served_api.token}"},
                           checks=[not_a_server_error, response_schema_conformance], timeout=30)
