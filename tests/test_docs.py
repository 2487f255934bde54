"""Docs that cannot drift: every setting, route, CLI verb and service command is documented."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.api.app import create_app
from appliance.cli.main import cli as sqlrs_cli
from appliance.service.main import cli as service_cli
from appliance.settings import Settings
from tests.support.api import NoContext

ROOT = Path(__file__).resolve().parent.parent


def doc(name: str) -> str:
    return (ROOT / name).read_text()


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented_with_its_environment_variable(field):
    text = doc("docs/configuration.md")
    assert f"`{field}`" in text and f"`SQLRS_{field.upper()}`" in text


def test_the_settings_reference_is_generated_from_the_settings():
    from appliance.service import settings_docs
    committed = doc("docs/configuration.md")
    assert settings_docs.splice(committed, settings_docs.render()) == committed, (
        "docs/configuration.md's settings reference differs from appliance/settings.py: run scripts/settings-docs")


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_has_a_description(field):
    assert Settings.model_fields[field].description


def _routes() -> list[tuple[str, str]]:
    app = create_app(NoContext)
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)))
    return found


@pytest.mark.parametrize("method,route", _routes())
def test_every_route_is_documented(method, route):
    if route == "/openapi.json":
        return
    pattern = re.escape(route)
    pattern = re.sub(r"\\\{[^}]+\\\}", r"\\{[a-z_]+\\}", pattern)
    rows = [line for line in doc("docs/api.md").splitlines() if line.startswith("|")]
    assert any(re.search(rf"\|\s*{method}\s*\|\s*`{pattern}`", row) for row in rows), (method, route)


@pytest.mark.parametrize("verb", sorted(sqlrs_cli.commands))
def test_every_cli_verb_is_documented(verb):
    assert f"`{verb}" in doc("docs/cli.md") or f"sqlrs {verb}" in doc("docs/cli.md")


@pytest.mark.parametrize("command", sorted(service_cli.commands))
def test_every_service_command_is_documented(command):
    assert f"`sqlrs-appliance {command}" in doc("docs/operations.md")


def test_the_readme_names_the_two_commands_and_ci_runs_the_test_one():
    readme = doc("README.md")
    assert "make demo" in readme and "make test" in readme
    assert "exec make test" in doc(".ci/run")


def _public_methods(cls) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_") and callable(getattr(cls, name))}


def test_the_sync_and_async_clients_have_the_same_methods():
    from sqlrs_client import AsyncClient, Client
    assert _public_methods(Client) - {"close"} == _public_methods(AsyncClient) - {"aclose"}


def test_every_public_client_method_is_documented():
    from sqlrs_client import Client
    text = doc("docs/client.md")
    missing = [name for name in sorted(_public_methods(Client) - {"close"}) if f"`{name}(" not in text]
    assert missing == []


def test_every_fixture_and_option_of_the_pytest_plugin_is_documented():
    from sqlrs_client import pytest_plugin
    text = doc("docs/pytest.md")
    fixtures = [name for name in vars(pytest_plugin) if name.startswith("sqlrs_")]
    assert fixtures and [name for name in fixtures if f"`{name}`" not in text] == []
    assert "--sqlrs-url" in text and "--sqlrs-keep" in text


def test_the_console_guide_shows_every_screenshot_the_browser_tests_take_and_no_other():
    shown = set(re.findall(r"\]\(ui/([a-z0-9-]+\.png)\)", doc("docs/ui.md")))
    taken = {p.name for p in (ROOT / "docs" / "ui").glob("*.png")}
    tests = (ROOT / "tests" / "console" / "test_console.py").read_text()
    named = {f"{name}.png" for name in re.findall(r'screenshot\("([a-z0-9-]+)"\)', tests)}
    named |= {f"phone-{route}.png" for route in ("states", "jobs", "instances", "org", "status")}  # one a page
    assert shown == taken == named
