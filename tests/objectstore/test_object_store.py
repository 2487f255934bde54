"""The behaviour every object-store backend must have: a local directory and a real S3 server."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import os

import pytest

from appliance.errors import InvalidArgument, NotFound
from appliance.objectstore.s3 import PART_SIZE
from appliance.objectstore.store import ObjectStore
from tests.support.objectstores import incomplete_uploads
from tests.support.s3 import SECRET_KEY

UTC = dt.UTC


class FailingStream(io.RawIOBase):
    """Yields ``good`` bytes, then raises like a ``zfs send`` that died midway."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            raise OSError("the producer died")
        n = min(len(buffer), self.left)
        buffer[:n] = b"z" * n
        self.left -= n
        return n


class ChunkedStream(io.RawIOBase):
    """``size`` pseudo-random bytes in short reads, with no length known up front."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.data = io.BytesIO(os.urandom(size))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.data.read(min(len(buffer), 300_000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_bytes_put_are_read_back_unchanged(objects: ObjectStore):
    objects.put_bytes("acme/a/b.txt", b"hello")
    with objects.open("acme/a/b.txt") as reader:
        assert reader.read() == b"hello"


def test_a_stream_larger_than_one_part_is_stored_whole(objects: ObjectStore):
    stream = ChunkedStream(PART_SIZE + 1234)
    expected = hashlib.sha256(stream.data.getvalue()).hexdigest()
    info = objects.put_stream("acme/big", stream)
    with objects.open("acme/big") as reader:
        assert hashlib.sha256(reader.read()).hexdigest() == expected
    assert info.size == PART_SIZE + 1234


def test_a_stream_that_fails_after_several_parts_leaves_no_object_and_no_upload(objects: ObjectStore):
    with pytest.raises(OSError, match="the producer died"):
        objects.put_stream("acme/broken", FailingStream(2 * PART_SIZE + 10))
    assert not objects.exists("acme/broken")
    assert objects.list("acme/") == []
    assert incomplete_uploads(objects) == []


def test_a_stream_that_fails_within_the_first_part_leaves_no_object(objects: ObjectStore):
    with pytest.raises(OSError):
        objects.put_stream("acme/broken", FailingStream(1000))
    assert not objects.exists("acme/broken") and incomplete_uploads(objects) == []


def test_an_interrupted_upload_is_aborted_too(objects: ObjectStore):
    class Interrupting(FailingStream):
        def readinto(self, buffer) -> int:
            if self.left <= 0:
                raise KeyboardInterrupt
            return super().readinto(buffer)
    with pytest.raises(KeyboardInterrupt):
        objects.put_stream("acme/broken", Interrupting(PART_SIZE + 10))
    assert not objects.exists("acme/broken") and incomplete_uploads(objects) == []


def test_stat_reports_size_and_metadata(objects: ObjectStore):
    objects.put_bytes("acme/x", b"12345", metadata={"state-id": "abc"})
    info = objects.stat("acme/x")
    assert (info.key, info.size, info.metadata["state-id"]) == ("acme/x", 5, "abc")


def test_putting_a_key_again_replaces_the_object(objects: ObjectStore):
    objects.put_bytes("acme/x", b"first")
    objects.put_bytes("acme/x", b"second")
    with objects.open("acme/x") as reader:
        assert reader.read() == b"second"


def test_a_missing_key_is_not_found_for_open_and_stat(objects: ObjectStore):
    with pytest.raises(NotFound):
        objects.open("acme/missing")
    with pytest.raises(NotFound):
        objects.stat("acme/missing")
    assert not objects.exists("acme/missing")


def test_list_returns_the_keys_under_a_prefix_sorted(objects: ObjectStore):
    for key in ("acme/jobs/j2/report.json", "acme/jobs/j1/logs/t.log", "acme/jobs/j1/report.json",
                "other/jobs/j1/report.json", "acme/states/s1/manifest.json"):
        objects.put_bytes(key, b"x")
    assert [i.key for i in objects.list("acme/jobs/j1/")] == ["acme/jobs/j1/logs/t.log",
                                                              "acme/jobs/j1/report.json"]
    assert [i.key for i in objects.list("acme/jobs/")] == ["acme/jobs/j1/logs/t.log", "acme/jobs/j1/report.json",
                                                           "acme/jobs/j2/report.json"]


def test_a_listing_prefix_need_not_end_at_a_slash(objects: ObjectStore):
    objects.put_bytes("acme/jobs/abc1/report.json", b"x")
    objects.put_bytes("acme/jobs/abd2/report.json", b"x")
    assert [i.key for i in objects.list("acme/jobs/abc")] == ["acme/jobs/abc1/report.json"]


def test_deleting_removes_the_object_and_deleting_again_is_fine(objects: ObjectStore):
    objects.put_bytes("acme/x", b"x")
    objects.delete("acme/x")
    objects.delete("acme/x")
    assert not objects.exists("acme/x") and objects.list("acme/") == []


def test_retention_travels_with_the_object(objects: ObjectStore):
    until = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    objects.put_bytes("acme/x", b"x", retain_until=until)
    assert objects.stat("acme/x").retain_until == until
    assert objects.list("acme/")[0].retain_until == until


def test_expired_names_only_objects_whose_retention_has_ended(objects: ObjectStore):
    now = dt.datetime(2030, 1, 1, tzinfo=UTC)
    objects.put_bytes("acme/old", b"x", retain_until=now - dt.timedelta(seconds=1))
    objects.put_bytes("acme/new", b"x", retain_until=now + dt.timedelta(days=1))
    objects.put_bytes("acme/forever", b"x")
    assert objects.expired("acme/", now) == ["acme/old"]


@pytest.mark.parametrize("key", ["noorg", "/acme/x", "acme//x", "acme/../x", "acme/.hidden", "ACME!/x", "acme/x/"])
def test_keys_that_do_not_start_with_an_org_or_escape_are_refused(objects: ObjectStore, key: str):
    with pytest.raises(InvalidArgument):
        objects.put_bytes(key, b"x")


def test_errors_never_contain_the_secret_key(objects: ObjectStore):
    try:
        objects.open("acme/missing")
    except NotFound as exc:
        assert SECRET_KEY not in str(exc) and SECRET_KEY not in repr(exc.details)
