"""The bounded cache in a real appliance: lowering the cap evicts the LRU unreferenced leaf only."""
from __future__ import annotations

import shutil
import time

import pytest

from tests.support.appliance import start_appliance
from tests.support.prepares import executes


@pytest.fixture(scope="module")
def appliance():
    app = start_appliance({"SQLRS_CACHE_MIN_STATE_AGE_SECONDS": "0", "SQLRS_CACHE_RESERVE_BYTES": "0",
                           "SQLRS_RECONCILE_INTERVAL_SECONDS": "1"})
    yield app
    app.destroy()
    shutil.rmtree(app.data_dir.parent, ignore_errors=True)


def test_lowering_the_cap_evicts_only_the_least_recently_used_unreferenced_leaf(appliance, scripts):
    for name in ("b.sql", "c.sql"):
        (scripts / name).write_text(f"create table {name[0]} (id int);\n")
    chain_a = appliance.prepare(["-f", "schema.sql", "-f", "data.sql"], scripts)  # keeps its instance
    leaf_b = appliance.prepare(["-f", "b.sql"], scripts)
    leaf_c = appliance.prepare(["-f", "c.sql"], scripts)
    for job in (leaf_b, leaf_c):
        assert appliance.delete(f"/v1/instances/{job['result']['instance_id']}").status_code == 200
    appliance.prepare(["-f", "c.sql"], scripts)  # c is now more recently used than b
    a1, a2 = (t["output_state_id"] for t in executes(chain_a))
    b, c = executes(leaf_b)[0]["output_state_id"], executes(leaf_c)[0]["output_state_id"]
    sizes = {s["state_id"]: s["size_bytes"] for s in appliance.get("/v1/states").json()}
    total = sum(sizes.values())

    appliance.stop()  # an operator lowers the cap: evicting b alone must be enough
    appliance.env.update({"SQLRS_CACHE_MAX_BYTES": str(int((total - sizes[b] / 2) / 0.99)),
                          "SQLRS_CACHE_HIGH_WATERMARK": "0.99", "SQLRS_CACHE_LOW_WATERMARK": "0.99"})
    appliance.start()
    deadline = time.monotonic() + 30
    while (status := appliance.get("/v1/cache/status").json())["last_eviction"] is None:
        assert time.monotonic() < deadline, "no eviction happened"
        time.sleep(0.3)

    remaining = {s["state_id"] for s in appliance.get("/v1/states").json()}
    assert b not in remaining
    assert {a1, a2, c} <= remaining  # a1 has a child, a2 an instance, c was used more recently
    assert status["last_eviction"]["evicted_count"] == 1
    assert status["last_eviction"]["freed_bytes"] == sizes[b]
    assert status["pressure_reasons"] == []
