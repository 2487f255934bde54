"""Per-host RQ queues on a real Redis."""
from __future__ import annotations

from appliance.orchestrator.queue import enqueue_refill, prepare_queue


def test_a_warm_pool_refill_waits_once_on_its_hosts_queue_whatever_the_host_is_called(redis):
    for _ in range(2):
        enqueue_refill(redis, "db-7.example.com")
    assert len(prepare_queue(redis, "db-7.example.com").job_ids) == 1
    assert prepare_queue(redis, "other").job_ids == []
