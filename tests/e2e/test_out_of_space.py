"""A build that fills the store fails as cache_full_unreclaimable and records nothing."""
from __future__ import annotations

import pytest

from tests.support.appliance import appliance_on
from tests.support.prepares import executes


@pytest.fixture(scope="module")
def appliance(request):
    """An appliance whose btrfs image is tiny (384 MiB), with no reserve, so a step can fill it."""
    yield from appliance_on(request, "btrfs", {"SQLRS_BTRFS_IMAGE_BYTES": str(384 * 1024**2),
                                               "SQLRS_CACHE_RESERVE_BYTES": "0"})


def test_filling_the_store_fails_the_job_as_cache_full_and_records_no_state(appliance, scripts):
    (scripts / "huge.sql").write_text(
        "create table huge as select g, repeat(md5(g::text), 20) as filler from generate_series(1, 2000000) g;\n")
    status = appliance.prepare(["-f", "schema.sql", "-f", "huge.sql"], scripts)
    assert status["status"] == "failed"
    assert status["error"]["code"] == "cache_full_unreclaimable", status["error"]
    assert status["error"]["details"]["reasons"] == ["physical_free_exhausted"]
    states = {s["state_id"] for s in appliance.get("/v1/states").json()}
    assert executes(status)[0]["output_state_id"] in states
    assert executes(status)[1]["output_state_id"] not in states
    volumes = list((appliance.data_dir / "store" / "orgs").glob("*/volumes/*"))
    assert volumes == [], "the failed build's clone was not removed"


def test_the_appliance_keeps_working_after_a_full_store(appliance, scripts):
    status = appliance.prepare(["-f", "schema.sql"], scripts)
    assert status["status"] == "succeeded", status["error"]
