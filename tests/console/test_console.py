"""The web console as people use it: in a real browser, against a real appliance, through the
public v1 API only. Each test leaves a screenshot of the page it shows (see conftest)."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg2
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from tests.support.browser import PHONE, Console
from tests.support.oidc import AUDIENCE

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def acting_as(appliance, token: str, org: str | None = None) -> Iterator[None]:
    """API calls in the block are made with ``token`` (in ``org``)."""
    previous = appliance.token, appliance.org
    appliance.token, appliance.org = token, org
    try:
        yield
    finally:
        appliance.token, appliance.org = previous


def prepared(appliance, token: str, scripts, *files: str, **fields) -> dict:
    with acting_as(appliance, token):
        status = appliance.prepare([arg for f in files for arg in ("-f", f)], scripts, **fields)
    assert status["status"] == "succeeded", status
    return status


def short(object_id: str) -> str:
    return object_id[:12]


# -- signing in --------------------------------------------------------------------------------

def test_a_member_signs_in_with_a_pasted_token_and_lands_on_the_state_tree(console, tokens):
    console.sign_in_with_token(tokens["member"])
    assert console.heading() == "States"
    assert console.wait_for(".who").text.endswith("member\nSign out") or "member" in console.wait_for(".who").text
    assert "Tokens" not in [a.text for a in console.all("header nav a")]  # admin pages stay hidden


def test_a_wrong_token_is_refused_with_the_apis_reason_and_no_session(console):
    console.wait_for("#token").send_keys("sqlrs_not_a_real_token")
    console.click("button[type=submit]")
    assert "unauthenticated" in console.wait_for("[role=alert]").text
    assert console.driver.execute_script("return sessionStorage.getItem('sqlrs.session')") is None
    console.screenshot("sign-in")


def test_a_person_signs_in_through_the_oidc_issuer_with_authorization_code_and_pkce(console, issuer):
    console.button("Sign in with your identity provider").click()
    console.wait_for("header.top nav")
    exchange = issuer.token_requests[-1]
    assert exchange["grant_type"] == "authorization_code" and len(exchange["code_verifier"]) >= 43
    assert "code=" not in console.driver.current_url  # the single-use code does not stay in history
    assert "oidc:ada" in console.wait_for(".who").text


def test_the_sign_in_asks_the_issuer_for_the_appliances_audience(console, issuer):
    console.button("Sign in with your identity provider").click()
    console.wait_for("header.top nav")
    asked = issuer.authorize_requests[-1]
    assert asked["audience"] == AUDIENCE and asked["code_challenge_method"] == "S256"


def test_a_crafted_callback_link_is_ignored_and_shows_nothing_of_its_text(console, tokens):
    console.sign_in_with_token(tokens["member"])
    console.driver.get(f"{console.url}/ui/?error=x&error_description=Session+expired,+paste+your+token+at+evil.example")
    console.wait_for("header.top nav")  # still signed in
    assert "evil.example" not in console.text() and "?" not in console.driver.current_url


def test_a_person_in_two_orgs_switches_org_and_sees_only_that_orgs_objects(console, appliance, scripts):
    with appliance.acting_in("team-b"):
        status = appliance.prepare(["-f", "schema.sql"], scripts)
    assert status["status"] == "succeeded", status
    console.button("Sign in with your identity provider").click()
    switcher = console.wait_for("#org-select")
    assert {o.get_attribute("value") for o in switcher.find_elements(By.TAG_NAME, "option")} == {"default", "team-b"}
    console.go("jobs")
    console.wait_for("table.jobs")
    assert short(status["job_id"]) not in console.text()
    switcher = console.wait_for("#org-select")
    switcher.find_element(By.CSS_SELECTOR, "option[value=team-b]").click()
    console.wait_for("table.jobs a", text=short(status["job_id"]))
    assert "member" in console.wait_for(".who").text  # ada is a member of team-b, an admin of default
    assert "Tokens" not in [a.text for a in console.all("header nav a")]
    console.screenshot("org-switcher")


# -- states --------------------------------------------------------------------------------

def test_the_state_tree_shows_each_state_under_the_one_it_was_built_on(console, appliance, tokens, scripts):
    chain = prepared(appliance, tokens["member"], scripts, "schema.sql", "data.sql")
    branch = prepared(appliance, tokens["member"], scripts, "schema.sql", "more.sql")
    console.sign_in_with_token(tokens["member"])
    schema_state = chain["tasks"][2]["output_state_id"]  # plan, resolve-image, execute-0, …
    data_state, more_state = chain["tasks"][3]["output_state_id"], branch["tasks"][3]["output_state_id"]
    node = console.wait_for(f"li[data-state-id='{schema_state}']")
    children = {li.get_attribute("data-state-id") for li in node.find_elements(By.CSS_SELECTOR, ":scope > ul > li")}
    assert children == {data_state, more_state}
    assert "-f schema.sql" in node.find_element(By.CSS_SELECTOR, ".state-summary").text
    assert "1 instance" in console.wait_for(f"li[data-state-id='{data_state}'] .facts").text
    console.screenshot("states")


def test_the_cache_panel_lists_what_eviction_would_take_next_and_what_blocks_it(console, appliance, tokens, scripts):
    prepared(appliance, tokens["member"], scripts, "schema.sql", "data.sql")
    console.sign_in_with_token(tokens["member"])
    panel = console.wait_for("section[aria-labelledby=cache-h]")
    queue = panel.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert queue and any("an instance runs on it" in row.text for row in queue)


def test_a_hostile_step_summary_is_shown_as_text_and_never_run(console, appliance, tokens, scripts):
    payload = '<img src=x onerror="document.title=42">'
    prepared(appliance, tokens["member"], scripts, "schema.sql")
    with acting_as(appliance, tokens["member"]):
        status = appliance.prepare(["-f", "schema.sql", "-c", f"select '{payload}'"], scripts)
    assert status["status"] == "succeeded", status
    console.sign_in_with_token(tokens["member"])
    console.wait_for(".state-summary", text="onerror")
    assert console.driver.title == "States · sqlrs" and not console.all(".state-tree img")


# -- jobs ----------------------------------------------------------------------------------

def outcomes(console: Console) -> dict[str, str]:
    return {row.get_attribute("data-task-id"): row.find_element(By.CSS_SELECTOR, ".outcome").text
            for row in console.all("table.steps tbody tr")}


def test_a_running_jobs_steps_turn_built_live_and_a_rerun_shows_them_cached(console, appliance, tokens, scripts):
    (scripts / "slow.sql").write_text(f"select pg_sleep(1.5); -- {scripts.name}\n")
    (scripts / "slower.sql").write_text("select pg_sleep(1.5);\n")
    console.sign_in_with_token(tokens["member"])
    with acting_as(appliance, tokens["member"]):
        job_id = appliance.submit(["-f", "slow.sql", "-f", "slower.sql"], scripts).json()["job_id"]
    console.go(f"jobs/{job_id}")
    seen: list[dict[str, str]] = []

    def finished() -> bool:
        seen.append(outcomes(console))
        return seen[-1].get("prepare-instance") == "succeeded"
    console.wait_until(finished, "the job's last step did not show succeeded", timeout=90)
    assert any(s.get("execute-1") == "running" and s.get("execute-0") == "built" for s in seen), seen
    assert seen[-1]["execute-0"] == seen[-1]["execute-1"] == "built"
    console.screenshot("job")

    with acting_as(appliance, tokens["member"]):
        rerun = appliance.submit(["-f", "slow.sql", "-f", "slower.sql"], scripts).json()["job_id"]
    console.go(f"jobs/{rerun}")
    console.wait_until(lambda: outcomes(console).get("prepare-instance") == "succeeded", "the rerun did not finish")
    assert outcomes(console)["execute-0"] == outcomes(console)["execute-1"] == "cached"


def test_the_jobs_list_filters_by_status_and_opens_a_job_with_its_log_and_artifacts(console, appliance, tokens, scripts):
    (scripts / "broken.sql").write_text("select * from no_such_table;\n")
    with acting_as(appliance, tokens["member"]):
        failed = appliance.prepare(["-f", "broken.sql"], scripts)
    assert failed["status"] == "failed"
    console.sign_in_with_token(tokens["member"])
    console.go("jobs")
    Select(console.wait_for("select#job-status")).select_by_visible_text("failed")
    console.wait_until(lambda: console.all("table.jobs tbody tr") and all(
        "failed" in row.text for row in console.all("table.jobs tbody tr")), "the list did not narrow to failed jobs")
    assert short(failed["job_id"]) in console.text()
    console.screenshot("jobs")
    console.wait_for("table.jobs a", text=short(failed["job_id"])).click()
    assert "no_such_table" in console.wait_for("[role=alert]", text="step_failed").text
    console.button("report.json").click()
    console.wait_for("pre.log", text='"status": "failed"')


def test_a_member_cancels_a_running_job_from_its_page(console, appliance, tokens, scripts):
    (scripts / "long.sql").write_text(f"select pg_sleep(30); -- {scripts.name}\n")
    with acting_as(appliance, tokens["member"]):
        job_id = appliance.submit(["-f", "long.sql"], scripts).json()["job_id"]
        appliance.first_event(job_id, lambda e: e.get("task_id") == "execute-0" and e.get("status") == "running")
    console.sign_in_with_token(tokens["member"])
    console.go(f"jobs/{job_id}")
    console.button("Cancel job").click()
    console.wait_for("#job-state", text="cancelled", timeout=60)


# -- instances -----------------------------------------------------------------------------

def instance_row(console: Console, instance_id: str):
    return console.wait_for(f"tr[data-instance-id='{instance_id}']")


def test_a_copied_dsn_connects_to_the_instance(console, appliance, tokens, scripts):
    status = prepared(appliance, tokens["member"], scripts, "schema.sql", "data.sql")
    console.sign_in_with_token(tokens["member"])
    console.go("instances")
    console.grant_clipboard()
    row = instance_row(console, status["result"]["instance_id"])
    console.button("Copy", within=row).click()
    console.wait_until(lambda: "Copied" in row.text, "the copy button did not say Copied")
    dsn = console.clipboard()
    password = psycopg2.extensions.parse_dsn(dsn)["password"]
    assert password not in row.find_element(By.TAG_NAME, "input").get_attribute("value")  # masked on screen
    assert shown_dsns(console)  # (members do see their DSNs)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from items")
        assert cur.fetchone()[0] == 100
    assert "token:" in row.text  # whose it is
    console.screenshot("instances")


def test_extending_an_instance_moves_its_expiry(console, appliance, tokens, scripts):
    status = prepared(appliance, tokens["member"], scripts, "schema.sql")
    instance_id = status["result"]["instance_id"]
    console.sign_in_with_token(tokens["member"])
    console.go("instances")
    row = instance_row(console, instance_id)
    Select(row.find_element(By.TAG_NAME, "select")).select_by_visible_text("7 days from now")
    console.button("Extend", within=row).click()
    console.wait_for("[role=status].notice", text="7 days from now")
    with acting_as(appliance, tokens["member"]):
        expires = appliance.get(f"/v1/instances/{instance_id}").json()["expires_at"]
    left = dt.datetime.fromisoformat(expires.rstrip("Z")) - dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert dt.timedelta(days=6, hours=23) < left <= dt.timedelta(days=7)


def test_deleting_an_instance_asks_first_then_removes_it(console, appliance, tokens, scripts):
    status = prepared(appliance, tokens["member"], scripts, "schema.sql")
    instance_id = status["result"]["instance_id"]
    console.sign_in_with_token(tokens["member"])
    console.go("instances")
    console.button("Delete", within=instance_row(console, instance_id)).click()
    dialog = console.wait_for("dialog[open]")
    console.screenshot("instance-delete")
    console.button("Delete instance", within=dialog).click()
    console.wait_until(lambda: not console.all(f"tr[data-instance-id='{instance_id}']"), "the row did not go")
    with acting_as(appliance, tokens["member"]):
        assert appliance.get(f"/v1/instances/{instance_id}").status_code == 404


# -- roles and orgs ------------------------------------------------------------------------

def shown_dsns(console: Console) -> list[str]:
    """Every DSN on the page: in its text or in a field's value."""
    return console.driver.execute_script("""return [document.body.innerText,
        ...[...document.querySelectorAll('input')].map(e => e.value)].filter(t => /postgres(ql)?:\\/\\//.test(t))""")


def test_a_viewer_sees_instances_without_any_dsn_and_no_admin_or_member_actions(console, appliance, tokens, scripts):
    status = prepared(appliance, tokens["member"], scripts, "schema.sql")
    console.sign_in_with_token(tokens["viewer"])
    console.go("instances")
    row = instance_row(console, status["result"]["instance_id"])
    assert "DSNs are for members" in row.text and not row.find_elements(By.TAG_NAME, "button")
    assert not shown_dsns(console)
    assert [a.text for a in console.all("header nav a")] == ["States", "Jobs", "Instances", "Org", "Status"]
    console.go(f"jobs/{status['job_id']}")
    console.wait_for("#job-state", text="succeeded")
    assert not shown_dsns(console)
    console.screenshot("viewer-instances")


def test_another_orgs_jobs_states_and_instances_never_appear(console, appliance, tokens, scripts):
    with appliance.acting_in("rival"):
        theirs = appliance.prepare(["-f", "schema.sql", "-f", "data.sql"], scripts)
    assert theirs["status"] == "succeeded", theirs
    secrets = {short(theirs["job_id"]), short(theirs["result"]["instance_id"]),
               *(short(t["output_state_id"]) for t in theirs["tasks"] if t["output_state_id"])}
    console.sign_in_with_token(tokens["admin"])
    for route, ready in (("states", "section[aria-labelledby=cache-h]"), ("jobs", "table.jobs"),
                         ("instances", "main h1"), ("org", "section[aria-labelledby=shares-h]"),
                         ("audit", "main table")):
        console.go(route)
        console.wait_for(ready)
        time.sleep(0.3)  # the page's last list has answered
        source = console.driver.page_source
        assert not [s for s in secrets if s in source], route
    console.go(f"jobs/{theirs['job_id']}")
    assert "not_found" in console.wait_for("[role=alert]").text


# -- org pages -----------------------------------------------------------------------------

def test_an_admin_creates_a_token_whose_secret_is_shown_once_then_revokes_it(console, appliance, tokens):
    console.sign_in_with_token(tokens["admin"])
    console.go("tokens")
    console.wait_for("#token-name").send_keys("nightly build")
    console.button("Create token").click()
    secret = console.wait_for("dialog[open] #new-token").get_attribute("value")
    assert secret.startswith("sqlrs_")
    console.screenshot("token-created")
    console.button("I stored it").click()
    console.wait_until(lambda: not console.all("dialog[open]"), "the dialog did not close")
    assert secret not in console.driver.page_source
    console.button("Revoke", within=console.wait_for("tr", text="nightly build")).click()
    console.wait_for("tr", text="revoked")
    with acting_as(appliance, secret):
        assert appliance.get("/v1/whoami").status_code == 401
    console.screenshot("tokens")


def test_the_org_page_shows_usage_against_quotas_and_shares(console, appliance, tokens, scripts):
    status = prepared(appliance, tokens["admin"], scripts, "schema.sql")
    state_id = status["result"]["state_id"]
    with acting_as(appliance, tokens["admin"]):
        assert appliance.post(f"/v1/states/{state_id}/shares", json={"org": "team-b"}).status_code in (200, 201)
    console.sign_in_with_token(tokens["admin"])
    console.go("org")
    console.wait_for("[role=meter]")
    meters = {m.get_attribute("aria-label"): m.get_attribute("aria-valuenow") for m in console.all("[role=meter]")}
    assert {"Running jobs", "Queued jobs", "Live instances", "State bytes"} <= set(meters)
    with acting_as(appliance, tokens["admin"]):
        usage = appliance.get("/v1/orgs/default/usage").json()["usage"]
    assert int(meters["Live instances"]) == usage["instances"]
    row = console.wait_for("section[aria-labelledby=shares-h] tr", text=short(state_id))
    assert "team-b" in row.text
    console.screenshot("org")


def test_the_audit_log_shows_who_did_what_newest_first(console, tokens):
    console.sign_in_with_token(tokens["admin"])
    console.go("audit")
    first = console.wait_for("main table tbody tr")
    assert first.text
    console.screenshot("audit")


def test_the_status_page_shows_readiness_checks_store_and_isolation(console, tokens):
    console.sign_in_with_token(tokens["viewer"])
    console.go("status")
    assert "ready" in console.wait_for("#ready-h").text
    assert {"control db", "redis", "store", "runtime"} <= {th.text for th in console.all("tbody th")}
    console.screenshot("status")


# -- usable by everyone --------------------------------------------------------------------

def test_the_keyboard_reaches_the_skip_link_then_the_pages_and_focus_follows_the_page(console, tokens):
    console.sign_in_with_token(tokens["member"])
    console.press(Keys.TAB)
    assert console.focused() == "Skip to content"
    console.press(Keys.TAB)
    assert console.focused() == "States"
    console.press(Keys.TAB, Keys.ENTER)  # Jobs
    console.wait_until(lambda: console.heading() == "Jobs", "Enter on Jobs did not open it")
    console.wait_until(lambda: console.focused() == "main", "the focus did not move to the new page's content")


def test_every_control_on_every_page_has_a_label(console, tokens):
    console.sign_in_with_token(tokens["admin"])
    unlabelled_js = """return [...document.querySelectorAll('input, select, button')].filter(e =>
        !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).map(e => e.outerHTML)"""
    for route in ("states", "jobs", "instances", "org", "tokens", "audit", "status"):
        console.go(route)
        console.wait_for("main h1")
        time.sleep(0.3)
        assert console.driver.execute_script(unlabelled_js) == [], route


def test_every_page_fits_a_phone_screen_without_sideways_scrolling(console, appliance, tokens, scripts):
    prepared(appliance, tokens["member"], scripts, "schema.sql", "data.sql")
    console.driver.set_window_size(*PHONE)
    console.sign_in_with_token(tokens["member"])
    for route in ("states", "jobs", "instances", "org", "status"):
        console.go(route)
        console.wait_for("main h1")
        time.sleep(0.3)
        overflow = console.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (route, overflow)
        console.screenshot(f"phone-{route}")


# -- the public API only -------------------------------------------------------------------

def test_the_console_calls_nothing_but_its_own_files_and_the_public_v1_api(console, appliance, tokens, scripts):
    status = prepared(appliance, tokens["member"], scripts, "schema.sql")
    console.sign_in_with_token(tokens["admin"])
    for route in ("states", "jobs", f"jobs/{status['job_id']}", "instances", "org", "tokens", "audit", "status"):
        console.go(route)
        console.wait_for("main h1")
        time.sleep(0.3)
    requested = console.driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    published = set(json.loads(appliance.get("/openapi.json").text)["paths"])
    for url in requested:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == appliance.url, url
        if not parts.path.startswith("/ui/"):
            assert any(_matches(template, parts.path) for template in published), url


def _matches(template: str, path: str) -> bool:
    """``/v1/prepare-jobs/{job_id}/artifacts/{name}`` matches ``/v1/prepare-jobs/abc/artifacts/logs/x``
    (a trailing ``{name}`` may hold slashes)."""
    want, got = template.strip("/").split("/"), path.strip("/").split("/")
    if want[-1] == "{name}" and len(got) > len(want):
        got = [*got[: len(want) - 1], "/".join(got[len(want) - 1:])]
    return len(want) == len(got) and all(w == g or (w.startswith("{") and g) for w, g in zip(want, got))
