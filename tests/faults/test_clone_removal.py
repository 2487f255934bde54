"""A clone that cannot be removed once (made immutable while its instance is deleted, as a busy or
protected clone refuses removal): the delete answers that the instance is left `deleting`, with
the reason, and the reconciler's retry removes it: no clone, port or server is left behind."""
from __future__ import annotations

import time

from tests.support.immutable import immutable

from .rig import FaultRig, Outcome

GONE_WITHIN = 120.0  # a few reconciler passes, past the first retry's backoff


def clone_of(rig: FaultRig, instance_id: str):
    (org, volume_id), = rig.query("select org, volume_id from instance where instance_id = %s", instance_id)
    return rig.app.data_dir / "store" / "orgs" / org / "volumes" / volume_id


def wait_until_gone(rig: FaultRig, instance_id: str) -> int:
    """The instance's final answer: 404 once the reconciler has torn it down."""
    deadline = time.monotonic() + GONE_WITHIN
    while (status := rig.app.get(f"/v1/instances/{instance_id}").status_code) == 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    return status


def test_clone_removal_failing_once(rig: FaultRig, outcome: Outcome, tmp_path):
    final = rig.account(outcome, [rig.submit(tmp_path, "create table t (i int);")])
    (job,) = final.values()
    assert job["status"] == "succeeded", job
    instance_id = job["result"]["instance_id"]
    with immutable(clone_of(rig, instance_id)):
        response = rig.app.delete(f"/v1/instances/{instance_id}", params={"force": "true"})
        outcome.injected += 1
        entry = rig.app.get(f"/v1/instances/{instance_id}").json()
    assert response.status_code == 202 and response.json()["outcome"] == "deleting", response.text
    assert entry["status"] == "deleting" and entry["teardown_error"], entry
    assert wait_until_gone(rig, instance_id) == 404
    rig.account(outcome, [])
    assert outcome.clean, outcome
