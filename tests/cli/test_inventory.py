"""Which object `rm ID_PREFIX` means: exactly one match across instances, states and jobs."""
from __future__ import annotations

import pytest

from appliance.cli import exit_codes
from appliance.cli.failures import CliFailure
from appliance.cli.inventory import Target, check_prefix, choose_target

INSTANCE = {"instance_id": "abcdef0011112222333344445555aaaa"}
STATE = {"state_id": "abcdef0099998888777766665555bbbb"}
JOB = {"job_id": "12345678aaaabbbbccccddddeeeeffff"}


def test_a_prefix_matching_one_object_chooses_it():
    assert choose_target("12345678", [], [], [JOB]) == Target("job", JOB["job_id"])


def test_a_prefix_matching_nothing_chooses_nothing():
    assert choose_target("ffffffff", [INSTANCE], [STATE], [JOB]) is None


def test_a_prefix_matching_objects_of_two_kinds_is_ambiguous_and_a_usage_error():
    with pytest.raises(CliFailure) as caught:
        choose_target("abcdef00", [INSTANCE], [STATE], [])
    assert (caught.value.code, caught.value.exit_code) == ("ambiguous", exit_codes.USAGE)


def test_an_exact_id_wins_over_longer_ids_it_prefixes():
    longer = {"state_id": INSTANCE["instance_id"] + "00"}
    assert choose_target(INSTANCE["instance_id"], [INSTANCE], [longer], []) == \
        Target("instance", INSTANCE["instance_id"])


def test_a_prefix_shorter_than_eight_characters_is_rejected():
    with pytest.raises(CliFailure, match="too short"):
        check_prefix("abc123")


def test_a_prefix_that_is_not_hex_is_rejected():
    with pytest.raises(CliFailure, match="hex"):
        check_prefix("my-instance")


def test_an_uppercase_prefix_is_accepted_as_lowercase():
    assert check_prefix("ABCDEF00") == "abcdef00"
