"""`destroy` leaves nothing of a data dir running, whichever tool started it."""
from __future__ import annotations

import contextlib
import shutil

import docker
import docker.errors
import pytest
from docker.types import Mount

from appliance.service.teardown import destroy_data_dir
from appliance.settings import Settings
from tests.support.docker import ensure_image, require_docker
from tests.support.tmpdirs import public_tmpdir

IMAGE = Settings.model_fields["docker_image"].default


def test_destroy_removes_any_container_that_mounts_the_data_dir_even_without_a_runtime_label():
    require_docker()
    ensure_image(IMAGE)
    base = public_tmpdir("sqlrs-teardown-")
    sources = base / "data" / "sources"
    sources.mkdir(parents=True)
    client = docker.from_env()
    # As a Liquibase run or a task Nomad started would: a bind mount of the data dir, no sqlrs.volume.
    container = client.containers.run(IMAGE, ["sleep", "600"], detach=True, labels={"sqlrs.purpose": "liquibase"},
                                      mounts=[Mount("/workspace", str(sources), type="bind")])
    try:
        done = destroy_data_dir(Settings(data_dir=base / "data", storage_backend="copy", btrfs_image="off"))
        assert done.removed_containers == [container.name]
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(container.id)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(container.id, force=True)
        shutil.rmtree(base, ignore_errors=True)


def test_destroy_still_removes_the_data_dir_when_its_control_db_is_gone():
    base = public_tmpdir("sqlrs-teardown-")
    (base / "data" / "store").mkdir(parents=True)
    settings = Settings(data_dir=base / "data", database_url="postgresql://sqlrs:secret@127.0.0.1:1/sqlrs",
                        storage_backend="copy", btrfs_image="off")
    try:
        destroy_data_dir(settings)
        assert not (base / "data").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)
