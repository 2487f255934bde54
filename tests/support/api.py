"""The API in tests: an app made without a running appliance (to list its routes), where the API
really served by hypercorn answers, and what a rejected request must answer."""
from __future__ import annotations

from dataclasses import dataclass

from appliance.settings import Settings


class NoContext:
    """Enough of a context for ``create_app`` to build its routes: default settings, nothing else."""
    settings = Settings()


@dataclass
class ServedApi:
    url: str
    token: str
    port: int


async def assert_rejected(response, status: int, code: str, fragment: str = "") -> dict:
    body = await response.get_json()
    assert response.status_code == status, body
    assert body["code"] == code
    assert fragment.lower() in body["message"].lower(), body["message"]
    return body
