from __future__ import annotations

import hashlib

import pytest

from appliance.planning import hashing
from appliance.planning.hashing import chain_state_ids, digest, image_parent, state_id


def test_digest_is_sha256_over_length_prefixed_records():
    expected = hashlib.sha256("kind=4:psql\nname=2:é\n".encode()).hexdigest()
    assert digest(("kind", "psql"), ("name", "é")) == expected


def test_digest_is_64_lowercase_hex_characters():
    value = digest(("a", "b"))
    assert len(value) == 64 and value == value.lower() and int(value, 16) >= 0


def test_moving_bytes_between_records_changes_the_digest():
    assert digest(("a", "xy"), ("b", "")) != digest(("a", "x"), ("b", "y"))


def test_state_id_depends_on_the_parent():
    assert state_id("image:abc", "t") != state_id("state:abc", "t")


def test_state_id_rejects_a_parent_without_a_kind_prefix():
    with pytest.raises(ValueError):
        state_id("abc", "t")


def test_chain_starts_from_the_image_and_links_each_state_to_the_previous_one():
    ids = chain_state_ids("img", ["t1", "t2"])
    root = image_parent("img")
    assert ids == [state_id(root, "t1"), state_id(f"state:{state_id(root, 't1')}", "t2")]


def test_a_new_base_recipe_keys_every_state_and_base_anew(monkeypatch):
    """States built on a base of an older recipe (without the stock roles, say) are never reused."""
    before = chain_state_ids("img", ["t1"]), hashing.base_key("img")
    monkeypatch.setattr(hashing, "BASE_RECIPE", hashing.BASE_RECIPE + "-next")
    after = chain_state_ids("img", ["t1"]), hashing.base_key("img")
    assert before[0] != after[0] and before[1] != after[1]


def test_a_shared_prefix_of_steps_gives_a_shared_prefix_of_state_ids():
    first = chain_state_ids("img", ["t1", "t2", "t3"])
    second = chain_state_ids("img", ["t1", "t2", "other"])
    assert first[:2] == second[:2] and first[2] != second[2]
