"""The lvm driver, checked by the exact commands it issues and by parsing lvm2's report format.

Device-mapper is absent where these tests run, so LVM cannot run here and nothing below
proves a command works on a real pool. What is checked: the argv of every step, that each
step is one a strict double of lvm2/util-linux accepts (it rejects unknown options, thick
snapshots, reserved or duplicate names, mounting an inactive or unformatted LV, an XFS
snapshot without ``nouuid`` next to its origin ...), the cleanup after a failure, and the
parsing of ``lvs`` json in lvm2 2.03.16's shape. Directories are real; mounts are not.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from appliance.errors import CommandFailed, Conflict, InvalidArgument, NotFound
from appliance.shell import Completed, Runner
from appliance.storage.base import SnapshotDriver
from appliance.storage.lvm import LvmDriver, PoolUsage
from appliance.storage.lvm_report import ReportFormatError, lvs_argv, parse_lvs_json
from appliance.storage.store import SnapshotStore
from tests.support.lvm import GIB, POOL, POOL_FULL, VG, LvmHost, StreamingRecordingRunner, check_name

OUTPUTS = Path(__file__).parent / "lvm_outputs"


# -- fixtures and helpers ------------------------------------------------------------------
@pytest.fixture
def host() -> LvmHost:
    return LvmHost()


@pytest.fixture
def runner(host: LvmHost) -> StreamingRecordingRunner:
    return host.runner()


@pytest.fixture
def driver(runner) -> LvmDriver:
    return LvmDriver(runner, f"{VG}/{POOL}", GIB, "xfs")


@pytest.fixture
def kinds(tmp_path: Path) -> Path:
    """``<root>/orgs/acme`` with its kind directories, as the store makes them."""
    org = tmp_path / "orgs" / "acme"
    for kind in ("states", "bases", "volumes"):
        (org / kind).mkdir(parents=True)
    return org


def captured(name: str) -> str:
    """The stdout part of a file in lvm_outputs (its '#' header says where it comes from)."""
    lines = (OUTPUTS / name).read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("#"))


def captured_argv(name: str) -> list[str]:
    header = next(line for line in (OUTPUTS / name).read_text().splitlines() if line.startswith("# argv: "))
    return header[len("# argv: "):].split(" ")


def new_volume(driver: LvmDriver, runner, kinds: Path, name: str = "vol1") -> Path:
    path = kinds / "volumes" / name
    driver.create_volume(path)
    runner.calls.clear()
    return path


def new_state(driver: LvmDriver, runner, kinds: Path) -> Path:
    volume = new_volume(driver, runner, kinds)
    state = kinds / "states" / "s1"
    driver.snapshot(volume, state)
    runner.calls.clear()
    return state


# -- the command sequences -------------------------------------------------------------------
def test_create_volume_makes_a_tagged_thin_volume_formats_and_mounts_it(driver, runner, kinds):
    path = kinds / "volumes" / "vol1"
    driver.create_volume(path)
    assert runner.calls == [
        ["lvcreate", "-V", f"{GIB}b", "-T", "vg0/tp0", "-n", "sqlrs+acme+v+vol1", "--addtag", "sqlrs"],
        ["mkfs.xfs", "-q", "/dev/vg0/sqlrs+acme+v+vol1"],
        ["mount", "-t", "xfs", "-o", "rw,nouuid", "/dev/vg0/sqlrs+acme+v+vol1", str(path)],
    ]


def test_create_volume_leaves_a_mounted_directory_at_the_path(driver, host, kinds):
    path = kinds / "volumes" / "vol1"
    driver.create_volume(path)
    assert path.is_dir() and host.mounted_name(path) == "sqlrs+acme+v+vol1"


def test_an_ext4_volume_is_made_with_mkfs_ext4_and_mounted_without_nouuid(runner, kinds):
    driver = LvmDriver(runner, "vg0/tp0", GIB, "ext4")
    path = kinds / "volumes" / "vol1"
    driver.create_volume(path)
    assert runner.calls[1:] == [
        ["mkfs.ext4", "-q", "/dev/vg0/sqlrs+acme+v+vol1"],
        ["mount", "-t", "ext4", "-o", "rw", "/dev/vg0/sqlrs+acme+v+vol1", str(path)],
    ]


def test_snapshot_syncs_then_takes_an_activatable_thin_snapshot_mounted_read_only(driver, runner, kinds):
    volume = new_volume(driver, runner, kinds)
    target = kinds / "states" / ".tmp-s1-0a1b2c"
    driver.snapshot(volume, target)
    assert runner.calls == [
        ["sync", "-f", str(volume)],
        ["lvcreate", "-s", "-kn", "-n", "sqlrs+acme+s+.tmp-s1-0a1b2c", "--addtag", "sqlrs",
         "vg0/sqlrs+acme+v+vol1"],
        ["lvchange", "-ay", "-K", "vg0/sqlrs+acme+s+.tmp-s1-0a1b2c"],
        ["mount", "-t", "xfs", "-o", "ro,nouuid", "/dev/vg0/sqlrs+acme+s+.tmp-s1-0a1b2c", str(target)],
    ]


def test_clone_takes_a_thin_snapshot_of_the_state_mounted_writable(driver, runner, kinds):
    state = new_state(driver, runner, kinds)
    target = kinds / "volumes" / "vol2"
    driver.clone(state, target)
    assert runner.calls == [
        ["lvcreate", "-s", "-kn", "-n", "sqlrs+acme+v+vol2", "--addtag", "sqlrs", "vg0/sqlrs+acme+s+s1"],
        ["lvchange", "-ay", "-K", "vg0/sqlrs+acme+v+vol2"],
        ["mount", "-t", "xfs", "-o", "rw,nouuid", "/dev/vg0/sqlrs+acme+v+vol2", str(target)],
    ]


def test_destroy_unmounts_removes_the_lv_and_the_mount_point(driver, runner, host, kinds):
    volume = new_volume(driver, runner, kinds)
    driver.destroy(volume)
    assert runner.calls == [
        ["mountpoint", "-q", str(volume)],
        ["umount", str(volume)],
        ["lvremove", "-y", "vg0/sqlrs+acme+v+vol1"],
    ]
    assert not volume.exists() and host.lvs == {}


def test_destroying_a_path_that_never_existed_is_not_an_error(driver, runner, kinds):
    driver.destroy(kinds / "volumes" / "ghost")
    assert runner.calls == [["lvremove", "-y", "vg0/sqlrs+acme+v+ghost"]]


def test_destroy_removes_an_unmounted_mount_point_left_by_a_crash(driver, runner, kinds):
    leftover = kinds / "volumes" / ".tmp-vol1-00ff00"
    leftover.mkdir()
    driver.destroy(leftover)
    assert not leftover.exists()
    assert ["lvremove", "-y", "vg0/sqlrs+acme+v+.tmp-vol1-00ff00"] in runner.calls


def test_destroying_a_state_with_a_clone_leaves_the_clone_mounted(driver, runner, host, kinds):
    state = new_state(driver, runner, kinds)
    clone = kinds / "volumes" / "vol2"
    driver.clone(state, clone)
    driver.destroy(state)
    assert host.mounted_name(clone) == "sqlrs+acme+v+vol2"


def test_publish_renames_the_lv_and_moves_the_read_only_mount_of_a_state(driver, runner, host, kinds):
    volume = new_volume(driver, runner, kinds)
    staged, final = kinds / "states" / ".tmp-s1-abc123", kinds / "states" / "s1"
    driver.snapshot(volume, staged)
    runner.calls.clear()
    driver.publish(staged, final)
    assert runner.calls == [
        ["mountpoint", "-q", str(staged)],
        ["umount", str(staged)],
        ["lvrename", "vg0", "sqlrs+acme+s+.tmp-s1-abc123", "sqlrs+acme+s+s1"],
        ["mount", "-t", "xfs", "-o", "ro,nouuid", "/dev/vg0/sqlrs+acme+s+s1", str(final)],
    ]
    assert not staged.exists() and host.mounted_name(final) == "sqlrs+acme+s+s1"


def test_publish_mounts_a_volume_writable(driver, runner, host, kinds):
    staged, final = kinds / "volumes" / ".tmp-vol1-abc123", kinds / "volumes" / "vol1"
    driver.create_volume(staged)
    driver.publish(staged, final)
    assert host.mounts[str(final)][1] == "rw,nouuid"


def test_publish_onto_an_existing_path_raises_conflict_and_runs_nothing(driver, runner, kinds):
    staged = new_volume(driver, runner, kinds, ".tmp-vol1-abc123")
    (kinds / "volumes" / "vol1").mkdir()
    with pytest.raises(Conflict):
        driver.publish(staged, kinds / "volumes" / "vol1")
    assert runner.calls == []


def test_publish_onto_an_existing_lv_raises_conflict_and_removes_the_claimed_directory(driver, runner, kinds):
    driver.create_volume(kinds / "volumes" / "vol1")
    (kinds / "volumes" / "vol1").rename(kinds / "volumes" / "moved")  # the LV keeps its name
    staged = new_volume(driver, runner, kinds, ".tmp-vol1-abc123")
    with pytest.raises(Conflict):
        driver.publish(staged, kinds / "volumes" / "vol1")
    assert not (kinds / "volumes" / "vol1").exists()


def test_a_mount_failing_after_the_rename_renames_the_lv_back(driver, runner, host, kinds):
    staged = new_volume(driver, runner, kinds, ".tmp-vol1-abc123")
    host.fail_next("mount", 32, "mount: /x: can't read superblock on /dev/vg0/x.\n")
    with pytest.raises(CommandFailed):
        driver.publish(staged, kinds / "volumes" / "vol1")
    assert runner.calls[-2:] == [
        ["mountpoint", "-q", str(kinds / "volumes" / "vol1")],
        ["lvrename", "vg0", "sqlrs+acme+v+vol1", "sqlrs+acme+v+.tmp-vol1-abc123"],
    ]
    assert not (kinds / "volumes" / "vol1").exists()


# -- the store on top of the driver --------------------------------------------------------
def test_the_store_commits_and_clones_through_the_driver_leaving_no_temporaries(driver, host, tmp_path):
    store = SnapshotStore(tmp_path, driver)
    store.create_volume("acme", "vol1")
    store.commit_state("acme", "vol1", "s1")
    store.clone_state("acme", "s1", "vol2")
    assert sorted(host.lvs) == ["sqlrs+acme+s+s1", "sqlrs+acme+v+vol1", "sqlrs+acme+v+vol2"]
    assert sorted(host.mounts) == sorted(str(p) for p in (
        store.volume_path("acme", "vol1"), store.state_path("acme", "s1"), store.volume_path("acme", "vol2")))


def test_a_failed_commit_through_the_store_leaves_no_lv_and_no_directory(driver, host, tmp_path):
    store = SnapshotStore(tmp_path, driver)
    store.create_volume("acme", "vol1")
    host.pool_full = True
    with pytest.raises(CommandFailed):
        store.commit_state("acme", "vol1", "s1")
    assert list(host.lvs) == ["sqlrs+acme+v+vol1"]
    assert os.listdir(tmp_path / "orgs" / "acme" / "states") == []


# -- failures and cleanup ------------------------------------------------------------------
def test_a_full_pool_fails_create_volume_with_lvm2s_message_and_leaves_nothing(driver, host, kinds):
    host.pool_full = True
    path = kinds / "volumes" / "vol1"
    with pytest.raises(CommandFailed) as failure:
        driver.create_volume(path)
    assert failure.value.argv[:2] == ["lvcreate", "-V"]
    assert "free space in thin pool vg0/tp0 reached threshold" in failure.value.stderr
    assert host.lvs == {} and not path.exists()


def test_a_full_pool_fails_a_clone_and_leaves_nothing(driver, runner, host, kinds):
    state = new_state(driver, runner, kinds)
    host.pool_full = True
    with pytest.raises(CommandFailed) as failure:
        driver.clone(state, kinds / "volumes" / "vol2")
    assert failure.value.argv[:2] == ["lvcreate", "-s"] and failure.value.stderr == POOL_FULL
    assert runner.calls[-1][0] == "lvcreate" and not (kinds / "volumes" / "vol2").exists()


def test_a_failing_mkfs_removes_the_new_lv(driver, runner, host, kinds):
    host.fail_next("mkfs.xfs", 1, "mkfs.xfs: pwrite failed: Input/output error\n")
    with pytest.raises(CommandFailed):
        driver.create_volume(kinds / "volumes" / "vol1")
    assert runner.calls[-1] == ["lvremove", "-y", "vg0/sqlrs+acme+v+vol1"] and host.lvs == {}


def test_a_failing_mount_of_a_clone_removes_its_mount_point_and_lv(driver, runner, host, kinds):
    state = new_state(driver, runner, kinds)
    host.fail_next("mount", 32, "mount: /x: wrong fs type, bad option, bad superblock.\n")
    with pytest.raises(CommandFailed) as failure:
        driver.clone(state, kinds / "volumes" / "vol2")
    assert failure.value.argv[0] == "mount" and "bad superblock" in failure.value.stderr
    assert runner.calls[-1] == ["lvremove", "-y", "vg0/sqlrs+acme+v+vol2"]
    assert not (kinds / "volumes" / "vol2").exists()
    assert list(host.lvs) == ["sqlrs+acme+v+vol1", "sqlrs+acme+s+s1"]


def test_lvremove_failing_for_another_reason_than_a_missing_lv_raises(driver, runner, host, kinds):
    volume = new_volume(driver, runner, kinds)
    host.fail_next("lvremove", 5, "  Logical volume vg0/sqlrs+acme+v+vol1 in use.\n")
    with pytest.raises(CommandFailed) as failure:
        driver.destroy(volume)
    assert failure.value.returncode == 5 and "in use" in failure.value.stderr


# -- names ---------------------------------------------------------------------------------
def test_lv_names_map_back_to_the_store_path_including_temporaries_and_underscores(driver, tmp_path):
    for relative in ("orgs/acme/states/ab12", "orgs/my_org/volumes/.tmp-v_1-0a0b0c", "orgs/a.b-c/bases/k"):
        name = driver.lv_name(tmp_path / relative)
        assert str(driver.relative_path(name)) == relative


def test_an_id_spelling_a_reserved_lvm_suffix_yields_a_name_lvm_accepts(driver, tmp_path):
    name = driver.lv_name(tmp_path / "orgs" / "x_tmeta" / "volumes" / "snapshot_tdata")
    assert "_" not in name
    check_name(name)  # the double's copy of lvm2's rules raises on a refused name


def test_a_name_longer_than_lvm_allows_is_refused_before_any_command(driver, runner, tmp_path):
    with pytest.raises(InvalidArgument):
        driver.create_volume(tmp_path / "orgs" / ("o" * 60) / "volumes" / ("v" * 70))
    assert runner.calls == []


def test_a_path_outside_the_store_layout_is_refused(driver, tmp_path):
    with pytest.raises(InvalidArgument):
        driver.lv_name(tmp_path / "somewhere" / "else")


def test_another_tools_lv_has_no_store_path(driver):
    assert driver.relative_path("backup") is None and driver.relative_path("sqlrsb+acme+v+vol1") is None


# -- parsing lvm2 2.03.16 reports ----------------------------------------------------------
def test_every_captured_output_was_asked_for_with_the_argv_the_driver_uses():
    for name in os.listdir(OUTPUTS):
        argv = captured_argv(name)
        assert argv == lvs_argv(argv[len(lvs_argv([])):])


def test_a_report_with_no_lvs_parses_to_an_empty_list():
    assert parse_lvs_json(captured("no_tagged_lvs.json")) == []


def test_an_empty_pool_reports_its_size_and_zero_bytes_used(runner):
    runner.responses[tuple(captured_argv("empty_pool.json"))] = \
        lambda argv: Completed(argv, 0, captured("empty_pool.json"), "")
    assert LvmDriver(runner, "vg0/tp0", GIB).pool_usage() == PoolUsage(107374182400, 0)


def test_a_full_pool_reports_all_its_bytes_used_and_the_out_of_space_flag():
    (pool,) = parse_lvs_json(captured("full_pool.json"))
    assert pool.used_bytes() == pool.size_bytes == 107374182400 and pool.pool_out_of_data_space


def test_snapshots_report_their_origin_and_the_activation_skip_flag():
    records = {r.name: r for r in parse_lvs_json(captured("pool_with_volumes_and_snapshots.json"))}
    skipped = records["sqlrs+acme+s+60303ae22b998861"]
    assert skipped.origin == "sqlrs+acme+v+vol1" and skipped.skips_activation and not skipped.is_active


def test_an_inactive_lv_has_no_data_percent():
    (record,) = parse_lvs_json(captured("inactive_snapshot.json"))
    assert record.data_percent is None and record.used_bytes() is None


def test_tags_are_split_from_their_comma_separated_string():
    records = {r.name: r for r in parse_lvs_json(captured("pool_with_volumes_and_snapshots.json"))}
    assert records["sqlrs+acme+v+vol2"].tags == ("sqlrs", "keep")


def test_used_bytes_is_the_size_times_data_percent(runner, kinds):
    runner.responses[tuple(captured_argv("active_volume.json"))] = \
        lambda argv: Completed(argv, 0, captured("active_volume.json"), "")
    driver = LvmDriver(runner, "vg0/tp0", GIB)
    assert driver.used_bytes(kinds / "volumes" / "vol1") == 53687091200 * 1234 // 10000


def test_used_bytes_of_an_inactive_lv_is_its_size_as_an_upper_bound(runner, kinds):
    runner.responses[tuple(captured_argv("inactive_snapshot.json"))] = \
        lambda argv: Completed(argv, 0, captured("inactive_snapshot.json"), "")
    driver = LvmDriver(runner, "vg0/tp0", GIB)
    assert driver.used_bytes(kinds / "states" / "60303ae22b998861") == 53687091200


def test_used_bytes_of_a_missing_lv_raises_not_found(driver, kinds):
    with pytest.raises(NotFound):
        driver.used_bytes(kinds / "volumes" / "ghost")


def test_owned_lvs_are_only_ours_in_our_pool(runner):
    runner.responses[tuple(captured_argv("pool_with_volumes_and_snapshots.json"))] = \
        lambda argv: Completed(argv, 0, captured("pool_with_volumes_and_snapshots.json"), "")
    owned = LvmDriver(runner, "vg0/tp0", GIB).owned_lvs()
    assert sorted(map(str, owned)) == [
        "orgs/acme/states/60303ae22b998861", "orgs/acme/states/9f86d081884c7d65",
        "orgs/acme/volumes/vol1", "orgs/acme/volumes/vol2"]


def test_a_json_std_report_with_numbers_is_refused():
    row = json.loads(captured("active_volume.json"))
    row["report"][0]["lv"][0]["lv_size"] = 53687091200
    with pytest.raises(ReportFormatError):
        parse_lvs_json(json.dumps(row))


def test_a_size_with_a_unit_suffix_is_refused():
    with pytest.raises(ReportFormatError):
        parse_lvs_json(captured("active_volume.json").replace('"53687091200"', '"53687091200B"'))


# -- reboot, streams, protocol -------------------------------------------------------------
def test_mount_all_activates_and_mounts_every_published_lv_after_a_reboot(driver, runner, host, tmp_path):
    store = SnapshotStore(tmp_path, driver)
    store.create_volume("acme", "vol1")
    store.commit_state("acme", "vol1", "s1")
    host.mounts.clear()
    for lv in host.lvs.values():
        lv.active = False
    assert driver.mount_all(tmp_path) == [store.state_path("acme", "s1"), store.volume_path("acme", "vol1")]
    assert host.mounts[str(store.state_path("acme", "s1"))][1] == "ro,nouuid"


def test_a_state_streams_as_the_same_tar_the_copy_driver_makes(driver, kinds):
    command = driver.send_command(kinds / "states" / "s1", None)
    assert command.format == "tar" and command.parent is None
    assert command.argv == ["tar", "--create", "--file=-", "--numeric-owner", "--sparse",
                            f"--directory={kinds / 'states' / 's1'}", "."]


def test_receive_extracts_the_stream_into_a_new_volume_and_remounts_it_read_only(driver, runner, host,
                                                                                   kinds, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "PG_VERSION").write_text("15\n")
    stream = io.BytesIO()
    Runner().pipe_from(driver.send_command(source, None).argv, lambda out: stream.write(out.read()))
    stream.seek(0)
    staged = kinds / "states" / ".tmp-s1-abc123"
    driver.receive(stream, staged, "tar", None)
    assert (staged / "PG_VERSION").read_text() == "15\n"
    assert [argv[0] for argv in runner.calls] == [
        "lvcreate", "mkfs.xfs", "mount", "tar", "sync", "umount", "mount"]
    assert host.mounts[str(staged)][1] == "ro,nouuid"


def test_a_failed_extraction_removes_the_received_volume(driver, runner, host, kinds):
    staged = kinds / "states" / ".tmp-s1-abc123"
    with pytest.raises(CommandFailed):
        driver.receive(io.BytesIO(b"this is not a tar stream" * 100), staged, "tar", None)
    assert runner.calls[-1] == ["lvremove", "-y", "vg0/sqlrs+acme+s+.tmp-s1-abc123"]
    assert host.lvs == {} and not staged.exists()


def test_receiving_a_foreign_stream_format_is_refused_before_any_command(driver, runner, kinds):
    with pytest.raises(InvalidArgument):
        driver.receive(io.BytesIO(b""), kinds / "states" / "s1", "zfs-send", None)
    assert runner.calls == []


def test_the_driver_satisfies_the_snapshot_driver_protocol(driver):
    assert isinstance(driver, SnapshotDriver)


# -- the double is as strict as claimed ----------------------------------------------------
def test_the_double_refuses_a_snapshot_with_a_size_as_a_thick_snapshot(driver, runner, kinds):
    new_volume(driver, runner, kinds)
    with pytest.raises(CommandFailed) as failure:
        runner(["lvcreate", "-s", "-L", "1g", "-n", "snap", "vg0/sqlrs+acme+v+vol1"])
    assert "thick COW snapshot" in failure.value.stderr


def test_the_double_leaves_a_default_thin_snapshot_inactive_without_minus_k(driver, runner, kinds):
    new_volume(driver, runner, kinds)
    runner(["lvcreate", "-s", "-n", "snap", "vg0/sqlrs+acme+v+vol1"])
    runner(["lvchange", "-ay", "vg0/snap"])
    (kinds / "mnt").mkdir()
    with pytest.raises(CommandFailed) as failure:
        runner(["mount", "-t", "xfs", "-o", "ro,nouuid", "/dev/vg0/snap", str(kinds / "mnt")])
    assert "special device /dev/vg0/snap does not exist" in failure.value.stderr


def test_the_double_refuses_an_xfs_snapshot_mounted_next_to_its_origin_without_nouuid(driver, runner, kinds):
    new_volume(driver, runner, kinds)
    runner(["lvcreate", "-s", "-kn", "-n", "snap", "vg0/sqlrs+acme+v+vol1"])
    (kinds / "mnt").mkdir()
    with pytest.raises(CommandFailed) as failure:
        runner(["mount", "-t", "xfs", "-o", "ro", "/dev/vg0/snap", str(kinds / "mnt")])
    assert "wrong fs type" in failure.value.stderr
