"""One real embedded appliance per module: API + private redis + RQ worker processes + a btrfs
image store it mounts itself + Postgres instances on loopback."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.appliance import appliance_on
from tests.support.liquibase import SHOP

from .harness import Appliance


@pytest.fixture(scope="module")
def appliance(request) -> Iterator[Appliance]:
    yield from appliance_on(request, "btrfs")




@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the shop changelog, with a marker changeset of its own."""
    shutil.copytree(SHOP, tmp_path / "shop")
    (tmp_path / "shop" / "data.sql").write_text((tmp_path / "shop" / "data.sql").read_text()
                                                + f"\n--changeset shop:marker\n-- {tmp_path.name}\nselect 1;\n")
    return tmp_path / "shop"  # the marker changeset makes this test's chain its own
