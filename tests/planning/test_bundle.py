"""Unpacking uploaded bundles: canonical ids and every way an upload can be hostile."""
from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from appliance.errors import InvalidArgument, PayloadTooLarge
from appliance.planning.bundle import store_bundle, unpack_bundle

LIMITS = {"max_bytes": 1_000_000, "max_files": 50}


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "sources" / "bundle"


def assert_nothing_written(dest):
    assert not dest.exists()
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_unpacking_writes_the_files(make_tar_gz, entry, dest):
    unpack_bundle(make_tar_gz(entry("db/a.sql", b"select 1;")), dest, **LIMITS)
    assert (dest / "db" / "a.sql").read_bytes() == b"select 1;"


def test_the_source_id_ignores_tar_order_mtimes_and_owners(make_tar_gz, entry, tmp_path):
    one = make_tar_gz(entry("a.sql", b"1", mtime=10), entry("b/c.sql", b"2", uid=7))
    two = make_tar_gz(entry("b", kind=tarfile.DIRTYPE), entry("./b/c.sql", b"2", mtime=99), entry("a.sql", b"1"))
    assert unpack_bundle(one, tmp_path / "x", **LIMITS) == unpack_bundle(two, tmp_path / "y", **LIMITS)


def test_the_source_id_changes_with_content(make_tar_gz, entry, tmp_path):
    one = unpack_bundle(make_tar_gz(entry("a.sql", b"1")), tmp_path / "x", **LIMITS)
    two = unpack_bundle(make_tar_gz(entry("a.sql", b"2")), tmp_path / "y", **LIMITS)
    assert one != two


def test_the_source_id_changes_with_a_file_name(make_tar_gz, entry, tmp_path):
    one = unpack_bundle(make_tar_gz(entry("a.sql", b"1")), tmp_path / "x", **LIMITS)
    two = unpack_bundle(make_tar_gz(entry("b.sql", b"1")), tmp_path / "y", **LIMITS)
    assert one != two


def test_uploading_again_returns_the_same_id_without_rewriting(make_tar_gz, entry, dest):
    data = make_tar_gz(entry("a.sql", b"1"))
    first = unpack_bundle(data, dest, **LIMITS)
    marker = dest / "a.sql"
    before = marker.stat().st_ino
    assert unpack_bundle(data, dest, **LIMITS) == first
    assert marker.stat().st_ino == before
    assert [p.name for p in dest.parent.iterdir()] == ["bundle"]


def test_store_bundle_files_a_bundle_under_its_source_id(make_tar_gz, entry, tmp_path):
    source_id, path = store_bundle(make_tar_gz(entry("a.sql", b"1")), tmp_path / "sources", **LIMITS)
    assert path == tmp_path / "sources" / source_id and (path / "a.sql").exists()
    assert store_bundle(make_tar_gz(entry("a.sql", b"1")), tmp_path / "sources", **LIMITS) == (source_id, path)
    assert [p.name for p in (tmp_path / "sources").iterdir()] == [source_id]


@pytest.mark.parametrize("name", ["../evil.sql", "a/../../evil.sql", "/etc/evil.sql"])
def test_a_path_leaving_the_bundle_is_refused_and_nothing_is_written(make_tar_gz, entry, dest, name):
    with pytest.raises(InvalidArgument):
        unpack_bundle(make_tar_gz(entry("ok.sql", b"1"), entry(name, b"x")), dest, **LIMITS)
    assert_nothing_written(dest)


def test_a_symlink_escaping_the_bundle_is_refused(make_tar_gz, entry, dest):
    with pytest.raises(InvalidArgument, match="symlink"):
        unpack_bundle(make_tar_gz(entry("passwd", kind=tarfile.SYMTYPE, link="../../../etc/passwd")), dest, **LIMITS)
    assert_nothing_written(dest)


def test_an_internal_symlink_is_refused_too(make_tar_gz, entry, dest):
    with pytest.raises(InvalidArgument, match="symlink"):
        unpack_bundle(make_tar_gz(entry("a.sql", b"1"), entry("b.sql", kind=tarfile.SYMTYPE, link="a.sql")), dest, **LIMITS)
    assert_nothing_written(dest)


def test_a_hardlink_is_refused(make_tar_gz, entry, dest):
    with pytest.raises(InvalidArgument, match="hardlink"):
        unpack_bundle(make_tar_gz(entry("a.sql", b"1"), entry("b.sql", kind=tarfile.LNKTYPE, link="/etc/passwd")), dest, **LIMITS)
    assert_nothing_written(dest)


@pytest.mark.parametrize("kind, word", [(tarfile.CHRTYPE, "device"), (tarfile.BLKTYPE, "device"), (tarfile.FIFOTYPE, "fifo")])
def test_special_files_are_refused(make_tar_gz, entry, dest, kind, word):
    with pytest.raises(InvalidArgument, match=word):
        unpack_bundle(make_tar_gz(entry("dev", kind=kind)), dest, **LIMITS)
    assert_nothing_written(dest)


def test_a_duplicate_path_is_refused(make_tar_gz, entry, dest):
    with pytest.raises(InvalidArgument, match="twice"):
        unpack_bundle(make_tar_gz(entry("a.sql", b"1"), entry("./a.sql", b"2")), dest, **LIMITS)
    assert_nothing_written(dest)


def test_a_path_that_is_both_file_and_directory_is_refused(make_tar_gz, entry, dest):
    with pytest.raises(InvalidArgument, match="file and a directory"):
        unpack_bundle(make_tar_gz(entry("a/b.sql", b"1"), entry("a", b"2")), dest, **LIMITS)
    assert_nothing_written(dest)


def test_an_upload_larger_than_the_limit_is_refused(make_tar_gz, entry, dest):
    data = make_tar_gz(entry("a.sql", bytes(range(256)) * 100))
    with pytest.raises(PayloadTooLarge):
        unpack_bundle(data, dest, max_bytes=len(data) - 1, max_files=10)
    assert_nothing_written(dest)


def test_a_decompression_bomb_is_stopped_while_streaming(make_tar_gz, entry, dest):
    bomb = make_tar_gz(entry("zeros.sql", bytes(50_000_000)))
    assert len(bomb) < 100_000
    with pytest.raises(PayloadTooLarge, match="unpacks to more than"):
        unpack_bundle(bomb, dest, max_bytes=1_000_000, max_files=10)
    assert_nothing_written(dest)


def test_a_header_lying_about_its_size_is_not_trusted(entry, dest):
    raw = io.BytesIO()
    info, _ = entry("a.sql", size=10)
    raw.write(info.tobuf(format=tarfile.PAX_FORMAT))
    raw.write(b"0123")  # far less than the header claims
    with pytest.raises(InvalidArgument):
        unpack_bundle(gzip.compress(raw.getvalue()), dest, **LIMITS)
    assert_nothing_written(dest)


def test_a_huge_pax_header_is_stopped_while_streaming(dest):
    raw = io.BytesIO()
    info = tarfile.TarInfo("a.sql")
    info.pax_headers = {"comment": "x" * 5_000_000}
    raw.write(info.tobuf(format=tarfile.PAX_FORMAT))
    with pytest.raises(PayloadTooLarge):
        unpack_bundle(gzip.compress(raw.getvalue()), dest, max_bytes=100_000, max_files=10)
    assert_nothing_written(dest)


def test_too_many_files_are_refused(make_tar_gz, entry, dest):
    data = make_tar_gz(*(entry(f"f{i}.sql", b"") for i in range(6)))
    with pytest.raises(PayloadTooLarge, match="more than 5 entries"):
        unpack_bundle(data, dest, max_bytes=1_000_000, max_files=5)
    assert_nothing_written(dest)


@pytest.mark.parametrize("data", [b"", b"not a tarball", gzip.compress(b"x" * 2000), b"\x1f\x8b\x08garbage"])
def test_something_that_is_not_a_gzip_tar_is_refused(dest, data):
    with pytest.raises(InvalidArgument, match="not a valid gzip-compressed tar"):
        unpack_bundle(data, dest, **LIMITS)
    assert_nothing_written(dest)


def test_an_uncompressed_tar_is_refused(entry, dest):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info, data = entry("a.sql", b"1")
        archive.addfile(info, io.BytesIO(data))
    with pytest.raises(InvalidArgument, match="not a valid gzip-compressed tar"):
        unpack_bundle(raw.getvalue(), dest, **LIMITS)
    assert_nothing_written(dest)
