"""Uploads that resume: an export killed midway leaves its upload unfinished (S3: a multipart
upload and its parts; a directory: a partial file), and the next attempt, producing the same
bytes again, keeps what is stored and equal instead of starting from zero. Both backends, a real
S3 server; what the server holds is read with a second client."""
from __future__ import annotations

import random

import pytest

from appliance.objectstore.s3 import PART_SIZE
from tests.support.objectstores import incomplete_uploads

KEY = "acme/states/s1/stream"
SIZE = 2 * PART_SIZE + 5 * 1024 * 1024  # two full parts and a short last one


class Killed(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs (no except Exception)."""


class Stream:
    """``data`` read in uneven pieces, dying after ``die_after`` bytes when given."""

    def __init__(self, data: bytes, die_after: int | None = None) -> None:
        self.data, self.at, self.die_after = data, 0, die_after

    def read(self, size: int = -1) -> bytes:
        if self.die_after is not None and self.at >= self.die_after:
            raise Killed()
        size = min(size if size >= 0 else len(self.data), 3 * 1024 * 1024 + 17)
        chunk = self.data[self.at:self.at + size]
        self.at += len(chunk)
        return chunk


def payload(seed: int, size: int = SIZE) -> bytes:
    return random.Random(seed).randbytes(size)


def stored(objects) -> bytes:
    with objects.open(KEY) as reader:
        return reader.read()


def interrupted(objects, data: bytes, after: int) -> None:
    with pytest.raises(Killed):
        objects.put_stream_resumable(KEY, Stream(data, die_after=after), metadata={"format": "tar"})
    assert not objects.exists(KEY)


def test_an_interrupted_upload_is_resumed_without_writing_the_stored_parts_again(objects):
    data = payload(1)
    interrupted(objects, data, after=2 * PART_SIZE + 1024 * 1024)
    info, kept = objects.put_stream_resumable(KEY, Stream(data), metadata={"format": "tar"})
    assert kept >= 2 * PART_SIZE  # the two parts the first attempt stored
    assert stored(objects) == data and info.size == len(data) and info.metadata["format"] == "tar"
    assert incomplete_uploads(objects) == []


def test_an_upload_that_differs_from_the_first_byte_is_written_anew(objects):
    interrupted(objects, payload(1), after=2 * PART_SIZE + 1024 * 1024)
    other = payload(2)
    _, kept = objects.put_stream_resumable(KEY, Stream(other))
    assert kept == 0 and stored(objects) == other and incomplete_uploads(objects) == []


def test_a_difference_in_the_second_part_keeps_the_first_and_rewrites_from_there(objects):
    data = payload(1)
    interrupted(objects, data, after=2 * PART_SIZE + 1024 * 1024)
    changed = bytearray(data)
    changed[PART_SIZE + 4 * 1024 * 1024] ^= 0x01
    _, kept = objects.put_stream_resumable(KEY, Stream(bytes(changed)))
    assert PART_SIZE <= kept <= PART_SIZE + 4 * 1024 * 1024
    assert stored(objects) == bytes(changed) and incomplete_uploads(objects) == []


def test_a_shorter_stream_than_the_interrupted_one_ends_where_it_ends(objects):
    interrupted(objects, payload(1), after=2 * PART_SIZE + 1024 * 1024)
    shorter = payload(1, PART_SIZE + 1000)
    _, kept = objects.put_stream_resumable(KEY, Stream(shorter))
    assert kept >= PART_SIZE and stored(objects) == shorter and incomplete_uploads(objects) == []


def test_a_stream_that_fails_leaves_no_object_and_no_upload(objects):
    class Failing(Stream):
        def read(self, size: int = -1) -> bytes:
            if self.at > PART_SIZE + 10:
                raise RuntimeError("send failed")
            return super().read(size)
    with pytest.raises(RuntimeError, match="send failed"):
        objects.put_stream_resumable(KEY, Failing(payload(1)))
    assert not objects.exists(KEY) and incomplete_uploads(objects) == []


@pytest.mark.parametrize("size", [0, 1000])
def test_a_small_stream_is_one_object(objects, size):
    data = payload(3, size)
    info, kept = objects.put_stream_resumable(KEY, Stream(data))
    assert (kept, info.size, stored(objects)) == (0, size, data)
