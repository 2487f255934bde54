"""The process runtime's only image is the host's Postgres, pinned by its binaries."""
from __future__ import annotations

import re

import pytest

from appliance.errors import InvalidArgument
from appliance.runtime.process import ProcessRuntime


@pytest.fixture(scope="module")
def installed(runtime: ProcessRuntime) -> tuple[str, str]:
    return runtime.installed_image()


def test_plain_postgres_resolves_to_the_pinned_installed_image(runtime, installed):
    tag, pinned = installed
    assert runtime.resolve_image("postgres") == pinned
    assert re.fullmatch(re.escape(tag) + r"@sha256:[0-9a-f]{64}", pinned)


def test_the_installed_major_resolves_to_the_same_pin(runtime, installed):
    tag, pinned = installed
    assert runtime.resolve_image(tag) == pinned


def test_an_already_pinned_id_resolves_to_itself(runtime, installed):
    assert runtime.resolve_image(installed[1]) == installed[1]


def test_another_major_is_rejected_listing_what_is_available(runtime, installed):
    tag, _ = installed
    other = "postgres:99"
    with pytest.raises(InvalidArgument, match=rf"image {other} is not available on this host \(available: {tag}\)"):
        runtime.resolve_image(other)


def test_a_pin_of_other_binaries_is_rejected(runtime, installed):
    stale = installed[0] + "@sha256:" + "0" * 64
    with pytest.raises(InvalidArgument, match="pinned as"):
        runtime.resolve_image(stale)


@pytest.mark.parametrize("image_id", ["mysql:8", "postgres:latest", "postgres:15 ", "", "postgres:15@sha256:xyz"])
def test_other_images_are_rejected(runtime, image_id):
    with pytest.raises(InvalidArgument, match="is not available on this host"):
        runtime.resolve_image(image_id)


def test_the_pin_depends_on_the_bin_dir(runtime, runner, workdir, installed):
    linked = workdir / "other-bin"
    linked.symlink_to(runtime.bin_dir, target_is_directory=True)
    elsewhere = ProcessRuntime(runner, pg_bin_dir=linked)
    assert elsewhere.resolve_image("postgres") != installed[1]
