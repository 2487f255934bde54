"""Per-host RQ queues on a real Redis."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

from rq import Queue
from rq.serializers import JSONSerializer, PickleSerializer

from appliance.orchestrator.queue import (
    RUN_PREPARE,
    enqueue_after_admission,
    enqueue_refill,
    enqueue_token,
    maintenance_queue,
    prepare_queue,
    queue_name,
    worker_queues,
)
from appliance.service.worker import make_worker


def test_a_warm_pool_refill_waits_once_on_its_hosts_queue_whatever_the_host_is_called(redis):
    for _ in range(2):
        enqueue_refill(redis, "db-7.example.com")
    assert len(maintenance_queue(redis, "db-7.example.com").job_ids) == 1
    assert maintenance_queue(redis, "other").job_ids == []


def test_a_worker_takes_a_waiting_prepare_before_any_maintenance_queued_earlier(redis):
    host = "busy-host"
    enqueue_refill(redis, host)
    enqueue_after_admission(redis, host, "c" * 32)
    enqueue_token(redis, host, "d" * 32)
    assert [q.name for q in make_worker(redis, host).queues] == [q.name for q in worker_queues(redis, host)]
    job, queue = Queue.dequeue_any(worker_queues(redis, host), None, connection=redis, serializer=JSONSerializer)
    assert (job.id, queue.name) == ("d" * 32, queue_name(host))
    assert len(prepare_queue(redis, host).job_ids) == 0 and len(maintenance_queue(redis, host).job_ids) == 2


def test_queue_entries_are_json_data(redis):
    enqueue_token(redis, "h1", "a" * 32)
    raw = zlib.decompress(redis.hget(f"rq:job:{'a' * 32}", "data"))
    assert json.loads(raw) == ["jobs.prepare.run_prepare_job", None, ["a" * 32], {}]


class _PlantedPickle:
    """What someone who may write to Redis would plant: unpickling it creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_planted_in_redis_is_not_run_by_a_worker(redis, redis_url, tmp_path):
    """A job hash written straight into Redis with a pickled payload (RQ's default format): the
    real worker command decodes it as JSON, so the pickle never runs and the job fails."""
    marker = tmp_path / "pwned"
    host = "pickle-host"
    job_id = "b" * 32
    Queue(queue_name(host), connection=redis, serializer=PickleSerializer).enqueue(
        RUN_PREPARE, _PlantedPickle(marker), job_id=job_id)
    env = {**os.environ, "SQLRS_REDIS_URL": redis_url, "SQLRS_DATA_DIR": str(tmp_path / "data"),
           "SQLRS_HOST_ID": host, "SQLRS_STORAGE_BACKEND": "copy", "SQLRS_BTRFS_IMAGE": "off"}
    env.pop("SQLRS_DATABASE_URL", None)
    worker = subprocess.run([sys.executable, "-m", "appliance.service.main", "worker", "--burst"], env=env,
                            check=False, capture_output=True, text=True, timeout=120)
    assert not marker.exists(), "the worker unpickled a payload from Redis"
    assert "DeserializationError" in worker.stdout + worker.stderr
    assert redis.hget(f"rq:job:{job_id}", "status") == b"failed"
    assert prepare_queue(redis, host).job_ids == []
