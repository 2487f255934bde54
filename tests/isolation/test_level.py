"""What isolation a host provides, how it says so, and the one-org rule when it provides none."""
from __future__ import annotations

import io
import os
import tarfile

import pytest

from appliance.isolation.identity import OrgIdentities, user_name
from appliance.isolation.level import Isolation, choose_isolation
from appliance.isolation.sandbox import Sandbox
from appliance.service.doctor import run_checks
from appliance.settings import Settings
from appliance.shell import Runner, unprivileged


@pytest.fixture
def settings_factory(tmp_path):
    return lambda **values: Settings(data_dir=tmp_path / "data", storage_backend="copy", btrfs_image="off", **values)


def _bundle() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"select 1;\n"
        info = tarfile.TarInfo("a.sql")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _without_isolation(ctx, *, accepted: bool) -> None:
    ctx.isolation = Isolation("none", "this test's host cannot isolate", not accepted,
                              OrgIdentities(Runner(), per_org=False, fallback=ctx.runtime.run_as), Sandbox(False))


def _prepare(client, org: str):
    return client.post("/v1/prepare-jobs", headers={**client.auth, "X-Sqlrs-Org": org},
                       json={"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-c", "select 1"]})


async def test_a_host_without_isolation_serves_the_first_org_and_refuses_a_second(ctx, client):
    _without_isolation(ctx, accepted=False)
    assert (await _prepare(client, "first-team")).status_code == 201
    refused = await _prepare(client, "second-team")
    assert refused.status_code == 403
    body = await refused.get_json()
    assert body["code"] == "isolation_unavailable" and "tenant_isolation" in body["message"]
    upload = await client.post("/v1/sources", data=_bundle(),
                               headers={**client.auth, "X-Sqlrs-Org": "second-team", "Content-Type": "application/gzip"})
    assert upload.status_code == 403
    assert not (ctx.sources_dir / "second-team").exists()  # refused before anything was written


async def test_an_operator_may_accept_no_isolation_for_many_orgs(ctx, client):
    _without_isolation(ctx, accepted=True)
    assert (await _prepare(client, "first-team")).status_code == 201
    assert (await _prepare(client, "second-team")).status_code == 201


async def test_readiness_says_which_isolation_is_in_force_and_why(ctx, client):
    _without_isolation(ctx, accepted=False)
    body = await (await client.get("/v1/ready", headers=client.auth)).get_json()
    assert body["isolation"] == {"level": "none", "reason": "this test's host cannot isolate", "one_org_only": True}


def _root_only():
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root: os isolation must be testable there")
        pytest.skip("LOCAL ONLY: os isolation needs root (to make users and drop to them)")


def test_a_root_host_with_bubblewrap_gets_os_isolation(settings_factory):
    _root_only()
    isolation = choose_isolation(settings_factory(), Runner(), unprivileged("postgres"))
    assert isolation.level == "os" and isolation.sandbox.enabled and not isolation.one_org_only


def test_asking_for_none_turns_isolation_off_without_the_one_org_rule(settings_factory):
    isolation = choose_isolation(settings_factory(tenant_isolation="none"), Runner(), unprivileged("postgres"))
    assert isolation.level == "none" and not isolation.sandbox.enabled and not isolation.one_org_only


def test_doctor_prints_the_isolation_level_and_why(settings_factory):
    _root_only()
    checks = {check.name: check for check in run_checks(settings_factory())}
    assert checks["isolation"].ok and checks["isolation"].detail.startswith("os: one OS user per org")


def test_each_org_gets_its_own_os_user_and_keeps_it(runner):
    _root_only()
    identities = OrgIdentities(runner, per_org=True, fallback=unprivileged("postgres"))
    alpha, bravo = identities.of("alpha-isolation-test"), identities.of("bravo-isolation-test")
    assert alpha.uid != bravo.uid and alpha.gid != bravo.gid and 0 not in (alpha.uid, bravo.uid)
    assert OrgIdentities(runner, per_org=True, fallback=None).of("alpha-isolation-test") == alpha  # found again
    import pwd
    assert pwd.getpwuid(alpha.uid).pw_name == user_name("alpha-isolation-test")


def test_a_clone_shared_by_another_org_is_handed_over_file_by_file(runner, tmp_path):
    _root_only()
    identities = OrgIdentities(runner, per_org=True, fallback=unprivileged("postgres"))
    owner, grantee = identities.of("alpha-isolation-test"), identities.of("bravo-isolation-test")
    volume = tmp_path / "volume"
    (volume / "pgdata" / "base").mkdir(parents=True)
    (volume / "pgdata" / "base" / "1").write_text("x")
    for path in (volume, volume / "pgdata", volume / "pgdata" / "base", volume / "pgdata" / "base" / "1"):
        os.chown(path, owner.uid, owner.gid)
    identities.hand_over("bravo-isolation-test", volume)
    assert {os.stat(p).st_uid for p in (volume, volume / "pgdata" / "base" / "1")} == {grantee.uid}
