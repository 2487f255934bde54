"""The web console in a real headless Chromium against a real appliance (process runtime, btrfs
store) whose OIDC issuer is a local one that signs people in with the authorization code flow.

Screenshots of every page land in ``$SQLRS_CONSOLE_SHOTS`` (``make screenshots`` sets it to
docs/ui, which docs/ui.md shows) or in a temporary directory."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Appliance
from tests.support.appliance import appliance_on
from tests.support.browser import DESKTOP, Console, chromium, require_chromium
from tests.support.oidc import AUDIENCE, LocalIssuer

PERSON = {"sub": "ada", "groups": ["sqlrs:default:admin", "sqlrs:team-b:member"], "org": None, "role": None}


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    server = LocalIssuer(person=dict(PERSON))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def appliance(request, issuer) -> Iterator[Appliance]:
    require_chromium()  # before an appliance is started for nothing
    env = {"SQLRS_OIDC_ISSUER": issuer.url, "SQLRS_OIDC_AUDIENCE": AUDIENCE, "SQLRS_OIDC_CLIENT_ID": issuer.client_id,
           "SQLRS_OIDC_GROUPS_CLAIM": "groups"}
    for app in appliance_on(request, "btrfs", env):
        issuer.redirect_uris.add(f"{app.url}/ui/")
        yield app


@pytest.fixture(scope="module")
def tokens(appliance) -> dict[str, str]:
    """Robot tokens of org ``default``, one per role, made by the operator."""
    made = {}
    with appliance.acting_in("default"):
        for role in ("viewer", "member", "admin"):
            answer = appliance.post("/v1/orgs/default/tokens", json={"name": f"console {role}", "role": role})
            assert answer.status_code == 201, answer.text
            made[role] = answer.json()["token"]
    return made


@pytest.fixture(scope="session")
def shots() -> Path:
    where = os.environ.get("SQLRS_CONSOLE_SHOTS")
    if where:
        return Path(where)
    from tests.support.tmpdirs import public_tmpdir
    return public_tmpdir("sqlrs-console-shots-")


@pytest.fixture(scope="module")
def driver():
    with chromium(DESKTOP) as browser:
        yield browser


@pytest.fixture
def console(driver, appliance, shots) -> Iterator[Console]:
    """The console in a browser with nobody signed in (storage cleared), at desktop size."""
    driver.set_window_size(*DESKTOP)
    page = Console(driver, appliance.url, shots)
    driver.get(f"{appliance.url}/ui/favicon.svg")  # this origin, without the app (which would sign in again)
    driver.execute_script("sessionStorage.clear(); localStorage.clear()")
    page.open()
    yield page
    errors = page.console_errors()
    assert not [e for e in errors if "Content Security Policy" in e or "Uncaught" in e], errors

